"""template.yaml as the template tests read it, and as the SAM translator turns it into CloudFormation."""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import Any
from unittest import mock

from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

from tests.support.iam import PinnedManagedPolicies

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = yaml_parse((ROOT / "template.yaml").read_text())


@functools.cache
def translated() -> dict[str, Any]:
    """The template as the SAM translator turns it into CloudFormation (policy templates
    expanded into statements; managed policy names resolved to the ARNs of the AWS-managed
    policies pinned in tests/template/data/aws-managed-policies/)."""

    params = {"AllowedCidr": "203.0.113.0/24", "VpcId": "vpc-1", "SubnetIds": "subnet-1"}
    sam = json.loads(json.dumps(TEMPLATE))
    sam["Globals"]["Function"]["CodeUri"] = "s3://bucket/code.zip"
    for res in sam["Resources"].values():
        if res["Type"] == "AWS::Serverless::StateMachine":
            res["Properties"]["DefinitionUri"] = "s3://bucket/asl.json"
        if res["Type"] == "AWS::Serverless::LayerVersion":
            res["Properties"]["ContentUri"] = "s3://bucket/layer.zip"
    with mock.patch.dict(os.environ, {"AWS_DEFAULT_REGION": "us-east-1"}):
        out: dict[str, Any] = transform(sam, params, PinnedManagedPolicies())
    return out


def all_states(definition: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every state of an ASL definition by name, those in Parallel branches and Map processors
    included."""
    found: dict[str, dict[str, Any]] = {}
    for name, state in definition["States"].items():
        found[name] = state
        for branch in state.get("Branches", []):
            found.update(all_states(branch))
        processor = state.get("ItemProcessor") or state.get("Iterator")
        if processor:
            found.update(all_states(processor))
    return found

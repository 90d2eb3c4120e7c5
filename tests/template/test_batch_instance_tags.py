"""Batch instances carry the tag the idle checks' Run Command permissions are conditioned on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from samtranslator.yaml_helper import yaml_parse

ROOT = Path(__file__).resolve().parents[2]
RESOURCES: dict[str, Any] = yaml_parse((ROOT / "template.yaml").read_text())["Resources"]


def instance_tag_conditions(function: str) -> dict[str, Any]:
    """The ssm:resourceTag/<key> conditions on `function`'s ssm:SendCommand to instances."""
    found: dict[str, Any] = {}
    for policy in RESOURCES[function]["Properties"]["Policies"]:
        for statement in policy.get("Statement", []) if isinstance(policy, dict) else []:
            resource = statement.get("Resource")
            on_instances = isinstance(resource, dict) and ":instance/" in str(resource)
            if statement.get("Action") == "ssm:SendCommand" and on_instances:
                for key, value in statement["Condition"]["StringEquals"].items():
                    found[key.removeprefix("ssm:resourceTag/")] = value
    return found


def test_every_batch_compute_environment_tags_its_instances_for_the_idle_checks() -> None:
    # Run Command authorizes on the instance's own tags (ssm:resourceTag), so each Batch
    # instance needs them: ComputeResources.Tags are applied to the instances the environment
    # launches, https://docs.aws.amazon.com/batch/latest/userguide/compute-resources-tag-access-policy.html
    needed: dict[str, Any] = {}
    for function in ("VerifyIdleFunction", "WarnIdleFunction"):
        conditions = instance_tag_conditions(function)
        assert conditions, f"{function} sends commands to instances without a tag condition"
        needed.update(conditions)
    environments = {
        name: resource["Properties"]["ComputeResources"]
        for name, resource in RESOURCES.items()
        if resource["Type"] == "AWS::Batch::ComputeEnvironment"
    }
    assert environments
    for name, compute in environments.items():
        tags = compute.get("Tags", {})
        for key, value in needed.items():
            assert tags.get(key) == value, f"{name}: ComputeResources.Tags lacks {key}={value}"

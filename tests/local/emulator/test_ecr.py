"""ECR_FROM_CLOUDFORMATION: repositories from CloudFormation."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from local.emulator.ecr import repository_from_cloudformation
from tests.support.emulator import (
    aws_client,
    create_stack,
    stack_outputs,
)

# -- ECR_FROM_CLOUDFORMATION -------------------------------------------------------------------
LIFECYCLE_POLICY = json.dumps(
    {
        "rules": [
            {
                "rulePriority": 1,
                "description": "untagged go after a day",
                "selection": {
                    "tagStatus": "untagged",
                    "countType": "sinceImagePushed",
                    "countUnit": "days",
                    "countNumber": 1,
                },
                "action": {"type": "expire"},
            }
        ]
    }
)


def _repository_template(**properties: Any) -> dict[str, Any]:
    return {
        "Resources": {
            "ImageRepository": {
                "Type": "AWS::ECR::Repository",
                "Properties": {
                    "ImageScanningConfiguration": {"ScanOnPush": True},
                    "ImageTagMutability": "IMMUTABLE",
                    "EncryptionConfiguration": {"EncryptionType": "KMS"},
                    "LifecyclePolicy": {"LifecyclePolicyText": LIFECYCLE_POLICY},
                    **properties,
                },
            }
        },
        "Outputs": {"Uri": {"Value": {"Fn::GetAtt": ["ImageRepository", "RepositoryUri"]}}},
    }


def test_gap_ecr_from_cloudformation() -> None:
    """GAP ECR_FROM_CLOUDFORMATION: a repository without ``RepositoryName`` is named after the
    stack and logical id in mixed case, which ECR refuses, so the stack fails; with a name, the
    scanning and encryption configurations are kept in CloudFormation's casing (DescribeRepositories
    shows neither) and the ``LifecyclePolicy`` is dropped. When this fails, moto has changed:
    drop ``repository_from_cloudformation`` in local/emulator/ecr.py."""

    with mock_aws(), pytest.raises(ClientError, match="repositoryName"):
        create_stack("probe", _repository_template())
    with mock_aws():
        create_stack("probe", _repository_template(RepositoryName="desktop"))
        ecr = aws_client("ecr")
        (repository,) = ecr.describe_repositories()["repositories"]
        assert repository["imageScanningConfiguration"] == {}
        assert repository["encryptionConfiguration"] == {}
        with pytest.raises(ClientError, match="LifecyclePolicyNotFoundException"):
            ecr.get_lifecycle_policy(repositoryName="desktop")


@mock_aws
def test_workaround_ecr_from_cloudformation(monkeypatch: pytest.MonkeyPatch) -> None:
    """``repository_from_cloudformation`` names the repository in lower case, as CloudFormation
    does, and keeps its scanning, encryption and lifecycle policy."""
    from moto.ecr.models import Repository

    monkeypatch.setattr(
        Repository, "create_from_cloudformation_json", repository_from_cloudformation()
    )
    stack = create_stack("probe", _repository_template())
    ecr = aws_client("ecr")
    (repository,) = ecr.describe_repositories()["repositories"]
    name = repository["repositoryName"]
    assert re.fullmatch(r"probe-imagerepository-[a-z0-9]+", name)
    assert stack_outputs(stack)["Uri"] == repository["repositoryUri"]
    assert repository["imageScanningConfiguration"] == {"scanOnPush": True}
    assert repository["encryptionConfiguration"]["encryptionType"] == "KMS"
    assert repository["imageTagMutability"] == "IMMUTABLE"
    policy = ecr.get_lifecycle_policy(repositoryName=name)["lifecyclePolicyText"]
    assert json.loads(policy) == json.loads(LIFECYCLE_POLICY)

"""ECR: repositories from CloudFormation, named and configured as CloudFormation creates them."""

from __future__ import annotations

import logging
from typing import Any

from local.emulator.cloudformation import created_from_template, lower_first
from local.emulator.gap import Context, Gap, Patch

log = logging.getLogger("local.emulator")


def repository_from_cloudformation() -> classmethod[Any, ..., Any]:
    """ECR_FROM_CLOUDFORMATION: create an ``AWS::ECR::Repository`` as CloudFormation does: a
    repository without ``RepositoryName`` is named ``<stack>-<logicalid>-<suffix>`` in lower
    case (ECR refuses upper case), its scanning and encryption configurations are kept in the
    API's casing, and its ``LifecyclePolicy`` is applied."""
    from moto.ecr.models import ecr_backends

    def create(properties: Any, resource_name: str, account_id: str, region_name: str) -> Any:
        backend = ecr_backends[account_id][region_name]
        name = properties.get("RepositoryName") or resource_name.lower()
        repository = backend.create_repository(
            repository_name=name,
            registry_id=None,
            encryption_config=lower_first(properties.get("EncryptionConfiguration")),
            image_scan_config=lower_first(properties.get("ImageScanningConfiguration")),
            image_tag_mutability=properties.get("ImageTagMutability"),
            tags=properties.get("Tags", []),
        )
        lifecycle = properties.get("LifecyclePolicy") or {}
        if lifecycle.get("LifecyclePolicyText"):
            backend.put_lifecycle_policy(
                repository.registry_id, name, lifecycle["LifecyclePolicyText"]
            )
        return repository

    return created_from_template(create)


def install(context: Context) -> list[Patch]:
    from moto.ecr.models import Repository

    return [Patch(Repository, "create_from_cloudformation_json", repository_from_cloudformation())]


ECR_FROM_CLOUDFORMATION = Gap(
    "ECR_FROM_CLOUDFORMATION",
    moto_does="an AWS::ECR::Repository without RepositoryName is named"
    " <stack>-<LogicalId>-<suffix> in mixed case, which ECR refuses (the stack fails); its"
    " scanning and encryption configurations are kept in CloudFormation's casing and its"
    " LifecyclePolicy is dropped",
    we_do="created as CloudFormation does: the name in lower case, the configurations in the"
    " API's casing, the lifecycle policy put",
    install=install,
)

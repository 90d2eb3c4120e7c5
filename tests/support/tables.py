"""The DynamoDB tables as template.yaml declares them, created in moto for the store's tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"


# -- the table as template.yaml declares it ---------------------------------------------------
class _CloudFormationLoader(yaml.CSafeLoader):
    """libyaml's safe loader, reading CloudFormation short-form tags (!Sub, !Ref, ...) as plain
    data (the pure-Python loader takes seconds over template.yaml)."""


def _plain(loader: yaml.CSafeLoader, _suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    assert isinstance(node, yaml.MappingNode)
    return loader.construct_mapping(node, deep=True)


_CloudFormationLoader.add_multi_constructor("!", _plain)


def table_properties(resource: str = "SessionsTable") -> dict[str, Any]:
    loader = _CloudFormationLoader(TEMPLATE.read_text(encoding="utf-8"))
    try:
        template = loader.get_single_data()
    finally:
        loader.dispose()
    declared = template["Resources"][resource]
    assert declared["Type"] == "AWS::DynamoDB::Table"
    properties: dict[str, Any] = declared["Properties"]
    return properties


def create_table(dynamodb: Any, resource: str, name: str) -> None:
    """The DynamoDB table template.yaml declares as ``resource``, named ``name``."""
    declared = table_properties(resource)
    dynamodb.create_table(
        TableName=name,
        BillingMode=declared["BillingMode"],
        AttributeDefinitions=declared["AttributeDefinitions"],
        KeySchema=declared["KeySchema"],
        **{k: declared[k] for k in ("GlobalSecondaryIndexes",) if k in declared},
    )


def create_sessions_table(dynamodb: Any, name: str) -> None:
    create_table(dynamodb, "SessionsTable", name)

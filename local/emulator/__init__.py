"""The AWS emulator (moto, pinned in requirements) and the workarounds for its gaps.

One module per AWS service (``lambda_runtime``, ``eventbridge``, ``scheduler``, ``dynamodb``,
``ec2``, ``batch``, ``ssm``, ``stepfunctions``, ``codebuild``, ``cognito``, ``cloudformation``,
``sns``, ``service_quotas``, ``s3``, ``ecr``) declares its gaps as ``gap.Gap`` values: what moto
does, what we do, and how it is installed. ``registry`` lists every gap in the order it is
installed and applies them (``registry.apply_all``); ``python -m local.emulator`` prints the list.
The simulators hear from the emulator through one ``hooks.SimulatorHooks`` the stack hands to
both. Fault injection (``local.faults``) is not a gap: AWS fails that way for real.
"""

from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent.parent


def trust_policy(service: str) -> dict[str, Any]:
    """A role's trust policy that lets the AWS ``service`` (``batch.amazonaws.com``) assume it."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}
        ],
    }

"""A Batch instance pulls the current release's image at boot (BatchLaunchTemplate's user data,
tests/unit/test_host_bootstrap.py): its role may read the release parameter, and no other
parameter of the account (a desktop's container can reach the instance role's credentials).
The emulator does not enforce IAM: this reads the role as IAM would (tests/support/iam.py):
an explicit Deny wins over every Allow
(https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html)."""

from __future__ import annotations

import fnmatch

from tests.support.iam import grants
from tests.support.template import translated

ROLE = "BatchInstanceRole"
RELEASE = "arn:aws:ssm:us-east-1:123456789012:parameter/dcvfleet/release/current"
OTHER = "arn:aws:ssm:us-east-1:123456789012:parameter/dcvfleet/agent-settings"


def may_read(parameter: str) -> bool:
    """Whether the role may ssm:GetParameter ``parameter``: an Allow names it (its own policy
    or a managed one) and no Deny does."""
    doc = translated()

    def names(resources: list[str]) -> bool:
        return any(fnmatch.fnmatchcase(parameter, r) for r in resources)

    def covers(actions: list[str]) -> bool:
        return any(fnmatch.fnmatchcase("ssm:GetParameter", a) for a in actions)

    allowed = any(covers(g.actions) and names(g.resources) for g in grants(doc) if g.role == ROLE)
    denied = any(
        covers(d.actions)
        and (
            (d.resources and names(d.resources)) or (d.not_resources and not names(d.not_resources))
        )
        for d in grants(doc, effect="Deny")
        if d.role == ROLE
    )
    return allowed and not denied


def test_a_batch_instance_may_read_the_release_parameter_and_no_other() -> None:
    assert may_read(RELEASE), f"{ROLE} may not read the release parameter its user data reads"
    assert not may_read(OTHER), f"{ROLE} may read {OTHER}"


def test_its_own_policy_allows_the_release_parameter_by_name() -> None:
    """Not through AmazonSSMManagedInstanceCore's read of every parameter alone."""
    own = [
        g
        for g in grants(translated())
        if g.role == ROLE and not g.managed and "ssm:GetParameter" in g.actions
    ]
    assert [g.resources for g in own] == [[RELEASE]]

"""A session record as the tests need it: the identity and state every record has, with defaults,
and any other field as given."""

from __future__ import annotations

from typing import Any

from dcvfleet.model import Session, Status


def a_session(
    session_id: str = "s-1",
    *,
    owner: str = "owner",
    backend: str = "ec2",
    os: str = "linux",
    instance_type: str = "g5.xlarge",
    status: Status = Status.READY,
    created_at: str = "2026-11-22T03:00:00.000Z",
    updated_at: str | None = None,
    **fields: Any,
) -> Session:
    """A session with the given fields; ``updated_at`` defaults to ``created_at``."""
    return Session(
        session_id=session_id,
        owner=owner,
        backend=backend,
        os=os,
        instance_type=instance_type,
        status=status,
        created_at=created_at,
        updated_at=created_at if updated_at is None else updated_at,
        **fields,
    )

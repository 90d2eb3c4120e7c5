"""`docker` on a simulated ECS container instance: what the fleet's SSM documents use of it.

    docker ps -q [--filter label=<key>=<value>]...   ids of the running containers that match
    docker exec <container-id> <command> [args...]    run a command inside that container

The host simulator lists an instance's containers in the JSON file named by SIM_DOCKER_STATE:
``[{"id": "...", "labels": {"com.amazonaws.ecs.task-arn": "..."}, "environ": {...}}]``.
``exec`` runs the command with the container's environment, so its ``dcv`` is the container's
simulated one. Anything else exits 1 with docker's "unknown command" shape.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

STATE_ENV = "SIM_DOCKER_STATE"


def _containers() -> list[dict[str, Any]]:
    try:
        with open(os.environ[STATE_ENV], encoding="utf-8") as handle:
            data = json.load(handle)
    except (KeyError, OSError, ValueError):
        return []
    return data if isinstance(data, list) else []


def _matches(container: dict[str, Any], filters: list[str]) -> bool:
    labels = container.get("labels") or {}
    for spec in filters:
        kind, _, condition = spec.partition("=")
        key, _, value = condition.partition("=")
        if kind != "label" or labels.get(key) != value:
            return False
    return True


def main(argv: list[str]) -> int:
    if argv[:1] == ["ps"]:
        filters = [
            argv[i + 1] for i, arg in enumerate(argv) if arg == "--filter" and i + 1 < len(argv)
        ]
        for container in _containers():
            if _matches(container, filters):
                print(container["id"])
        return 0
    if argv[:1] == ["exec"] and len(argv) >= 3:
        found = [c for c in _containers() if c["id"] == argv[1]]
        if not found:
            print(f"Error response from daemon: No such container: {argv[1]}", file=sys.stderr)
            return 1
        environ = {**os.environ, **found[0].get("environ", {})}
        os.execvpe(argv[2], argv[2:], environ)  # noqa: S606 - the container's own command
    print(f"docker: '{' '.join(argv[:1])}' is not a docker command.", file=sys.stderr)
    return 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

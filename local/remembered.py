"""What the local stack keeps in its state directory across restarts: its ports and its users'
passwords (``<state-dir>/remembered.json``).

A restarted ``make local`` serves the API, the portal, the AWS endpoint and the control server on
the ports it used last time, and its demo and admin users keep their passwords, so a browser tab,
a saved password or a script pointed at the last stack goes on working. A remembered port that
another process now holds is replaced by a free one, and the stack says so (a warning naming the
old and the new port). The file is written only by its owner and readable only by them (it holds
passwords, as ``stack.json`` does).
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("local.stack")

FILE_NAME = "remembered.json"
#: Each port the stack listens on, by the name ``remembered.json`` and the warnings use.
PORTS = {
    "aws": "the AWS endpoint",
    "api": "the API",
    "portal": "the portal",
    "control": "the control server",
}
#: Each user whose password is kept, and the prefix of a new password.
USERS = {"demo": "Demo", "admin": "Admin"}
LOWEST_PORT, HIGHEST_PORT = 1024, 65535


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether a server may listen on ``host:port`` now. The stack's servers set SO_REUSEADDR
    (``socketserver``'s ``allow_reuse_address``, which werkzeug's server keeps), so a port whose
    last connections are still in TIME_WAIT after a restart counts as free, as it is for them."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def new_password(prefix: str) -> str:
    """A password the template's user pool policy accepts: upper and lower case, a digit, a
    symbol, at least 8 characters."""
    return f"{prefix}-{secrets.token_urlsafe(12)}1a"


@dataclass
class Remembered:
    ports: dict[str, int] = field(default_factory=dict)
    passwords: dict[str, str] = field(default_factory=dict)
    #: Plain sentences about what could not be kept (a busy port, an unreadable file).
    notes: list[str] = field(default_factory=list)


def _valid_port(value: Any) -> bool:
    return (
        isinstance(value, int)
        and not isinstance(value, bool)
        and (LOWEST_PORT <= value <= HIGHEST_PORT)
    )


def load(state_dir: Path) -> Remembered:
    """What the last stack in ``state_dir`` used; nothing when there was none. An unreadable or
    malformed file, or a malformed entry, is noted and ignored: the stack picks afresh."""
    path = state_dir / FILE_NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return Remembered()
    except (OSError, ValueError) as error:
        return Remembered(notes=[f"{path} could not be read ({error}); picking new ports"])
    if not isinstance(data, dict):
        return Remembered(notes=[f"{path} is not a JSON object; picking new ports"])
    ports, passwords = data.get("ports"), data.get("passwords")
    ports = ports if isinstance(ports, dict) else {}
    passwords = passwords if isinstance(passwords, dict) else {}
    return Remembered(
        ports={name: port for name, port in ports.items() if name in PORTS and _valid_port(port)},
        passwords={
            user: password
            for user, password in passwords.items()
            if user in USERS and isinstance(password, str) and password
        },
    )


def choose(state_dir: Path, wanted: dict[str, int] | None = None) -> Remembered:
    """The ports and passwords for a stack starting in ``state_dir``: ``wanted`` ports as given
    (``--port``), else the remembered ones that are free, else free ones; the remembered
    passwords, else new ones. Each replaced port is noted (and logged as a warning); the choice
    is written back to ``remembered.json``."""
    last = load(state_dir)
    chosen = Remembered(notes=list(last.notes))
    # first the ports given and the remembered ones still free, so that a new port picked for
    # another part cannot take one of them
    for name in PORTS:
        given = (wanted or {}).get(name)
        before = last.ports.get(name)
        if given:
            chosen.ports[name] = given
        elif before is not None and before not in chosen.ports.values() and port_is_free(before):
            chosen.ports[name] = before
    for name, what in PORTS.items():
        if name in chosen.ports:
            continue
        port = free_port()
        while port in chosen.ports.values():
            port = free_port()
        chosen.ports[name] = port
        before = last.ports.get(name)
        if before is not None:
            chosen.notes.append(
                f"port {before} for {what} is in use; {what} is on port {port} this time"
            )
    chosen.ports = {name: chosen.ports[name] for name in PORTS}
    for user, prefix in USERS.items():
        chosen.passwords[user] = last.passwords.get(user) or new_password(prefix)
    for note in chosen.notes:
        log.warning("%s", note)
    save(state_dir, chosen)
    return chosen


def save(state_dir: Path, remembered: Remembered) -> None:
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / FILE_NAME
    tmp = path.with_suffix(".json.tmp")
    body = json.dumps({"ports": remembered.ports, "passwords": remembered.passwords}, indent=2)
    descriptor = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(body + "\n")
    os.replace(tmp, path)

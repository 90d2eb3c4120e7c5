"""The desktop user's OS account, from the session secret. The password only ever travels on
stdin of the command that sets it: never in argv, never in a log line or an error message."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass, field
from typing import Any

from .aws import AwsError
from .config import USERNAME_RE
from .proc import Runner, run_command

COMMAND_TIMEOUT_SECONDS = 60.0
#: "User account names are limited to 20 characters"
#: (https://learn.microsoft.com/en-us/windows/win32/api/lmaccess/ns-lmaccess-user_info_0).
WINDOWS_MAX_USERNAME = 20
#: BUILTIN\Users by its well-known SID: the group's name is localized ("Benutzer", "Utilisateurs")
#: (https://learn.microsoft.com/en-us/windows-server/identity/ad-ds/manage/understand-security-identifiers).
WINDOWS_USERS_SID = "S-1-5-32-545"
# Reads the password from stdin; the user name is embedded only after USERNAME_RE validation and
# the length check below, and the script checks the length again before New-LocalUser sees it.
# New-LocalUser leaves the account out of BUILTIN\Users, which a desktop sign-in needs; the
# account is added (once) by the group's SID.
_WINDOWS_SCRIPT = "; ".join(
    (
        "$ErrorActionPreference = 'Stop'",
        "$name = '{user}'",
        f"if ($name.Length -gt {WINDOWS_MAX_USERNAME}) "
        f"{{{{ throw ('user name ' + $name + ' is over {WINDOWS_MAX_USERNAME} characters') }}}}",
        "$p = ConvertTo-SecureString -String ([Console]::In.ReadLine()) -AsPlainText -Force",
        "$created = $false",
        "if (Get-LocalUser -Name $name -ErrorAction SilentlyContinue) "
        "{{ Set-LocalUser -Name $name -Password $p }} "
        "else {{ New-LocalUser -Name $name -Password $p -PasswordNeverExpires | Out-Null; "
        "$created = $true }}",
        f"if (-not (Get-LocalGroupMember -SID '{WINDOWS_USERS_SID}' -Member $name "
        "-ErrorAction SilentlyContinue)) "
        f"{{{{ Add-LocalGroupMember -SID '{WINDOWS_USERS_SID}' -Member $name }}}}",
        "if ($created) {{ 'created' }}",
    )
)


class UserSetupError(Exception):
    pass


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str = field(repr=False)
    #: The session's key for signing agent events (events.sign); "" in a secret without one.
    event_key: str = field(default="", repr=False)


def read_credentials(client: Any, secret_arn: str) -> Credentials:
    """GetSecretValue; the SecretString is {"username": ..., "password": ...}."""
    try:
        response = client.get_secret_value(SecretId=secret_arn)
    except AwsError as exc:
        raise UserSetupError(f"cannot read secret {secret_arn}: {exc}") from None
    try:
        data = json.loads(response.get("SecretString") or "")
    except ValueError:
        raise UserSetupError(f"secret {secret_arn} is not a JSON SecretString") from None
    if not isinstance(data, dict):
        raise UserSetupError(f"secret {secret_arn} must be a JSON object")
    username, password = data.get("username"), data.get("password")
    if not isinstance(username, str) or not USERNAME_RE.match(username):
        raise UserSetupError(f"secret {secret_arn} has no valid 'username'")
    if not isinstance(password, str) or not password or "\n" in password or "\r" in password:
        raise UserSetupError(f"secret {secret_arn} has no valid single-line 'password'")
    event_key = data.get("eventKey", "")
    if not isinstance(event_key, str):
        raise UserSetupError(f"secret {secret_arn} has an 'eventKey' that is not a string")
    return Credentials(username=username, password=password, event_key=event_key)


def ensure_os_user(platform: str, creds: Credentials, run: Runner = run_command) -> bool:
    """Create the account if missing and set its password. Returns True if it was created."""
    user = creds.username

    def call(argv: list[str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        try:
            return run(argv, input_text=stdin, timeout=COMMAND_TIMEOUT_SECONDS)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise UserSetupError(f"cannot run {argv[0]}: {exc}") from None

    def check(result: subprocess.CompletedProcess[str], what: str) -> None:
        if result.returncode != 0:
            detail = " ".join((result.stderr or result.stdout or "").split())[-300:]
            detail = detail.replace(creds.password, "***")
            raise UserSetupError(f"{what} failed with exit code {result.returncode}: {detail}")

    if platform == "windows":
        if len(user) > WINDOWS_MAX_USERNAME:
            raise UserSetupError(
                f"user name {user!r} is {len(user)} characters; a Windows account name "
                f"has at most {WINDOWS_MAX_USERNAME}"
            )
        script = _WINDOWS_SCRIPT.format(user=user)
        argv = ["powershell.exe", "-NoProfile", "-NonInteractive", "-Command", script]
        result = call(argv, creds.password + "\n")
        check(result, "setting the Windows account")
        return result.stdout.strip() == "created"
    created = call(["id", "-u", user]).returncode != 0
    if created:
        check(call(["useradd", "-m", user]), "useradd")
    check(call(["chpasswd"], f"{user}:{creds.password}\n"), "chpasswd")
    return created

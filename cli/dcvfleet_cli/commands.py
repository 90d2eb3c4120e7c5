"""What each command does. Results go to stdout (tables, URLs, JSON); progress, notes and
prompts to stderr."""

from __future__ import annotations

import argparse
import getpass
import os
import re
import sys
import time
import uuid
import webbrowser
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TextIO
from urllib.parse import quote

from dcvfleet_cli import auth as auth_module
from dcvfleet_cli import stack as stack_module
from dcvfleet_cli import watch
from dcvfleet_cli.api import Api
from dcvfleet_cli.auth import Auth, TokenCache, cache_dir
from dcvfleet_cli.errors import USAGE, ApiError, CliError
from dcvfleet_cli.output import duration, print_json, short_time, table
from dcvfleet_cli.stack import Stack

ADMINS = "admins"
UUID = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")


@dataclass
class Context:
    """The parsed arguments, the environment and the streams; the stack, sign-in and API are
    found when a command first needs them."""

    args: argparse.Namespace
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    out: TextIO = field(default_factory=lambda: sys.stdout)
    err: TextIO = field(default_factory=lambda: sys.stderr)
    stdin: TextIO = field(default_factory=lambda: sys.stdin)
    _stack: Stack | None = None
    _auth: Auth | None = None
    _api: Api | None = None

    def stack(self) -> Stack:
        if self._stack is None:
            self._stack = stack_module.discover(
                getattr(self.args, "stack_file", None),
                getattr(self.args, "stack_name", None),
                getattr(self.args, "region", None),
                self.env,
            )
        return self._stack

    def auth(self) -> Auth:
        if self._auth is None:
            stack = self.stack()
            cache = TokenCache(cache_dir(self.env), stack.api_url)
            self._auth = Auth(stack, cache, auth_module.cognito_client)
        return self._auth

    def api(self) -> Api:
        if self._api is None:
            self._api = Api(self.stack().api_url, self.auth(), sleep=watch.pause)
        return self._api

    def remember_stack(self) -> None:
        """Keep the stack this command used as the one to use from any folder (after a sign-in,
        or a command pointed at a stack with --stack-file or --stack-name)."""
        if self._stack is not None:
            stack_module.remember(self._stack, self.env)

    def note(self, text: str) -> None:
        print(text, file=self.err, flush=True)


def _path(session_id: str, suffix: str = "", admin: bool = False) -> str:
    base = "/admin/sessions/" if admin else "/sessions/"
    return base + quote(session_id, safe="") + suffix


# --- sign-in -------------------------------------------------------------------------------


def _read_secret(ctx: Context, prompt: str) -> str:
    """A secret from the terminal without echo, or a line of stdin when it is not a terminal."""
    if ctx.stdin.isatty():
        return getpass.getpass(prompt)
    return ctx.stdin.readline().rstrip("\r\n")


def _from_env_or_terminal(ctx: Context, variable: str, asks_for: str) -> str:
    """What Cognito ``asks_for``, given in the environment ``variable``; "" when the user at the
    terminal is to be asked; an error when there is neither."""
    given = ctx.env.get(variable)
    if given:
        return given
    if not ctx.stdin.isatty():
        raise CliError(
            f"Cognito asks for {asks_for}: set {variable} or sign in on a terminal", USAGE
        )
    return ""


def _new_password(ctx: Context) -> Callable[[], str]:
    def ask() -> str:
        given = _from_env_or_terminal(ctx, "DCVFLEET_NEW_PASSWORD", "a new password")
        if given:
            return given
        ctx.note("A new password is required (first sign-in).")
        for _ in range(3):
            first = getpass.getpass("New password: ")
            if first and first == getpass.getpass("New password again: "):
                return first
            ctx.note("The passwords differ (or are empty); try again.")
        raise CliError("no new password given", USAGE)

    return ask


def _mfa_code(ctx: Context, username: str) -> Callable[[str | None], str]:
    def ask(secret: str | None) -> str:
        if secret is not None:
            issuer = "DCV%20Fleet"
            ctx.note(
                "This fleet requires a code from an authenticator app at every sign-in. Add this "
                f"secret key to your app (time-based, TOTP): {secret}\n"
                f"  or as a link: otpauth://totp/{issuer}:{username}?secret={secret}"
                f"&issuer={issuer}"
            )
        given = _from_env_or_terminal(
            ctx, "DCVFLEET_MFA_CODE", "a code from your authenticator app"
        )
        if given:
            return given
        ctx.err.write("Code from your authenticator app: ")
        ctx.err.flush()
        code = ctx.stdin.readline().strip()
        if not code:
            raise CliError("no code given", USAGE)
        return code

    return ask


def login(ctx: Context) -> int:
    auth = ctx.auth()
    username = ctx.args.username or ctx.env.get("DCVFLEET_USERNAME", "")
    if not username:
        cached = auth.cache.load()
        if not ctx.stdin.isatty():
            raise CliError("no user name: pass --username", USAGE)
        default = cached.username if cached else ""
        ctx.err.write(f"Username [{default}]: " if default else "Username: ")
        ctx.err.flush()
        username = ctx.stdin.readline().strip() or default
        if not username:
            raise CliError("no user name given", USAGE)
    password = ctx.env.get("DCVFLEET_PASSWORD") or _read_secret(ctx, "Password: ")
    if not password:
        raise CliError("no password given", USAGE)
    tokens = auth.login(username, password, _new_password(ctx), _mfa_code(ctx, username))
    admin = " (admin)" if ADMINS in _groups(tokens.claims) else ""
    ctx.note(f"Signed in as {username}{admin} to {ctx.stack().api_url}.")
    ctx.remember_stack()
    return 0


def logout(ctx: Context) -> int:
    if ctx.auth().logout():
        ctx.note("Signed out.")
    else:
        ctx.note("You were not signed in.")
    return 0


def _groups(claims: Mapping[str, Any]) -> list[str]:
    groups = claims.get("cognito:groups") or []
    return [str(g) for g in groups] if isinstance(groups, list) else [str(groups)]


def whoami(ctx: Context) -> int:
    auth = ctx.auth()
    auth.id_token()  # refreshed if it is about to expire
    tokens = auth.tokens()
    claims = tokens.claims
    name = claims.get("cognito:username") or tokens.username
    email = f" <{claims['email']}>" if claims.get("email") else ""
    groups = ", ".join(_groups(claims)) or "none"
    expires = time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(tokens.expires_at))
    print(f"{name}{email}", file=ctx.out)
    print(f"groups:  {groups}", file=ctx.out)
    print(f"stack:   {ctx.stack().api_url} ({ctx.stack().source})", file=ctx.out)
    print(f"token:   valid until {expires} (refreshed as needed)", file=ctx.out)
    return 0


# --- desktops ------------------------------------------------------------------------------


def options(ctx: Context) -> int:
    offered = ctx.api().get("/options")
    if ctx.args.json:
        print_json(offered, ctx.out)
        return 0
    rows = [
        [
            backend,
            ", ".join(offered.get("os", {}).get(backend, [])),
            ", ".join(offered.get("instanceTypes", {}).get(backend, [])),
        ]
        for backend in offered.get("backends", [])
    ]
    print(table(["BACKEND", "OS", "INSTANCE TYPES"], rows), file=ctx.out)
    defaults = offered.get("defaultInstanceTypes", {})
    if defaults:
        text = ", ".join(f"{os_name} {kind}" for os_name, kind in defaults.items())
        print(f"\nDefault instance type: {text}.", file=ctx.out)
    if "maxActiveSessions" in offered:
        print(f"Active desktops allowed at once: {offered['maxActiveSessions']}.", file=ctx.out)
    return 0


#: Statuses of a desktop that has ended: it can be hidden, and names prefer the others.
ENDED = ("TERMINATED", "FAILED")


def short_id(session_id: object) -> str:
    """The first block of a desktop's id: enough to name it on the command line."""
    return str(session_id or "").split("-", 1)[0]


def label(session: Mapping[str, Any]) -> str:
    """A desktop as people read it: ``"Linux workstation" (0b7f4c1e)``; the start of its id
    if it has no name."""
    name = session.get("name")
    session_id = str(session.get("sessionId", ""))
    return f'"{name}" ({short_id(session_id)})' if name else short_id(session_id)


def _find(ctx: Context, given: str, *, ended: bool = False) -> dict[str, Any]:
    """One of the caller's desktops, named by its id, a unique start of its id, or its name
    (hidden ones too). A name several desktops share is taken to mean the only one of them that
    has not ended (``ended``: the only one that has), else it is refused."""
    given = given.strip()
    if not given:
        raise CliError("name a desktop: its name or id (see dcvfleet sessions list)", USAGE)
    if UUID.match(given):
        session: dict[str, Any] = ctx.api().get(_path(given.lower()))
        return session
    sessions: list[dict[str, Any]] = (
        ctx.api().get("/sessions", {"hidden": "true"}).get("sessions", [])
    )
    named = [s for s in sessions if s.get("name") == given] or [
        s for s in sessions if str(s.get("name", "")).casefold() == given.casefold()
    ]
    found = named or [s for s in sessions if str(s.get("sessionId", "")).startswith(given.lower())]
    if not found:
        raise CliError(
            f'you have no desktop named "{given}" or with an id starting {given}: '
            "see dcvfleet sessions list --all",
            USAGE,
        )
    if len(found) > 1:
        preferred = [s for s in found if (s.get("status") in ENDED) == ended]
        if len(preferred) == 1:
            return preferred[0]
        listed = ", ".join(f"{short_id(s.get('sessionId'))} ({s.get('status')})" for s in found)
        raise CliError(f'"{given}" names {len(found)} desktops: {listed}; use its id', USAGE)
    return found[0]


def _kind(session: Mapping[str, Any]) -> str:
    """What a desktop is: its profile's name, else its backend and system."""
    if session.get("profileName"):
        return str(session["profileName"])
    return " ".join(str(session[k]) for k in ("backend", "os") if session.get(k))


def sessions_list(ctx: Context) -> int:
    params = {"hidden": "true"} if ctx.args.all else None
    answer = ctx.api().get("/sessions", params)
    if ctx.args.json:
        print_json(answer, ctx.out)
        return 0
    sessions = answer.get("sessions", [])
    if not sessions:
        ctx.note("No desktops. See what you can start: dcvfleet profiles")
        return 0
    rows = [
        [
            s.get("name"),
            str(s.get("status")) + (" (hidden)" if s.get("hidden") else ""),
            _kind(s),
            s.get("instanceType"),
            short_time(s.get("createdAt")),
            short_id(s.get("sessionId")),
        ]
        for s in sessions
    ]
    print(table(["NAME", "STATUS", "PROFILE", "TYPE", "CREATED", "ID"], rows), file=ctx.out)
    return 0


def sessions_show(ctx: Context) -> int:
    session = _find(ctx, ctx.args.session_id)
    if ctx.args.json:
        print_json(session, ctx.out)
        return 0
    profile = session.get("profileName")
    if profile and session.get("profile"):
        profile = f"{profile} ({session['profile']})"
    fields = [
        ("name", session.get("name")),
        ("id", session.get("sessionId")),
        ("status", session.get("status")),
        ("reason", session.get("statusReason")),
        ("hidden", "yes" if session.get("hidden") else None),
        ("profile", profile),
        ("backend", session.get("backend")),
        ("os", session.get("os")),
        ("type", session.get("instanceType")),
        ("instance", session.get("instanceId")),
        ("job", session.get("jobId")),
        ("url", session.get("connectionUrl")),
        ("created", session.get("createdAt")),
        ("updated", session.get("updatedAt")),
    ]
    for key, value in (session.get("progress") or {}).items():
        fields.append((f"progress.{key}", value))
    for key, value in fields:
        if value:
            print(f"{key + ':':<22}{value}", file=ctx.out)
    return 0


def _follow(
    ctx: Context, session_id: str, origin: float | None, first: dict[str, Any] | None = None
) -> int:
    """Watch a provisioning to its end: READY prints the URL (exit 0), anything else fails."""
    handle = short_id(session_id)
    session, progress = watch.wait_provisioned(
        ctx.api(),
        session_id,
        ctx.err,
        origin,
        timeout=ctx.args.timeout,
        again=handle,
        first=first,
    )
    status = session.get("status")
    if status == "READY":
        total = progress.total(session)
        took = f" in {total:.1f}s" if total is not None else ""
        ctx.note(
            f"Desktop {label(session)} is READY{took}. Connect: dcvfleet sessions connect {handle}"
        )
        print(session.get("connectionUrl", ""), file=ctx.out)
        return 0
    reason = session.get("statusReason") or "no reason given"
    if status == "FAILED":
        raise CliError(f"desktop {label(session)} failed: {reason}")
    raise CliError(f"desktop {label(session)} is {status}: {reason}")


#: At the limit: what each active desktop's owner can do with it, and the command for it.
_AT_LIMIT = {
    "PROVISIONING": (("watch", "wait"), ("cancel", "delete")),
    "READY": (("open", "connect"), ("stop", "stop"), ("delete", "delete")),
}


def _at_the_limit(exc: ApiError) -> None:
    """A 409 at the active-desktop limit names the desktops that count, each with the commands
    to open, stop or delete it."""
    body = exc.body if isinstance(exc.body, dict) else {}
    active = body.get("active")
    if not isinstance(active, list):
        if "limit" in exc.message:
            exc.message += " (your desktops: dcvfleet sessions list)"
        return
    lines = [exc.message]
    for desktop in active:
        if not isinstance(desktop, dict):
            continue
        handle = short_id(desktop.get("sessionId"))
        status = str(desktop.get("status"))
        lines.append(f"  {label(desktop)}, {status}:")
        for what, command in _AT_LIMIT.get(status, (("see", "show"),)):
            lines.append(f"    {what + ':':<8}dcvfleet sessions {command} {handle}")
    exc.message = "\n".join(lines)


def sessions_start(ctx: Context) -> int:
    args = ctx.args
    body: dict[str, str] = {}
    if args.profile:
        if args.backend or args.os:
            raise CliError(
                "--profile says what to start: leave out --backend and --os "
                "(see dcvfleet profiles)",
                USAGE,
            )
        body["profile"] = args.profile
        kind = f"profile {args.profile}"
    else:
        body.update(backend=args.backend or "ec2", os=args.os or "linux")
        kind = f"{body['backend']}, {body['os']}"
    if args.instance_type:
        body["instanceType"] = args.instance_type
        kind += f", {args.instance_type}"
    if args.name is not None:
        if not args.name.strip():
            raise CliError("--name: give the desktop a name of 1 to 60 characters", USAGE)
        body["name"] = args.name.strip()
    origin = time.time()
    try:
        # one key for this request: the client's own retries of it get the same desktop
        accepted = ctx.api().call("POST", "/sessions", body, idempotency_key=str(uuid.uuid4()))
    except ApiError as exc:
        if exc.status == 409:
            _at_the_limit(exc)
        raise
    session_id = str(accepted["sessionId"])
    what = label({"sessionId": session_id, "name": body.get("name")})
    ctx.note(f"Desktop {what} requested ({kind}).")
    notice = (accepted.get("notifications") or {}).get("message")
    if notice:  # the first desktop: the user's address was subscribed; confirm it once
        ctx.note(str(notice))
    if args.no_wait:
        ctx.note(f"Watch it: dcvfleet sessions wait {short_id(session_id)}")
        print(session_id, file=ctx.out)
        return 0
    return _follow(ctx, session_id, origin)


def sessions_wait(ctx: Context) -> int:
    session = _find(ctx, ctx.args.session_id)
    return _follow(ctx, str(session["sessionId"]), None, session)


def sessions_resume(ctx: Context) -> int:
    session = _find(ctx, ctx.args.session_id)
    session_id = str(session["sessionId"])
    origin = time.time()
    try:
        ctx.api().call("POST", _path(session_id, "/start"))
    except ApiError as exc:
        if exc.status == 409:
            _at_the_limit(exc)
        raise
    ctx.note(f"Desktop {label(session)} is being resumed.")
    if ctx.args.no_wait:
        ctx.note(f"Watch it: dcvfleet sessions wait {short_id(session_id)}")
        return 0
    return _follow(ctx, session_id, origin)


def _ended(ctx: Context, session: Mapping[str, Any], answer: Any, *, admin: bool = False) -> int:
    """Say what a stop or delete began; then, unless ``--no-wait``, follow it to its end."""
    session_id = str(session.get("sessionId"))
    status = answer.get("status") if isinstance(answer, dict) else None
    ctx.note(f"Desktop {label(session)} is {status or 'being stopped'}.")
    if getattr(ctx.args, "no_wait", True) or admin:
        return 0
    final_session, took = watch.wait_settled(ctx.api(), session_id, ctx.err, ctx.args.timeout)
    final = final_session.get("status")
    reason = final_session.get("statusReason")
    ctx.note(
        f"Desktop {label(final_session)} is {final} (after {duration(took)})"
        + (f": {reason}" if reason else ".")
    )
    return 0 if final in ("STOPPED", "TERMINATED") else 1


def sessions_stop(ctx: Context) -> int:
    session = _find(ctx, ctx.args.session_id)
    answer = ctx.api().call("POST", _path(str(session["sessionId"]), "/stop"))
    return _ended(ctx, session, answer)


def _confirm(ctx: Context, question: str) -> bool:
    if ctx.args.yes:
        return True
    if not ctx.stdin.isatty():
        raise CliError(f"{question} Not on a terminal: pass --yes to confirm", USAGE)
    ctx.err.write(f"{question} [y/N] ")
    ctx.err.flush()
    return ctx.stdin.readline().strip().lower() in ("y", "yes")


def sessions_delete(ctx: Context) -> int:
    """Delete a desktop; one still starting is cancelled (what was made for it is undone)."""
    if not ctx.args.yes and not ctx.stdin.isatty():
        raise CliError(
            f"Delete desktop {ctx.args.session_id}? Not on a terminal: pass --yes to confirm", USAGE
        )
    session = _find(ctx, ctx.args.session_id)
    session_id = str(session["sessionId"])
    starting = session.get("status") == "PROVISIONING"
    created = short_time(session.get("createdAt"))
    if starting:
        question = (
            f"Cancel desktop {label(session)} ({_kind(session)}, requested {created})? "
            "It is still starting: what was made for it is undone."
        )
    else:
        question = (
            f"Delete desktop {label(session)} ({session.get('status')}, {_kind(session)}, "
            f"created {created})? Its host and disk go with it."
        )
    if not _confirm(ctx, question):
        ctx.note("Nothing cancelled." if starting else "Nothing deleted.")
        return 1
    answer = ctx.api().call("DELETE", _path(session_id))
    if starting:
        ctx.note(f"Cancelled {label(session)}: it was still starting.")
    return _ended(ctx, session, answer)


def _patch(ctx: Context, session: Mapping[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    answer: dict[str, Any] = ctx.api().call("PATCH", _path(str(session["sessionId"])), body)
    return answer


def sessions_rename(ctx: Context) -> int:
    name = ctx.args.new_name.strip()
    if not 1 <= len(name) <= 60:
        raise CliError("a desktop's name is 1 to 60 characters", USAGE)
    session = _find(ctx, ctx.args.session_id)
    renamed = _patch(ctx, session, {"name": name})
    ctx.note(
        f'Desktop {short_id(session.get("sessionId"))} is now named "{renamed.get("name", name)}".'
    )
    return 0


def sessions_hide(ctx: Context) -> int:
    session = _find(ctx, ctx.args.session_id, ended=True)
    if session.get("status") not in ENDED:
        handle = short_id(session.get("sessionId"))
        raise CliError(
            f"desktop {label(session)} is {session.get('status')}: only a desktop that has ended "
            f"can be hidden. Delete it first: dcvfleet sessions delete {handle}",
            USAGE,
        )
    _patch(ctx, session, {"hidden": True})
    ctx.note(
        f"Desktop {label(session)} is hidden from your list (dcvfleet sessions list --all "
        "shows it)."
    )
    return 0


def _can_open_browser(env: Mapping[str, str]) -> bool:
    return sys.platform in ("darwin", "win32") or bool(
        env.get("DISPLAY") or env.get("WAYLAND_DISPLAY")
    )


def _not_ready(session: Mapping[str, Any]) -> CliError:
    status = session.get("status")
    handle = short_id(session.get("sessionId"))
    hints = {
        "PROVISIONING": f"wait for it: dcvfleet sessions wait {handle}",
        "STOPPED": f"resume it: dcvfleet sessions resume {handle}",
        "FAILED": str(session.get("statusReason") or "it failed"),
    }
    hint = hints.get(str(status), "start a new one: dcvfleet sessions start")
    return CliError(f"desktop {label(session)} is {status}, not READY: {hint}")


def sessions_connect(ctx: Context) -> int:
    args = ctx.args
    session = _find(ctx, args.session_id)
    session_id = str(session["sessionId"])
    url = session.get("connectionUrl")
    if session.get("status") != "READY" or not url:
        raise _not_ready(session)
    creds = ctx.api().get(_path(session_id, "/credentials"))
    print(f"URL:       {url}", file=ctx.out)
    print(f"User:      {creds.get('username', '')}", file=ctx.out)
    if args.show_password:
        print(f"Password:  {creds.get('password', '')}", file=ctx.out)
    else:
        print(
            "Password:  hidden (--show-password, or dcvfleet sessions credentials "
            f"{short_id(session_id)})",
            file=ctx.out,
        )
    if not args.no_browser and _can_open_browser(ctx.env):
        if webbrowser.open(url):
            ctx.note("Opened the DCV web client in your browser.")
        else:
            ctx.note("Could not open a browser: open the URL above.")
    return 0


def sessions_credentials(ctx: Context) -> int:
    session = _find(ctx, ctx.args.session_id)
    creds = ctx.api().get(_path(str(session["sessionId"]), "/credentials"))
    if ctx.args.json:
        print_json(creds, ctx.out)
        return 0
    print(f"User:      {creds.get('username', '')}", file=ctx.out)
    print(f"Password:  {creds.get('password', '')}", file=ctx.out)
    return 0


# --- profiles ------------------------------------------------------------------------------


def _hours(seconds: object) -> str:
    if not isinstance(seconds, int | float) or seconds <= 0:
        return "never"
    return duration(float(seconds)).replace(" 00m", "").replace(" 00s", "")


_IDLE_ACTIONS = {"stop": "stopped", "hibernate": "hibernated", "terminate": "ended"}


def profiles(ctx: Context) -> int:
    answer = ctx.api().get("/profiles")
    if ctx.args.json:
        print_json(answer, ctx.out)
        return 0
    items = answer.get("items", [])
    if not items:
        ctx.note("No desktop profiles are open to you: ask the fleet's administrator.")
        return 0
    for n, p in enumerate(items):
        if n:
            print(file=ctx.out)
        types = [str(t) for t in p.get("instanceTypes") or []]
        print(f"{p.get('name')}  ({p.get('id')})", file=ctx.out)
        if p.get("description"):
            print(f"  {p['description']}", file=ctx.out)
        if p.get("whenStopped"):
            print(f"  When stopped: {p['whenStopped']}", file=ctx.out)
        idle = p.get("idle") or {}
        facts = [f"{p.get('backend')}, {p.get('os')}"]
        if types:
            facts.append(", ".join([f"{types[0]} (default)", *types[1:]]))
        if idle.get("timeoutSeconds"):
            action = _IDLE_ACTIONS.get(str(idle.get("action")), str(idle.get("action")))
            facts.append(f"{action} after {_hours(idle['timeoutSeconds'])} unused")
        if p.get("maxSessionHours"):
            facts.append(f"stopped after {p['maxSessionHours']} h at most")
        print(f"  {'; '.join(facts)}", file=ctx.out)
        print(f"  Start one: dcvfleet sessions start --profile {p.get('id')}", file=ctx.out)
    return 0


# --- fleet (admins) ------------------------------------------------------------------------


#: ``fleet --state``: the desktop statuses that go with each instance state (an instance
#: ``running`` carries a desktop being provisioned or ready; ``stopped`` one stopping or stopped;
#: ``terminated`` one ending, ended or failed).
STATE_STATUSES = {
    "running": ("PROVISIONING", "READY"),
    "stopped": ("STOPPING", "STOPPED"),
    "terminated": ("TERMINATING", "TERMINATED", "FAILED"),
}


def _fleet_statuses(state: str | None, status: str | None) -> list[str | None]:
    """The statuses to ask the API for (None: every status)."""
    if state is None:
        return [status]
    statuses = STATE_STATUSES[state]
    if status is None:
        return list(statuses)
    if status not in statuses:
        raise CliError(
            f"--status {status} and --state {state} exclude each other: a {state} desktop is "
            + " or ".join(statuses),
            USAGE,
        )
    return [status]


def fleet(ctx: Context) -> int:
    args = ctx.args
    api = ctx.api()
    sessions: list[dict[str, Any]] = []
    for status in _fleet_statuses(args.state, args.status):
        session_params = {"limit": "100"}
        if status:
            session_params["status"] = status
        if args.user:
            session_params["user"] = args.user
        sessions.extend(api.pages("/admin/sessions", "sessions", session_params))
    if args.state:  # one list, newest first, as the API gives each status
        sessions.sort(key=lambda s: str(s.get("createdAt") or ""), reverse=True)
    instance_params = {"limit": "1000"}
    if args.state:
        instance_params["state"] = args.state
    if args.user:
        instance_params["user"] = args.user  # the API finds the owner by name, e-mail or sub
    instances = list(api.pages("/admin/instances", "instances", instance_params))
    if args.json:
        print_json({"instances": instances, "sessions": sessions}, ctx.out)
        return 0
    owners: dict[str, str] = {}
    desktops: dict[str, str] = {}
    for s in sessions:
        name = s.get("ownerName") or s.get("ownerEmail")
        if name and s.get("owner"):
            owners[str(s["owner"])] = str(name)
        desktops[str(s.get("sessionId"))] = label(s)
    print(f"Instances ({len(instances)})", file=ctx.out)
    if instances:
        rows = [
            [
                i.get("instanceId"),
                i.get("instanceType"),
                i.get("state"),
                i.get("backend"),
                _on_instance(i, desktops),
                i.get("ownerName") or owners.get(str(i.get("owner")), i.get("owner")),
                short_time(i.get("launchTime")),
                i.get("availabilityZone"),
            ]
            for i in instances
        ]
        headers = ["INSTANCE", "TYPE", "STATE", "BACKEND", "DESKTOPS", "OWNER", "LAUNCHED", "AZ"]
        print(table(headers, rows), file=ctx.out)
    print(f"\nDesktops ({len(sessions)})", file=ctx.out)
    if sessions:
        rows = [
            [
                s.get("name"),
                str(s.get("status")) + (" (hidden)" if s.get("hidden") else ""),
                s.get("ownerName") or s.get("ownerEmail") or s.get("owner"),
                _kind(s),
                s.get("instanceType"),
                s.get("instanceId") or s.get("jobId"),
                short_time(s.get("createdAt")),
                short_id(s.get("sessionId")),
            ]
            for s in sessions
        ]
        headers = ["NAME", "STATUS", "OWNER", "PROFILE", "TYPE", "INSTANCE", "CREATED", "ID"]
        print(table(headers, rows), file=ctx.out)
    return 0


def _on_instance(instance: Mapping[str, Any], desktops: Mapping[str, str]) -> str:
    """The desktops an instance runs: a Batch instance lists them (``desktops``); an EC2
    instance is one desktop's (``sessionId``)."""
    running = instance.get("desktops")
    if isinstance(running, list):
        return ", ".join(label(d) for d in running if isinstance(d, dict))
    session_id = instance.get("sessionId")
    if not session_id:
        return ""
    return desktops.get(str(session_id), short_id(session_id))


def _fleet_find(ctx: Context, given: str) -> dict[str, Any]:
    """Anyone's desktop, by its id or a unique start of it (from the admin listing)."""
    given = given.strip().lower()
    if UUID.match(given):
        return {"sessionId": given}
    if not given:
        raise CliError("name a desktop by its id (see dcvfleet fleet)", USAGE)
    found = [
        s
        for s in ctx.api().pages("/admin/sessions", "sessions", {"limit": "100"})
        if str(s.get("sessionId", "")).startswith(given)
    ]
    if not found:
        raise CliError(f"no desktop has an id starting {given}: see dcvfleet fleet", USAGE)
    exact = [s for s in found if s.get("sessionId") == given]
    if len(found) > 1 and not exact:
        ids = ", ".join(str(s.get("sessionId")) for s in found)
        raise CliError(f"{given} starts several desktops' ids: {ids}", USAGE)
    return (exact or found)[0]


def fleet_stop(ctx: Context) -> int:
    session = _fleet_find(ctx, ctx.args.session_id)
    answer = ctx.api().call("POST", _path(str(session["sessionId"]), "/stop", admin=True))
    return _ended(ctx, session, answer, admin=True)


def fleet_terminate(ctx: Context) -> int:
    session = _fleet_find(ctx, ctx.args.session_id)
    owner = session.get("ownerName")
    whose = f" of {owner}" if owner else ""
    question = f"Terminate desktop {label(session)}{whose} (its host and disk go with it)?"
    if not _confirm(ctx, question):
        ctx.note("Nothing terminated.")
        return 1
    answer = ctx.api().call("DELETE", _path(str(session["sessionId"]), admin=True))
    return _ended(ctx, session, answer, admin=True)


def preflight(ctx: Context) -> int:
    """``dcvfleet preflight`` (``dcvfleet_cli.preflight``): needs no stack and no sign-in."""
    from dcvfleet_cli import preflight as checks

    return checks.command(ctx.args, ctx.env, ctx.out)

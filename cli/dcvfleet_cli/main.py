"""``dcvfleet``: GPU remote desktops on DCV Fleet from the command line."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from dcvfleet_cli import __version__, commands
from dcvfleet_cli.errors import FAILURE, INTERRUPTED, CliError

Command = Callable[[commands.Context], int]

EPILOG = """\
Which DCV Fleet: --stack-file or --stack-name, else DCVFLEET_STACK_FILE or DCVFLEET_STACK_NAME,
else the local stack of the dcv-fleet folder you are in (.local/stack.json, written by
make local), else the last one you signed in to or named with --stack-file or --stack-name
(kept in ~/.config/dcvfleet/config.json, %APPDATA%\\dcvfleet on Windows).
Sign in first: dcvfleet login.
"""


def _stack_options() -> argparse.ArgumentParser:
    """Where the stack is; accepted before or after the command (hence SUPPRESS)."""
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("stack")
    group.add_argument(
        "--stack-file",
        metavar="PATH",
        default=argparse.SUPPRESS,
        help="the local stack's stack.json or a portal config.json (remembered for next time)",
    )
    group.add_argument(
        "--stack-name",
        metavar="NAME",
        default=argparse.SUPPRESS,
        help="a deployed stack (its CloudFormation outputs; remembered for next time)",
    )
    group.add_argument("--region", default=argparse.SUPPRESS, help="AWS region of --stack-name")
    return parent


def _timeout(parser: argparse.ArgumentParser, default: float = 3600.0) -> None:
    parser.add_argument(
        "--timeout",
        type=float,
        default=default,
        metavar="SECONDS",
        help=f"stop waiting after this long (default {default:.0f})",
    )


def _desktop(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "session_id",
        metavar="DESKTOP",
        help="the desktop's name, its id or the start of its id (see dcvfleet sessions list)",
    )


def build_parser() -> argparse.ArgumentParser:
    stack = _stack_options()
    parser = argparse.ArgumentParser(
        prog="dcvfleet",
        description="GPU remote desktops on DCV Fleet.",
        epilog=EPILOG,
        parents=[stack],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"dcvfleet {__version__}")
    top = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(
        group: argparse._SubParsersAction[argparse.ArgumentParser],
        name: str,
        func: Command,
        help_text: str,
    ) -> argparse.ArgumentParser:
        sub = group.add_parser(name, parents=[stack], help=help_text, description=help_text)
        sub.set_defaults(func=func)
        return sub

    login = command(
        top, "login", commands.login, "sign in (password from a prompt or $DCVFLEET_PASSWORD)"
    )
    login.add_argument("--username", "-u", help="Cognito user name (default: prompt)")
    command(top, "logout", commands.logout, "forget this stack's sign-in")
    command(top, "whoami", commands.whoami, "who is signed in, and to which stack")
    opts = command(top, "options", commands.options, "backends, systems and instance types offered")
    opts.add_argument("--json", action="store_true", help="as JSON")
    kinds = command(
        top,
        "profiles",
        commands.profiles,
        "the kinds of desktop you may start: what each is for and what stopping it does",
    )
    kinds.add_argument("--json", action="store_true", help="as JSON")

    sessions = top.add_parser("sessions", help="your desktops", description="Your desktops.")
    each = sessions.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = command(each, "list", commands.sessions_list, "list your desktops")
    listing.add_argument("--all", action="store_true", help="hidden ones too")
    listing.add_argument("--json", action="store_true", help="as JSON")

    start = command(each, "start", commands.sessions_start, "request a desktop and wait for it")
    start.add_argument(
        "--profile", metavar="PROFILE", help="the kind of desktop (see dcvfleet profiles)"
    )
    start.add_argument("--name", metavar="NAME", help="its name (default: the profile's name)")
    start.add_argument(
        "--backend",
        choices=("ec2", "batch"),
        help="instead of --profile: where it runs (default ec2)",
    )
    start.add_argument(
        "--os",
        choices=("linux", "windows"),
        help="instead of --profile: its system (default linux)",
    )
    start.add_argument(
        "--instance-type", metavar="TYPE", help="a GPU instance type the profile allows"
    )
    start.add_argument("--no-wait", action="store_true", help="print the desktop's id and return")
    _timeout(start)

    for name, func, help_text in (
        ("wait", commands.sessions_wait, "follow a desktop being provisioned until it is READY"),
        ("resume", commands.sessions_resume, "start a stopped desktop again and wait for it"),
    ):
        sub = command(each, name, func, help_text)
        _desktop(sub)
        _timeout(sub)
        if name == "resume":
            sub.add_argument("--no-wait", action="store_true", help="return at once")

    show = command(each, "show", commands.sessions_show, "one desktop in detail")
    _desktop(show)
    show.add_argument("--json", action="store_true", help="as JSON")

    stop = command(
        each,
        "stop",
        commands.sessions_stop,
        "stop a desktop and wait for it (a batch desktop ends)",
    )
    delete = command(
        each,
        "delete",
        commands.sessions_delete,
        "delete a desktop and its disk, and wait for it (one still starting is cancelled)",
    )
    delete.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    for sub in (stop, delete):
        _desktop(sub)
        sub.add_argument(
            "--no-wait", action="store_true", help="return at once, without waiting for the end"
        )
        # waiting is the default now; --wait stays accepted for scripts written before
        sub.add_argument("--wait", action="store_true", help=argparse.SUPPRESS)
        _timeout(sub, 900.0)

    connect = command(
        each, "connect", commands.sessions_connect, "the DCV web client URL and user name"
    )
    _desktop(connect)
    connect.add_argument("--show-password", action="store_true", help="print the password too")
    connect.add_argument("--no-browser", action="store_true", help="do not open a browser")

    creds = command(
        each, "credentials", commands.sessions_credentials, "a desktop's DCV user name and password"
    )
    _desktop(creds)
    creds.add_argument("--json", action="store_true", help="as JSON")

    rename = command(each, "rename", commands.sessions_rename, "give a desktop another name")
    _desktop(rename)
    rename.add_argument("new_name", metavar="NEW_NAME", help="1 to 60 characters")
    hide = command(
        each,
        "hide",
        commands.sessions_hide,
        "hide a desktop that has ended from your list (list --all still shows it)",
    )
    _desktop(hide)

    fleet = command(top, "fleet", commands.fleet, "every desktop and instance (admins only)")
    fleet.add_argument(
        "--state",
        choices=("running", "stopped", "terminated"),
        help="only instances and desktops in this state: running (starting or ready), "
        "stopped (stopping or stopped) or terminated (ending, ended or failed)",
    )
    fleet.add_argument("--user", metavar="USER", help="one user's (user name, e-mail or sub)")
    fleet.add_argument(
        "--status",
        metavar="STATUS",
        type=str.upper,
        choices=(
            "PROVISIONING",
            "READY",
            "STOPPING",
            "STOPPED",
            "TERMINATING",
            "TERMINATED",
            "FAILED",
        ),
        help="only desktops with this status",
    )
    fleet.add_argument("--json", action="store_true", help="as JSON")
    actions = fleet.add_subparsers(dest="action", metavar="ACTION")
    fleet_stop = command(actions, "stop", commands.fleet_stop, "stop anyone's desktop")
    fleet_stop.add_argument("session_id", metavar="ID", help="its id, or the start of it")
    terminate = command(
        actions, "terminate", commands.fleet_terminate, "terminate anyone's desktop"
    )
    terminate.add_argument("session_id", metavar="ID", help="its id, or the start of it")
    terminate.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    check = command(
        top,
        "preflight",
        commands.preflight,
        "check an AWS account and region before sam deploy (read-only calls)",
    )
    check.add_argument(
        "--config-env",
        metavar="ENV",
        help="samconfig.toml environment whose parameter_overrides the deploy uses "
        "(default: default; local with --local)",
    )
    check.add_argument(
        "--params", metavar="OVERRIDES", help='parameters on top, as sam deploy: "K=V K2=V2"'
    )
    check.add_argument("--template", default="template.yaml", metavar="PATH")
    check.add_argument("--config-file", default="samconfig.toml", metavar="PATH")
    check.add_argument("--profile", metavar="NAME", help="AWS profile (default: the SDK's)")
    check.add_argument("--endpoint-url", metavar="URL", help="an AWS emulator's endpoint")
    check.add_argument(
        "--local",
        action="store_true",
        help="check the local stack's emulator (.local/stack.json, or --stack-file)",
    )
    check.add_argument("--json", action="store_true", help="as JSON")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    context = commands.Context(args)
    try:
        code: int = args.func(context)
        if code == 0 and (getattr(args, "stack_file", None) or getattr(args, "stack_name", None)):
            context.remember_stack()  # pointed at a stack: the one to use from now on
    except CliError as exc:
        print(f"dcvfleet: {exc.message}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("\ndcvfleet: interrupted", file=sys.stderr)
        return INTERRUPTED
    except BrokenPipeError:
        # the reader went away (dcvfleet sessions list | head -1): no traceback at exit either
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return FAILURE
    return code


if __name__ == "__main__":
    sys.exit(main())

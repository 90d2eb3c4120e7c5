"""Each Lambda function's cold initialisation, as Lambda's INIT phase runs it, now and at a baseline.

    python -m bench.coldstart                       # every function, 5 repeats, baseline 7011f14
    python -m bench.coldstart --repeat 1 --only CreateCredentialsFunction --baseline ''

For every ``AWS::Serverless::Function`` in template.yaml (its Handler, its Environment merged over
the Globals'), a fresh interpreter is started as Lambda would start one: the function's code on
``PYTHONPATH``, the variables Lambda sets (``AWS_LAMBDA_FUNCTION_NAME``, ``LAMBDA_TASK_ROOT``,
``AWS_REGION`` ...), dummy credentials, and no network (the instance metadata service is off and
nothing is called). In it are measured:

- **import**: importing the handler's module, which is what the INIT phase runs;
- **clients**: creating the boto3 clients the handler uses (``dcvfleet.aws.client`` per service its
  body names), which our code does on the first invocation, so still before the first answer;
- **RSS**: the interpreter's peak resident memory afterwards.

A function with SnapStart (``SnapStart: ApplyOn: PublishedVersions``) is started as Lambda
starts its INIT when a version is published (``AWS_LAMBDA_INITIALIZATION_TYPE=snap-start``): its
clients are made during the import, before the snapshot. Then a restore is played as Lambda's
runtime plays it (each after-restore hook registered with snapshot_restore_py, then the handler's
clients made again): **restored** is that, our part of a cold start from the snapshot. Lambda's
own restore of the snapshot is not measured here (it cannot be, off AWS).

Each figure is the median of ``--repeat`` fresh interpreters; now and baseline are measured in
turn, one interpreter each, so that a busy machine slows both alike. The provisioning path is the
workflow's Lambda tasks from its start to Succeed on a new EC2 desktop (each Choice's Default),
read from statemachines/provision_session.asl.json (a warm pool hit takes it too: the claim is
in LaunchInstance). The pooled path is that path with the function a host's Host Ready passes
through to the waiting workflow (AgentEvents, a rule's target on the fleet bus); under the table
its total is printed now and at the baseline (the baseline's own workflow and functions), on
demand and, for the functions with SnapStart, after a restore.

The baseline is the same measurement on the code of a git revision (``--baseline``, default the
revision these lazy imports started from), extracted with ``git archive`` into a temporary folder.

These are this host's figures, not Lambda's: Lambda's INIT also starts the runtime and, before
that, downloads and unpacks the deployment package (https://docs.aws.amazon.com/lambda/latest/dg/
lambda-runtime-environment.html), and an arm64 function of 256 MB gets a fraction of a vCPU
(https://docs.aws.amazon.com/lambda/latest/dg/configuration-memory.html). Prints figures; asserts
nothing.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from samtranslator.yaml_helper import yaml_parse

ROOT = Path(__file__).resolve().parent.parent
BASELINE = "7011f14"
PROVISION_ASL = Path("statemachines") / "provision_session.asl.json"
REGION = "us-east-1"

#: Runs in the fresh interpreter: import the handler's module, create its clients, print figures;
#: for a SnapStart INIT, then play a restore: the after-restore hooks, the clients made again.
CHILD = r"""
import json, os, resource, sys, time
started = time.perf_counter()
import importlib
module = importlib.import_module(sys.argv[1])
imported = time.perf_counter()
from dcvfleet.aws import client
services = json.loads(sys.argv[2])
for service in services:
    client(service)
clients = time.perf_counter()
restored = None
if os.environ.get("AWS_LAMBDA_INITIALIZATION_TYPE") == "snap-start":
    from snapshot_restore_py import get_after_restore
    for hook, args, kwargs in get_after_restore():
        hook(*args, **kwargs)
    for service in services:
        client(service)
    restored = time.perf_counter() - clients
print(json.dumps({
    "import": imported - started,
    "clients": clients - imported,
    "restored": restored,
    "rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    "handler": callable(getattr(module, sys.argv[3], None)),
}))
"""

#: The helpers of the handler modules that create clients, and the services they create.
HELPER_CLIENTS = {
    "session_store": ("dynamodb",),
    "batch_jobs": ("batch", "ecs"),
    "session_secrets": ("secretsmanager",),
    "warm_pool": ("dynamodb", "lambda"),
    "_keys": ("secretsmanager",),
}


@dataclass(frozen=True)
class Function:
    """A Lambda function of the template, as the bench starts it."""

    name: str
    handler: str
    environment: dict[str, str]
    memory: int
    snapstart: bool = False

    @property
    def module(self) -> str:
        return self.handler.rsplit(".", 1)[0]

    @property
    def attribute(self) -> str:
        return self.handler.rsplit(".", 1)[1]


@dataclass(frozen=True)
class Figures:
    """Medians over fresh interpreters, in seconds and MiB."""

    imports: float
    clients: float
    rss_mib: float
    #: With SnapStart: our part of a cold start from the snapshot (None without SnapStart).
    restored: float | None = None

    @property
    def total(self) -> float:
        return self.imports + self.clients

    @property
    def cold(self) -> float:
        """What a cold start of the function costs here: after a restore with SnapStart, else
        the whole INIT."""
        return self.total if self.restored is None else self.restored


def _resolve(value: Any, parameters: Mapping[str, Any]) -> str:
    """An environment value with intrinsics resolved to parameter defaults or a placeholder (the
    bench needs values of the right shape, not real resources)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    if isinstance(value, dict) and len(value) == 1:
        ((key, argument),) = value.items()
        if key == "Ref":
            default = parameters.get(argument, {}).get("Default")
            if isinstance(default, list):
                return ",".join(str(item) for item in default)
            return str(default) if default is not None else f"bench-{argument}"
        if key == "Fn::Join":
            separator, items = argument
            parts = [_resolve(item, parameters) for item in items]
            return str(separator).join(parts)
        if key == "Fn::Sub":
            text = argument if isinstance(argument, str) else argument[0]
            return text.replace("${", "bench-").replace("}", "")
        if key == "Fn::If":
            return _resolve(argument[1], parameters)
    return "bench-value"


def functions(root: Path) -> list[Function]:
    """Every Lambda function of the template at ``root``, in template order."""
    template = yaml_parse((root / "template.yaml").read_text())
    parameters = template.get("Parameters", {})
    defaults = template.get("Globals", {}).get("Function", {})
    found = []
    for name, resource in template["Resources"].items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        props = {**defaults, **resource.get("Properties", {})}
        variables = {
            **defaults.get("Environment", {}).get("Variables", {}),
            **(resource["Properties"].get("Environment") or {}).get("Variables", {}),
        }
        environment = {key: _resolve(value, parameters) for key, value in variables.items()}
        memory = props.get("MemorySize", 128)
        snapstart = (props.get("SnapStart") or {}).get("ApplyOn") == "PublishedVersions"
        found.append(
            Function(
                name,
                props["Handler"],
                environment,
                memory if isinstance(memory, int) else 0,
                snapstart,
            )
        )
    return found


def provisioning_path(root: Path) -> list[str]:
    """The provisioning workflow's Lambda tasks, in order, on a new EC2 desktop: from StartAt,
    each Choice's Default, to the end; each task's function by its DefinitionSubstitutions name
    (``${LaunchInstanceFunctionArn}`` is LaunchInstanceFunction)."""
    definition = json.loads((root / PROVISION_ASL).read_text())
    states = definition["States"]
    path: list[str] = []
    name: str | None = definition["StartAt"]
    while name is not None and name not in path:
        state = states[name]
        arguments = state.get("Parameters") or state.get("Arguments") or {}
        function = arguments.get("FunctionName")
        if state["Type"] == "Task" and isinstance(function, str):
            path.append(function.removeprefix("${").removesuffix("Arn}"))
        name = state.get("Default") if state["Type"] == "Choice" else state.get("Next")
    return path


#: The function a host's Host Ready passes through to its waiting workflow (a rule's target on
#: the fleet bus, not a workflow task): part of every desktop's wait, a pool hit's included.
HOST_READY_CONSUMER = "AgentEventsFunction"


def pooled_path(root: Path) -> list[str]:
    """The functions a warm pool hit waits for: the provisioning path's, with the Host Ready
    consumer between the task that parks the workflow's token and the one after it."""
    path = provisioning_path(root)
    waiting = next((i for i, name in enumerate(path) if name.startswith("AwaitHostReady")), None)
    if waiting is not None:
        path.insert(waiting + 1, HOST_READY_CONSUMER)
    return path


def handler_clients(root: Path, function: Function) -> list[str]:
    """The boto3 services the handler's body asks ``client`` for, directly or through the
    helpers in HELPER_CLIENTS."""
    source = root / "functions" / (function.module.replace(".", "/") + ".py")
    tree = ast.parse(source.read_text())
    services: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name == function.attribute:
            for call in ast.walk(node):
                if not isinstance(call, ast.Call) or not isinstance(call.func, ast.Name):
                    continue
                name = call.func.id
                if name == "client" and call.args and isinstance(call.args[0], ast.Constant):
                    services.append(str(call.args[0].value))
                services.extend(HELPER_CLIENTS.get(name, ()))
    return list(dict.fromkeys(services))


def lambda_environment(root: Path, function: Function) -> dict[str, str]:
    """The variables Lambda sets for a Python function, the function's own, dummy credentials,
    and nothing from this shell (https://docs.aws.amazon.com/lambda/latest/dg/
    configuration-envvars.html#configuration-envvars-runtime)."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "en_US.UTF-8",
        "PYTHONPATH": str(root / "functions"),
        "PYTHONDONTWRITEBYTECODE": "1",
        "_HANDLER": function.handler,
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
        "AWS_LAMBDA_FUNCTION_NAME": function.name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(function.memory),
        "AWS_LAMBDA_FUNCTION_VERSION": "1" if function.snapstart else "$LATEST",
        # a SnapStart function's INIT runs when its version is published (dcvfleet.snapstart)
        **({"AWS_LAMBDA_INITIALIZATION_TYPE": "snap-start"} if function.snapstart else {}),
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{function.name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": "bench",
        "AWS_LAMBDA_RUNTIME_API": "127.0.0.1:9001",
        "LAMBDA_TASK_ROOT": str(root / "functions"),
        "LAMBDA_RUNTIME_DIR": str(root / "functions"),
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "AKIABENCHBENCHBENCH0",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_SESSION_TOKEN": "bench",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
        "AWS_XRAY_DAEMON_ADDRESS": "127.0.0.1:2000",
        **function.environment,
    }


def measure_once(root: Path, function: Function) -> dict[str, Any]:
    """One fresh interpreter's figures for ``function``."""
    services = handler_clients(root, function)
    completed = subprocess.run(
        [sys.executable, "-c", CHILD, function.module, json.dumps(services), function.attribute],
        env=lambda_environment(root, function),
        cwd=root / "functions",
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    if completed.returncode != 0:
        raise RuntimeError(
            f"{function.name}: {function.handler} failed to start:\n{completed.stderr}"
        )
    figures: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    if not figures["handler"]:
        raise RuntimeError(f"{function.name}: {function.handler} is not a callable")
    return figures


def medians(runs: list[dict[str, Any]]) -> Figures:
    """The medians of fresh interpreters' figures."""
    restored = [run["restored"] for run in runs if run.get("restored") is not None]
    return Figures(
        imports=statistics.median(run["import"] for run in runs),
        clients=statistics.median(run["clients"] for run in runs),
        rss_mib=statistics.median(run["rss_kib"] for run in runs) / 1024,
        restored=statistics.median(restored) if restored else None,
    )


def measure(
    listed: list[Function], repeat: int, tree: Path | None, old: dict[str, Function]
) -> tuple[dict[str, Figures], dict[str, Figures]]:
    """Each function's medians now and, when ``tree`` is given, at the baseline. The two are
    measured alternately, one interpreter each in turn, so that a busy machine slows both alike."""
    now: dict[str, list[dict[str, Any]]] = {function.name: [] for function in listed}
    then: dict[str, list[dict[str, Any]]] = {name: [] for name in now if name in old}
    for _ in range(repeat):
        for function in listed:
            now[function.name].append(measure_once(ROOT, function))
            if tree is not None and function.name in then:
                then[function.name].append(measure_once(tree, old[function.name]))
    return (
        {name: medians(runs) for name, runs in now.items()},
        {name: medians(runs) for name, runs in then.items() if runs},
    )


@contextmanager
def revision_tree(revision: str) -> Iterator[Path]:
    """The repository's functions, template and workflows as of ``revision``, in a temp folder."""
    with tempfile.TemporaryDirectory(prefix="coldstart-") as folder:
        archive = Path(folder) / "tree.tar"
        subprocess.run(
            [
                *("git", "archive", "--format=tar", f"--output={archive}", revision),
                *("template.yaml", "functions", "statemachines"),
            ],
            cwd=ROOT,
            check=True,
        )
        with tarfile.open(archive) as tar:
            tar.extractall(Path(folder) / "tree", filter="data")
        yield Path(folder) / "tree"


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:6.0f}"


def _short(name: str) -> str:
    return name.removesuffix("Function")


def path_lines(
    current: dict[str, Figures],
    baseline: dict[str, Figures],
    path: list[str],
    old_path: list[str],
    revision: str,
) -> list[str]:
    """The pooled path's total, now and at the baseline, side by side: its functions, their INIT
    on demand, and a cold start of each with SnapStart (our part after a restore; Lambda's own
    restore of each snapshot is not measured here)."""
    rows = []
    for label, figures, names in (("now", current, path), (f"at {revision}", baseline, old_path)):
        if not names or not all(name in figures for name in names):
            continue
        init_ms = sum(figures[name].total for name in names) * 1000
        restores = sum(1 for name in names if figures[name].restored is not None)
        cold = f"{sum(figures[name].cold for name in names) * 1000:,.0f} ms"
        if restores:
            cold += f" + {restores} snapshot restore{'s' if restores > 1 else ''}"
        rows.append((label, len(names), f"{init_ms:,.0f} ms", cold, names))
    if not rows:
        return []
    lines = [
        "pooled path (a new ec2 desktop, a warm pool hit's included): its Lambda functions",
        f"  {'':<16} {'functions':>9} {'INIT':>10}   {'a cold start of each':<28}",
    ]
    for label, count, init, cold, _ in rows:
        lines.append(f"  {label:<16} {count:>9} {init:>10}   {cold:<28}")
    for label, _, _, _, names in rows:
        lines.append(f"  {label}: {' > '.join(_short(name) for name in names)}")
    if any("restore" in row[3] for row in rows):
        lines.append(
            "  INIT is what an on-demand cold start pays; with SnapStart it runs when the version"
            " is published, and a cold start pays the after-restore hooks and the clients made"
            " again (measured here) and Lambda's restore of the snapshot (not measured: AWS only)."
        )
    return lines


def report(
    current: dict[str, Figures],
    baseline: dict[str, Figures],
    listed: list[Function],
    path: list[str],
    revision: str,
    *,
    old_path: list[str] | None = None,
) -> str:
    """The table: one row per function, grouped by handler module, baseline beside now."""
    lines = []
    both = bool(baseline)
    head = (
        f"{'function':<30} {'import':>6} {'clients':>7} {'total':>6} {'RSS MiB':>7} {'restored':>8}"
    )
    if both:
        head += f" | {'import':>6} {'clients':>7} {'total':>6} {'RSS MiB':>7}"
        lines.append(f"{'':<30} {'now (ms)':^39} | {f'at {revision} (ms)':^30}")
    lines.append(head)
    module = ""
    for function in listed:
        if function.module != module:
            module = function.module
            lines.append(f"{module}")
        now = current[function.name]
        row = f"  {function.name:<28} {_ms(now.imports)} {_ms(now.clients):>7} {_ms(now.total)}"
        row += f" {now.rss_mib:7.1f}"
        row += f" {_ms(now.restored):>8}" if now.restored is not None else f" {'-':>8}"
        old = baseline.get(function.name)
        if old is not None:
            row += (
                f" | {_ms(old.imports)} {_ms(old.clients):>7} {_ms(old.total)} {old.rss_mib:7.1f}"
            )
        lines.append(row)
    lines.extend(path_lines(current, baseline, path, old_path or [], revision))
    lines.append(
        "Host figures (this machine, not Lambda): Lambda's INIT also starts the runtime and "
        "downloads the package first."
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="fresh interpreters per function")
    parser.add_argument(
        "--baseline", default=BASELINE, help="git revision to compare ('' for none)"
    )
    parser.add_argument("--only", action="append", default=[], help="a function's logical id")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat: at least 1")
    listed = functions(ROOT)
    if args.only:
        unknown = set(args.only) - {function.name for function in listed}
        if unknown:
            parser.error(f"--only: no such function in template.yaml: {', '.join(sorted(unknown))}")
        listed = [function for function in listed if function.name in args.only]
    old_path: list[str] = []
    if args.baseline:
        with revision_tree(args.baseline) as tree:
            old = {function.name: function for function in functions(tree)}
            old_path = pooled_path(tree)
            current, baseline = measure(listed, args.repeat, tree, old)
    else:
        current, baseline = measure(listed, args.repeat, None, {})
    print(report(current, baseline, listed, pooled_path(ROOT), args.baseline, old_path=old_path))
    return 0


if __name__ == "__main__":
    sys.exit(main())

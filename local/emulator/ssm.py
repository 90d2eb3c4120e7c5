"""Systems Manager: Run Command on simulated hosts, documents from CloudFormation, AWS's public
parameters.

A command runs on the managed nodes the host simulator reports (``SimulatorHooks.managed_node``):
each ``mainSteps`` step whose ``platformType`` precondition fits the host runs, in order, through
``bash`` in the host's workdir and environment (``dcv`` and ``nvidia-smi`` on ``PATH`` are its
simulators). Simulated hosts run Linux, so a Windows host's ``aws:runPowerShellScript`` step runs
the document's ``aws:runShellScript`` lines instead (reported under the PowerShell step's name).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import subprocess
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from local.emulator.cloudformation import created_from_template
from local.emulator.gap import Context, Gap, Patch
from local.emulator.hooks import ManagedNode, SimulatorHooks

log = logging.getLogger("local.emulator")


#: GetCommandInvocation returns the first 24,000 characters of each output.
OUTPUT_LIMIT = 24000
NODE_POLL_SECONDS = 0.2
DEFAULT_EXECUTION_TIMEOUT = 3600
PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_.-]+)\s*\}\}")
SHELL_STEP, POWERSHELL_STEP = "aws:runShellScript", "aws:runPowerShellScript"
#: The platform each script action runs on when its step names no precondition.
ACTION_PLATFORM = {SHELL_STEP: "Linux", POWERSHELL_STEP: "Windows"}


def _ssm_error(code: str, message: str) -> Exception:
    from moto.ssm.exceptions import SSMException

    return SSMException(code, message)


def resolve_parameters(content: dict[str, Any], given: dict[str, Any]) -> dict[str, list[str]]:
    """A document's parameters for one command, as SSM checks them: every given name declared,
    every parameter without a default given, a String given one value, each given value within
    ``allowedValues``, fully matching ``allowedPattern`` and within ``minChars``/``maxChars``.
    Raises InvalidParameters otherwise."""
    declared: dict[str, Any] = content.get("parameters") or {}
    for name in given:
        if name not in declared:
            raise _ssm_error(
                "InvalidParameters", f'Parameter "{name}" is not declared by the document.'
            )
    resolved: dict[str, list[str]] = {}
    for name, spec in declared.items():
        if name not in given:
            if "default" not in spec:
                raise _ssm_error(
                    "InvalidParameters", f'Parameter "{name}" is required and was not given.'
                )
            default = spec["default"]
            resolved[name] = (
                [str(v) for v in default] if isinstance(default, list) else [str(default)]
            )
            continue
        values = given[name] if isinstance(given[name], list) else [given[name]]
        if spec.get("type", "String") == "String" and len(values) != 1:
            raise _ssm_error(
                "InvalidParameters", f'Parameter "{name}" is a String: give exactly one value.'
            )
        for value in map(str, values):
            problem = _parameter_problem(spec, value)
            if problem:
                raise _ssm_error(
                    "InvalidParameters", f'Parameter "{name}" value "{value}" {problem}.'
                )
        resolved[name] = [str(v) for v in values]
    return resolved


def _parameter_problem(spec: dict[str, Any], value: str) -> str:
    allowed = spec.get("allowedValues")
    if allowed is not None and value not in [str(v) for v in allowed]:
        return f"is not one of the allowed values {allowed}"
    pattern = spec.get("allowedPattern")
    if pattern is not None and not re.fullmatch(pattern, value):
        return f"does not match the allowed pattern {pattern}"
    if "minChars" in spec and len(value) < int(spec["minChars"]):
        return f"is shorter than {spec['minChars']} characters"
    if "maxChars" in spec and len(value) > int(spec["maxChars"]):
        return f"is longer than {spec['maxChars']} characters"
    return ""


def substitute(lines: list[str], parameters: dict[str, list[str]]) -> list[str]:
    """``{{ name }}`` -> the parameter's value; a line that is only a list parameter becomes one
    line per value. Placeholders naming no parameter (``{{ssm:...}}``) stay as written."""
    out: list[str] = []
    for line in lines:
        whole = PLACEHOLDER.fullmatch(line.strip())
        if whole and whole.group(1) in parameters:
            out.extend(parameters[whole.group(1)])
            continue
        out.append(
            PLACEHOLDER.sub(
                lambda m: (
                    "\n".join(parameters[m.group(1)]) if m.group(1) in parameters else m.group(0)
                ),
                line,
            )
        )
    return out


def step_applies(step: dict[str, Any], platform: str) -> bool:
    """Whether a schemaVersion 2.2 step runs on a node: its ``platformType`` precondition, or
    (without one) whether its action is for the node's platform."""
    precondition = step.get("precondition")
    if isinstance(precondition, dict) and "StringEquals" in precondition:
        left, right = precondition["StringEquals"]
        if left == "platformType":
            return bool(right == platform)
    return ACTION_PLATFORM.get(step.get("action", ""), platform) == platform


def step_commands(step: dict[str, Any], steps: list[dict[str, Any]]) -> list[str] | str:
    """The shell lines a step runs on a simulated host (which runs Linux), or why it cannot run:
    a Windows node's ``aws:runPowerShellScript`` step runs the document's first
    ``aws:runShellScript`` step's lines instead."""
    action = step.get("action")
    if action == POWERSHELL_STEP:
        step = next((s for s in steps if s.get("action") == SHELL_STEP), {})
        if not step:
            return (
                "local stack: a simulated Windows host runs the document's aws:runShellScript"
                " step in place of its aws:runPowerShellScript step, and this document has none"
            )
    elif action != SHELL_STEP:
        return f"local stack: the {action} action is not emulated"
    commands = step.get("inputs", {}).get("runCommand", [])
    return [commands] if isinstance(commands, str) else [str(c) for c in commands]


def _now_iso() -> str:
    from datetime import UTC

    return datetime.now(UTC).isoformat()


@dataclass
class StepResult:
    name: str
    status: str = "Pending"
    details: str = "Pending"
    code: int = -1
    stdout: str = ""
    stderr: str = ""
    started: str = ""
    ended: str = ""

    def finish(self, status: str, details: str, code: int, out: str = "", err: str = "") -> None:
        self.status, self.details, self.code = status, details, code
        self.stdout, self.stderr = out[:OUTPUT_LIMIT], err[:OUTPUT_LIMIT]
        self.ended = _now_iso()


@dataclass
class Invocation:
    """One command on one node, step by step, kept in step with moto's invocation record."""

    command: Any
    instance_id: str
    document_version: str
    steps: list[StepResult]
    record: dict[str, Any]
    status: str = "Pending"
    details: str = "Pending"

    def sync(self) -> None:
        """Moto's records (ListCommands, the command's status) follow the real outcome."""
        selected = [s for s in self.steps if s.details != "Skipped"] or self.steps
        failing = next((s for s in selected if s.status not in ("Success", "Pending")), None)
        shown = failing or (selected[-1] if selected else None)
        self.record.update(
            Status=self.status,
            StatusDetails=self.details,
            ResponseCode=shown.code if shown else -1,
            PluginName=shown.name if shown else "",
            StandardOutputContent="".join(s.stdout for s in selected)[:OUTPUT_LIMIT],
            StandardErrorContent="".join(s.stderr for s in selected)[:OUTPUT_LIMIT],
        )
        with _run_commands_lock:
            runs = [r for k, r in RUN_COMMANDS.items() if k[0] == self.command.command_id]
        done = [r for r in runs if r.status not in ("Pending", "InProgress")]
        failed = [r for r in done if r.status != "Success"]
        self.command.completed_count = len(done)
        self.command.error_count = len(failed)
        if len(done) < len(runs):
            status = "InProgress" if any(r.status == "InProgress" for r in runs) else "Pending"
        else:
            status = failed[0].status if failed else "Success"
        self.command.status = self.command.status_details = status


#: (command id, instance id) -> its invocation, for every command sent to a managed node.
RUN_COMMANDS: dict[tuple[str, str], Invocation] = {}
_run_commands_lock = threading.Lock()


def _run_script(
    lines: list[str], node: ManagedNode, where: Path, timeout: float
) -> tuple[int | None, str, str]:
    """Run the lines as one bash script in the node's environment: (exit code or None when it
    timed out, stdout, stderr); the script and its output stay in ``where``, as SSM Agent keeps
    them in its orchestration directory."""
    where.mkdir(parents=True, exist_ok=True)
    script = where / "_script.sh"
    script.write_text("\n".join(lines) + "\n", encoding="utf-8")
    process = subprocess.Popen(
        ["bash", str(script)],
        cwd=node.cwd,
        env=dict(node.environ),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        out, err = process.communicate(timeout=timeout)
        code: int | None = process.returncode
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, 9)
        out, err = process.communicate()
        code = None
    stdout, stderr = out.decode(errors="replace"), err.decode(errors="replace")
    (where / "stdout").write_text(stdout, encoding="utf-8")
    (where / "stderr").write_text(stderr, encoding="utf-8")
    return code, stdout, stderr


def _deliver_invocation(
    hooks: SimulatorHooks,
    invocation: Invocation,
    steps: list[dict[str, Any]],
    parameters: dict[str, list[str]],
    deadline: float,
) -> None:
    """Wait for the node's SSM Agent (until the delivery timeout), then run the steps in order."""
    while True:
        node = hooks.managed_node(invocation.instance_id)
        if node is None or node.online or time.monotonic() >= deadline:
            break
        time.sleep(NODE_POLL_SECONDS)
    if node is None or not node.online:
        status, details = (
            ("Failed", "Undeliverable") if node is None else ("TimedOut", "DeliveryTimedOut")
        )
        for result in invocation.steps:
            result.finish(status, details, -1)
        invocation.status, invocation.details = status, details
        invocation.sync()
        return
    invocation.status = invocation.details = "InProgress"
    invocation.record["ExecutionStartDateTime"] = _now_iso()
    invocation.sync()
    where = Path(node.cwd) / "ssm" / invocation.command.command_id
    for step, result in zip(steps, invocation.steps, strict=True):
        if not step_applies(step, node.platform):
            result.finish("Success", "Skipped", -1)
            continue
        result.started, result.status, result.details = _now_iso(), "InProgress", "InProgress"
        commands = step_commands(step, steps)
        if isinstance(commands, str):
            result.finish("Failed", "Failed", 1, err=commands + "\n")
            continue
        timeout = float(step.get("inputs", {}).get("timeoutSeconds", DEFAULT_EXECUTION_TIMEOUT))
        code, out, err = _run_script(
            substitute(commands, parameters), node, where / result.name, timeout
        )
        if code is None:
            result.finish("TimedOut", "ExecutionTimedOut", -1, out, err)
        elif code == 0:
            result.finish("Success", "Success", 0, out, err)
        else:
            result.finish("Failed", "Failed", code, out, err)
    ran = [r for r in invocation.steps if r.details != "Skipped"]
    failing = next((r for r in ran if r.status != "Success"), None)
    invocation.status = failing.status if failing else "Success"
    invocation.details = failing.details if failing else "Success"
    invocation.record["ExecutionEndDateTime"] = _now_iso()
    invocation.sync()


def run_command_patches(hooks: SimulatorHooks) -> list[Patch]:
    """SSM_RUN_COMMAND: SendCommand checks the document, its parameters and the nodes as SSM does,
    then runs the document's steps on each simulated host; GetCommandInvocation reports them."""
    import inspect

    from moto.ec2.models import ec2_backends
    from moto.ssm.models import MAX_TIMEOUT_SECONDS, SimpleSystemManagerBackend

    original_send = SimpleSystemManagerBackend.send_command
    original_get = SimpleSystemManagerBackend.get_command_invocation
    signature = inspect.signature(original_send)

    def send_command(self: Any, *args: Any, **kwargs: Any) -> Any:
        call = signature.bind(self, *args, **kwargs).arguments
        document = self._get_documents(call.get("document_name")).get_default_version()
        content: dict[str, Any] = document.content_json or {}
        parameters = resolve_parameters(content, call.get("parameters") or {})
        ec2 = ec2_backends[self.account_id][self.region_name]
        for instance_id in call.get("instance_ids") or []:
            instance = ec2.get_instance_by_id(instance_id)
            alive = instance is not None and instance.state not in ("shutting-down", "terminated")
            if not alive or hooks.managed_node(instance_id) is None:
                raise _ssm_error(
                    "InvalidInstanceId",
                    f"Instances [[{instance_id}]] not in a valid state for account"
                    f" {self.account_id}",
                )
        command = original_send(self, *args, **kwargs)
        steps = content.get("mainSteps") or [
            {"name": "unsupported", "action": f"schemaVersion {content.get('schemaVersion')}"}
        ]
        timeout = call.get("timeout_seconds") or MAX_TIMEOUT_SECONDS
        deadline = time.monotonic() + float(timeout)
        for record in command.invocations:
            invocation = Invocation(
                command=command,
                instance_id=record["InstanceId"],
                document_version=document.document_version,
                steps=[StepResult(str(step.get("name", ""))) for step in steps],
                record=record,
            )
            with _run_commands_lock:
                RUN_COMMANDS[(command.command_id, invocation.instance_id)] = invocation
        for record in command.invocations:
            invocation = RUN_COMMANDS[(command.command_id, record["InstanceId"])]
            invocation.sync()
            threading.Thread(
                target=_deliver_invocation,
                args=(hooks, invocation, steps, parameters, deadline),
                name=f"run-command-{invocation.instance_id}",
                daemon=True,
            ).start()
        return command

    def get_command_invocation(
        self: Any, command_id: str, instance_id: str, plugin_name: str | None
    ) -> dict[str, Any]:
        invocation = RUN_COMMANDS.get((command_id, instance_id))
        if invocation is None:
            return dict(original_get(self, command_id, instance_id, plugin_name))
        names = [s.name for s in invocation.steps]
        if plugin_name is None and len(names) > 1:
            raise _ssm_error(
                "InvalidPluginName",
                f"The document has {len(names)} steps ({', '.join(names)}): name one in"
                " PluginName.",
            )
        if plugin_name is not None and plugin_name not in names:
            raise _ssm_error("InvalidPluginName", f"The document has no step {plugin_name}.")
        step = invocation.steps[names.index(plugin_name) if plugin_name else 0]
        record = invocation.record
        return {
            "CommandId": command_id,
            "InstanceId": instance_id,
            "Comment": record.get("Comment", ""),
            "DocumentName": record.get("DocumentName"),
            "DocumentVersion": invocation.document_version,
            "PluginName": step.name,
            "ResponseCode": step.code,
            "ExecutionStartDateTime": step.started,
            "ExecutionElapsedTime": "",
            "ExecutionEndDateTime": step.ended,
            "Status": step.status,
            "StatusDetails": step.details,
            "StandardOutputContent": step.stdout,
            "StandardOutputUrl": "",
            "StandardErrorContent": step.stderr,
            "StandardErrorUrl": "",
            "CloudWatchOutputConfig": {
                "CloudWatchLogGroupName": "",
                "CloudWatchOutputEnabled": False,
            },
        }

    return [
        Patch(SimpleSystemManagerBackend, "send_command", send_command),
        Patch(SimpleSystemManagerBackend, "get_command_invocation", get_command_invocation),
    ]


def document_from_cloudformation() -> classmethod[Any, ..., Any]:
    """SSM_DOCUMENT_FROM_CLOUDFORMATION: create an ``AWS::SSM::Document`` as CloudFormation
    does: ``DocumentFormat`` defaults to JSON, a ``Content`` object (how a template writes it)
    is stored as JSON (or YAML) text, and a document without ``Name`` is named
    ``<stack>-<LogicalId>-<suffix>``, which is its ``Ref``."""
    from moto.ssm.models import ssm_backends

    def create(properties: Any, resource_name: str, account_id: str, region_name: str) -> Any:
        document_format = properties.get("DocumentFormat") or "JSON"
        content = properties.get("Content")
        if not isinstance(content, str):
            if document_format == "JSON":
                content = json.dumps(content)
            else:
                import yaml

                content = yaml.safe_dump(content, sort_keys=False)
        documents = ssm_backends[account_id][region_name].create_document(
            content=content,
            requires=properties.get("Requires"),
            attachments=properties.get("Attachments"),
            name=properties.get("Name") or resource_name,
            version_name=properties.get("VersionName"),
            document_type=properties.get("DocumentType") or "Command",
            document_format=document_format,
            target_type=properties.get("TargetType"),
            tags=properties.get("Tags"),
        )
        return documents.get_default_version()

    return created_from_template(create)


def install_documents(context: Context) -> list[Patch]:
    from moto.ssm.models import Document

    return [Patch(Document, "create_from_cloudformation_json", document_from_cloudformation())]


def seed_public_parameter(account_id: str, region: str, name: str, value: str) -> None:
    """PUBLIC_PARAMETERS: add an AWS-owned ``/aws/service/...`` parameter, as AWS provides it."""
    from datetime import UTC

    from moto.ssm.models import Parameter, ssm_backends

    store = ssm_backends[account_id][region]._parameters
    if store.get(name):
        return
    store[name].append(
        Parameter(  # type: ignore[abstract]
            account_id=account_id,
            name=name,
            value=value,
            parameter_type="String",
            description=None,
            allowed_pattern=None,
            keyid=None,
            last_modified_date=datetime.now(UTC),
            version=1,
            data_type="aws:ec2:image",
        )
    )


SSM_RUN_COMMAND = Gap(
    "SSM_RUN_COMMAND",
    moto_does="SendCommand records a command without checking its document, its parameters or"
    " its instances and never runs it; GetCommandInvocation answers Success with no output",
    we_do="SendCommand fails as SSM does (InvalidDocument; InvalidParameters for an undeclared"
    " name, a required one missing, a value outside allowedValues or not fully matching"
    " allowedPattern; InvalidInstanceId for an instance EC2 does not know, one shutting down or"
    " terminated, or one with no SSM Agent). On a simulated host the steps run; while the host"
    " is stopped or booting the invocation stays Pending, then runs, or ends"
    " TimedOut/DeliveryTimedOut after TimeoutSeconds (a host terminated meanwhile:"
    " Failed/Undeliverable). GetCommandInvocation reports each step's Status, ResponseCode (-1"
    " until it ran) and its first 24,000 characters of output; a document with more than one"
    " step needs PluginName, else InvalidPluginName",
    install=lambda context: run_command_patches(context.hooks),
)
SSM_DOCUMENT_FROM_CLOUDFORMATION = Gap(
    "SSM_DOCUMENT_FROM_CLOUDFORMATION",
    moto_does="an AWS::SSM::Document without DocumentFormat fails the stack (Invalid document"
    " format None; AWS defaults to JSON), and a Content object is kept as a Python repr, so"
    " GetDocument returns no JSON and DescribeDocument fails",
    we_do="created as CloudFormation does: JSON text, named <stack>-<LogicalId>-<suffix>"
    " without Name",
    install=install_documents,
)
PUBLIC_PARAMETERS = Gap(
    "PUBLIC_PARAMETERS",
    moto_does="AWS's public /aws/service/... parameters (the launch templates' AMI defaults) are"
    " missing apart from a few, and their names are reserved",
    we_do="the deployer (local.deploy) seeds them into the parameter store directly"
    " (seed_public_parameter)",
)

"""Each workflow's worst case at its template parameters' limits, against Step Functions' quotas.

Step Functions service quotas (https://docs.aws.amazon.com/step-functions/latest/dg/service-quotas.html):
a Standard execution's history holds at most 25,000 events, an execution runs at most one year,
and a state's input or output (so the state data a workflow carries) is at most 256 KiB. A
callback (``.waitForTaskToken``) task waits at most its ``TimeoutSeconds`` ("the Timeout of a
task ... is its maximum allowed duration":
https://docs.aws.amazon.com/step-functions/latest/apireference/API_SendTaskHeartbeat.html), and
without one up to the execution's year
(https://docs.aws.amazon.com/step-functions/latest/dg/connect-to-resource.html#connect-wait-token).

The figures are computed from the ASL graph itself, with the template's parameters at their
``MinValue`` and ``MaxValue`` (every combination: the worst of each figure is kept):

* History events per state type, as the execution history shows them (the event types are those
  of https://docs.aws.amazon.com/step-functions/latest/apireference/API_HistoryEvent.html):
  a Pass, Choice, Wait or Succeed state adds its ``*StateEntered`` and ``*StateExited``
  (2); a Fail state its ``FailStateEntered`` (1); a Task state its ``TaskStateEntered`` and
  ``TaskStateExited`` (2) and, per attempt, ``TaskScheduled``, ``TaskStarted`` and one of
  ``TaskSucceeded``/``TaskFailed``/``TaskTimedOut`` (3), plus ``TaskSubmitted`` for a callback or
  ``.sync`` integration (4); every retrier may use all its ``MaxAttempts`` (default 3). An
  inline Map adds ``MapStateEntered``, ``MapStateStarted``, ``MapStateSucceeded``,
  ``MapStateExited`` (4) and per item ``MapIterationStarted``/``MapIterationSucceeded`` (2) and
  its iteration's events. The execution adds ``ExecutionStarted`` and its end (2).
* A loop (a strongly connected part of the graph) is run on the state data the workflow's Pass
  states compute (``States.StringToJson`` of a parameter, ``States.MathAdd``, paths, literals):
  its Wait states' seconds come from that data and its Choice rules on that data are decided;
  a rule on a task's result is taken when it stays in the loop and skipped when it leaves. A loop
  that no rule on its own data ends is ended by what its task enforces (``LOOP_DEADLINES``: the
  parameter or resource bound the handler or service enforces, as seconds of waiting); a loop
  with neither is unbounded, and reported so.
* Duration: Wait seconds, each task attempt's timeout (``TimeoutSeconds[Path]``, else the
  Lambda function's ``Timeout``, else ``API_CALL_SECONDS`` for a request-response API call) and
  the retriers' back-off, along the longest path.
* Payload: the state data's slots (execution input, each ``ResultPath``) at their largest:
  ``FIELD_BYTES`` per selected field, a caught error as Step Functions bounds it (an error name
  of at most 256 characters and a cause of at most 32,768:
  https://docs.aws.amazon.com/step-functions/latest/apireference/API_TaskFailedEventDetails.html),
  a Map's items at their declared cap (``MAP_ITEMS``).

Usage: ``python tools/workflow_quotas.py`` prints each workflow's worst case; exit 1 when one
exceeds a quota or cannot be bounded.
"""

from __future__ import annotations

import copy
import itertools
import json
import math
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from samtranslator.yaml_helper import yaml_parse

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "functions"))

from dcvfleet.lifecycle import sweep  # noqa: E402 - functions/ is put on the path just above

#: https://docs.aws.amazon.com/step-functions/latest/dg/service-quotas.html
MAX_HISTORY_EVENTS = 25_000
MAX_PAYLOAD_BYTES = 256 * 1024
MAX_EXECUTION_SECONDS = 365 * 24 * 3600
#: The highest TimeoutSeconds/HeartbeatSeconds the States Language takes (the default for a task).
MAX_TASK_TIMEOUT_SECONDS = 99_999_999
#: A request-response call to an AWS API (SNS Publish, EventBridge PutEvents, CodeBuild's
#: BatchGetBuilds): an assumption, not a documented figure; SDK calls answer within seconds.
API_CALL_SECONDS = 60
#: A field a ResultSelector or Parameters selects: an id, ARN (at most 2,048 characters), URL,
#: status or a short reason. An assumption for the payload bound.
FIELD_BYTES = 2048
#: A task's whole result kept without a ResultSelector (a callback's output): an assumption.
WHOLE_RESULT_BYTES = 8 * 1024
#: An execution's input: made by this project's code, or a small AWS event (S3 Object Created,
#: a Scheduled Event). An assumption for the payload bound.
INPUT_BYTES = 16 * 1024
#: A caught error: ``{"Error": <= 256 characters, "Cause": <= 32,768 characters}``.
ERROR_BYTES = 256 + 32_768 + 32
#: CodeBuild's own defaults when a project does not set them: TimeoutInMinutes 60 and
#: QueuedTimeoutInMinutes 480 (8 hours)
#: (https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-resource-codebuild-project.html).
CODEBUILD_DEFAULT_MINUTES = {"TimeoutInMinutes": 60, "QueuedTimeoutInMinutes": 480}

Template = dict[str, Any]
Params = dict[str, int]


class Unknown:
    """A value only known at run time (a task's result)."""

    def __repr__(self) -> str:
        return "<unknown>"


UNKNOWN: Unknown = Unknown()


@dataclass
class Figures:
    events: int = 0
    seconds: float = 0.0
    payload: int = 0
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class Report:
    workflow: str
    figures: Figures
    problems: list[str]
    parameters: dict[str, tuple[int, int]]


def load_template(root: Path = ROOT) -> Template:
    template: Template = yaml_parse((root / "template.yaml").read_text())
    return template


def state_machines(template: Template) -> dict[str, dict[str, Any]]:
    """ASL file name -> the StateMachine resource's properties."""
    return {
        Path(res["Properties"]["DefinitionUri"]).name: res["Properties"]
        for res in template["Resources"].values()
        if res["Type"] == "AWS::Serverless::StateMachine"
    }


# -- what ends a loop that its own state data does not end ---------------------------------------
def _codebuild_seconds(template: Template, params: Params) -> float:
    """The image build ends FAILED/TIMED_OUT after its queue and build timeouts at the latest."""
    props = template["Resources"]["ImageBuildProject"]["Properties"]
    minutes = sum(int(props.get(k, default)) for k, default in CODEBUILD_DEFAULT_MINUTES.items())
    return minutes * 60.0


def _provisioning_seconds(template: Template, params: Params) -> float:
    """The smoke-test desktop is a provisioning execution: it is READY or FAILED within that
    workflow's worst-case duration."""
    return analyse(template, "provision_session.asl.json", params).figures.seconds


@dataclass(frozen=True)
class Deadline:
    """A loop's task fails (so the loop ends) once the loop has waited past ``seconds``."""

    why: str
    seconds: Callable[[Template, Params], float]
    parameters: tuple[str, ...] = ()


#: (workflow, a task state in the loop) -> what ends the loop when its own data does not.
LOOP_DEADLINES: dict[tuple[str, str], Deadline] = {
    ("provision_session.asl.json", "CheckJob"): Deadline(
        "batch.check_job raises InsufficientCapacityError once the job waited past "
        "BatchCapacityTimeoutSeconds",
        lambda template, params: float(params["BatchCapacityTimeoutSeconds"]),
        ("BatchCapacityTimeoutSeconds",),
    ),
    ("release_image.asl.json", "CheckBuild"): Deadline(
        "CodeBuild ends the build after QueuedTimeoutInMinutes + TimeoutInMinutes",
        _codebuild_seconds,
    ),
    ("release_image.asl.json", "CheckSmokeTest"): Deadline(
        "releases.check_smoke is done (or raises) once the smoke-test desktop's provisioning "
        "ended, within the provisioning workflow's worst case",
        _provisioning_seconds,
        ("BatchCapacityTimeoutSeconds", "HostReadyTimeoutSeconds"),
    ),
}

#: (workflow, Map state) -> the most items its list can hold (the cap the code enforces).
MAP_ITEMS: dict[tuple[str, str], Callable[[], int | None]] = {
    ("sweep_fleet.asl.json", "ActOnEach"): lambda: getattr(sweep, "MAX_SWEEP_ITEMS", None),
}
#: (workflow, task, selected field) -> (Map state whose items it is, bytes of one item):
#: a finding is ``{"kind": <= 20 characters, "id": a session's UUID or an instance id}``.
LIST_FIELDS: dict[tuple[str, str, str], tuple[str, int]] = {
    ("sweep_fleet.asl.json", "FindWork", "items"): ("ActOnEach", 128),
}
#: (workflow, Map state) -> bytes of one item's result, when the code bounds it (else each of
#: its fields counts FIELD_BYTES): a finding and its outcome line.
MAP_RESULT_BYTES: dict[tuple[str, str], Callable[[], int | None]] = {
    ("sweep_fleet.asl.json", "ActOnEach"): lambda: (
        None
        if getattr(sweep, "MAX_SWEEP_OUTCOME_CHARACTERS", None) is None
        else 128 + int(sweep.MAX_SWEEP_OUTCOME_CHARACTERS) + 32
    ),
}


# -- the template's parameters -------------------------------------------------------------------
def workflow_parameters(template: Template, name: str) -> tuple[dict[str, str], list[str]]:
    """The numeric parameters a workflow depends on (placeholder -> parameter), its loops'
    deadline parameters included; and the problems (a parameter without limits)."""
    props = state_machines(template)[name]
    declared = template["Parameters"]
    used: dict[str, str] = {}
    for key, value in props.get("DefinitionSubstitutions", {}).items():
        ref = value.get("Ref") if isinstance(value, dict) else None
        if isinstance(ref, str) and declared.get(ref, {}).get("Type") == "Number":
            used[key] = ref
    deadline_params = {
        p for (wf, _), d in LOOP_DEADLINES.items() if wf == name for p in d.parameters
    }
    problems = []
    for param in sorted(set(used.values()) | deadline_params):
        spec = declared[param]
        for limit in ("MinValue", "MaxValue"):
            if limit not in spec:
                problems.append(f"parameter {param} has no {limit}")
    return used, problems


def _limits(template: Template, param: str) -> tuple[int, int]:
    spec = template["Parameters"][param]
    low = int(spec.get("MinValue", spec.get("Default", 0)))
    high = int(spec.get("MaxValue", spec.get("Default", 0)))
    return low, high


def scenarios(template: Template, params: list[str]) -> Iterator[Params]:
    """Every combination of the parameters at their MinValue or MaxValue."""
    limits = [_limits(template, p) for p in params]
    for combo in itertools.product(*limits):
        yield dict(zip(params, combo, strict=True))


def resolved_definition(
    template: Template, name: str, params: Params | None = None
) -> dict[str, Any]:
    """A workflow's definition with its substitutions made (parameters as given)."""
    return _substituted(template, name, params or {})


def _substituted(template: Template, name: str, params: Params) -> dict[str, Any]:
    props = state_machines(template)[name]
    text = (ROOT / props["DefinitionUri"]).read_text()
    subs: dict[str, str] = {}
    for key, value in props.get("DefinitionSubstitutions", {}).items():
        if isinstance(value, dict) and value.get("Ref") in params:
            subs[key] = str(params[value["Ref"]])
        elif isinstance(value, dict) and isinstance(value.get("Fn::Sub"), str):
            subs[key] = value["Fn::Sub"].replace("${AWS::Partition}", "aws")
        elif isinstance(value, dict) and "Fn::GetAtt" in value:
            subs[key] = f"function:{value['Fn::GetAtt'][0]}"
        else:
            subs[key] = f"value-of-{key}"
    text = re.sub(r"\$\{(\w+)\}", lambda m: subs.get(m.group(1), m.group(0)), text)
    definition: dict[str, Any] = json.loads(text)
    return definition


# -- a small evaluator for the state data Pass states compute -------------------------------------
def get_path(data: Any, path: str) -> Any:
    if path == "$":
        return data
    node = data
    for part in path.removeprefix("$.").split("."):
        if not isinstance(node, dict) or part not in node:
            return UNKNOWN
        node = node[part]
    return node


def set_path(data: dict[str, Any], path: str | None, value: Any) -> dict[str, Any]:
    if path is None:
        return data
    if path == "$":
        return value if isinstance(value, dict) else data
    node = data
    parts = path.removeprefix("$.").split(".")
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[parts[-1]] = value
    return data


def _argument(data: Any, text: str) -> Any:
    text = text.strip()
    if text.startswith("$"):
        return get_path(data, text)
    if text.startswith("'") and text.endswith("'"):
        return text[1:-1]
    try:
        return json.loads(text)
    except ValueError:
        return UNKNOWN


def evaluate(data: Any, expression: str) -> Any:
    """A path, or an intrinsic function this project's workflows use on their own data."""
    match = re.fullmatch(r"States\.(\w+)\((.*)\)", expression.strip())
    if not match:
        return get_path(data, expression)
    function, body = match.groups()
    args = [_argument(data, a) for a in body.split(",")] if body.strip() else []
    if any(a is UNKNOWN for a in args):
        return UNKNOWN
    if function == "StringToJson" and len(args) == 1:
        return json.loads(args[0])
    if function == "MathAdd" and len(args) == 2:
        return int(args[0]) + int(args[1])
    return UNKNOWN


def parameters(data: Any, template: Any) -> Any:
    if isinstance(template, dict):
        out: dict[str, Any] = {}
        for key, value in template.items():
            if key.endswith(".$"):
                out[key[:-2]] = evaluate(data, value)
            else:
                out[key] = parameters(data, value)
        return out
    if isinstance(template, list):
        return [parameters(data, v) for v in template]
    return template


def run_pass(state: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    source = get_path(data, state.get("InputPath", "$"))
    if "Parameters" in state:
        result = parameters(source, state["Parameters"])
    elif "Result" in state:
        result = copy.deepcopy(state["Result"])
    else:
        result = source
    return set_path(data, state.get("ResultPath", "$"), result)


COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "NumericGreaterThanEquals": lambda a, b: bool(a >= b),
    "NumericGreaterThan": lambda a, b: bool(a > b),
    "NumericLessThanEquals": lambda a, b: bool(a <= b),
    "NumericLessThan": lambda a, b: bool(a < b),
    "NumericEquals": lambda a, b: bool(a == b),
    "StringEquals": lambda a, b: bool(a == b),
    "BooleanEquals": lambda a, b: bool(a == b),
}


def _compare(rule: dict[str, Any], data: Any) -> bool | Unknown:
    if "And" in rule or "Or" in rule:
        parts = [_compare(r, data) for r in rule.get("And", rule.get("Or", []))]
        known = [p for p in parts if isinstance(p, bool)]
        if len(known) < len(parts):
            return UNKNOWN
        return all(known) if "And" in rule else any(known)
    if "Not" in rule:
        inner = _compare(rule["Not"], data)
        return not inner if isinstance(inner, bool) else UNKNOWN
    value = get_path(data, rule["Variable"])
    if isinstance(value, Unknown):
        return UNKNOWN
    for op, test in COMPARISONS.items():
        if op in rule:
            return bool(test(value, rule[op]))
        if f"{op}Path" in rule:
            other = get_path(data, rule[f"{op}Path"])
            return UNKNOWN if other is UNKNOWN else bool(test(value, other))
    return UNKNOWN


# -- per-state costs ---------------------------------------------------------------------------
def successors(state: dict[str, Any]) -> list[str]:
    found = [state[k] for k in ("Next", "Default") if k in state]
    found += [c["Next"] for c in state.get("Choices", [])]
    found += [c["Next"] for c in state.get("Catch", [])]
    return list(dict.fromkeys(found))


def _attempts(state: dict[str, Any]) -> int:
    return 1 + sum(int(r.get("MaxAttempts", 3)) for r in state.get("Retry", []))


def _backoff_seconds(state: dict[str, Any]) -> float:
    total = 0.0
    for retrier in state.get("Retry", []):
        interval = float(retrier.get("IntervalSeconds", 1))
        rate = float(retrier.get("BackoffRate", 2.0))
        cap = float(retrier.get("MaxDelaySeconds", math.inf))
        total += sum(
            min(interval * rate**k, cap) for k in range(int(retrier.get("MaxAttempts", 3)))
        )
    return total


def _is_callback(state: dict[str, Any]) -> bool:
    return str(state["Resource"]).endswith((".waitForTaskToken", ".sync"))


def task_events(state: dict[str, Any], attempts: int | None = None) -> int:
    """A Task state's events: every retrier used up, unless ``attempts`` says how many ran."""
    per_attempt = 4 if _is_callback(state) else 3
    return 2 + (_attempts(state) if attempts is None else attempts) * per_attempt


def path_events(states: dict[str, dict[str, Any]], entered: list[str]) -> int:
    """The events of an execution that entered ``entered`` (a Map-free path, one attempt per
    task): what its history should hold, by the counts above."""
    simple = {"Pass": 2, "Choice": 2, "Wait": 2, "Succeed": 2, "Fail": 1}
    total = 2  # ExecutionStarted, and how it ended
    for name in entered:
        state = states[name]
        kind = state["Type"]
        total += task_events(state, attempts=1) if kind == "Task" else simple[kind]
    return total


def _lambda_timeout(template: Template, state: dict[str, Any]) -> float | None:
    target = str(state.get("Parameters", {}).get("FunctionName", ""))
    if not target.startswith("function:"):
        return None
    resource = template["Resources"][target.removeprefix("function:")]
    timeout = resource["Properties"].get("Timeout", template["Globals"]["Function"]["Timeout"])
    return float(timeout)


def task_attempt_seconds(
    template: Template, state: dict[str, Any], data: dict[str, Any], problems: list[str], name: str
) -> float:
    if "TimeoutSeconds" in state:
        return float(state["TimeoutSeconds"])
    if "TimeoutSecondsPath" in state:
        value = get_path(data, state["TimeoutSecondsPath"])
        if value is UNKNOWN:
            problems.append(f"{name}: TimeoutSecondsPath {state['TimeoutSecondsPath']} is unknown")
            return 0.0
        if not 1 <= value <= MAX_TASK_TIMEOUT_SECONDS:
            problems.append(
                f"{name}: TimeoutSeconds {value} is outside 1..{MAX_TASK_TIMEOUT_SECONDS}"
            )
        return float(value)
    if _is_callback(state):
        problems.append(f"{name}: a callback task without a timeout waits up to a year")
        return float(MAX_EXECUTION_SECONDS)
    timeout = _lambda_timeout(template, state)
    return timeout if timeout is not None else float(API_CALL_SECONDS)


def wait_seconds(
    state: dict[str, Any], data: dict[str, Any], problems: list[str], name: str
) -> float:
    if "Seconds" in state:
        return float(state["Seconds"])
    value = get_path(data, state.get("SecondsPath", "$"))
    if value is UNKNOWN or not isinstance(value, int | float):
        problems.append(f"{name}: its wait {state.get('SecondsPath')} is not known in advance")
        return 0.0
    return float(value)


# -- the graph ---------------------------------------------------------------------------------
def components(states: dict[str, dict[str, Any]]) -> list[list[str]]:
    """Tarjan's strongly connected components."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in successors(states[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            part = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                part.append(top)
                if top == node:
                    break
            found.append(part)

    for name in states:
        if name not in index:
            visit(name)
    return found


@dataclass
class Graph:
    workflow: str
    template: Template
    params: Params
    states: dict[str, dict[str, Any]]
    start: str
    problems: list[str]
    data: dict[str, Any] = field(default_factory=dict)
    loops: dict[str, dict[str, Any]] = field(default_factory=dict)

    def known_data(self) -> None:
        """The state data every Pass outside a loop computes from literals and parameters."""
        in_loops = {n for c in components(self.states) if self._is_loop(c) for n in c}
        order, seen = [self.start], {self.start}
        for name in order:
            for nxt in successors(self.states[name]):
                if nxt not in seen:
                    seen.add(nxt)
                    order.append(nxt)
        for name in order:
            state = self.states[name]
            if state["Type"] == "Pass" and name not in in_loops:
                self.data = run_pass(state, copy.deepcopy(self.data))

    def _is_loop(self, part: list[str]) -> bool:
        return len(part) > 1 or part[0] in successors(self.states[part[0]])

    def state_cost(self, name: str, data: dict[str, Any]) -> tuple[int, float]:
        state = self.states[name]
        kind = state["Type"]
        if kind == "Fail":
            return 1, 0.0
        if kind in ("Pass", "Choice", "Succeed"):
            return 2, 0.0
        if kind == "Wait":
            return 2, wait_seconds(state, data, self.problems, name)
        if kind == "Task":
            attempt = task_attempt_seconds(self.template, state, data, self.problems, name)
            return task_events(state), _attempts(state) * attempt + _backoff_seconds(state)
        if kind == "Map":
            return self.map_cost(name, state)
        self.problems.append(f"{name}: no cost model for a {kind} state")
        return 0, 0.0

    def map_cost(self, name: str, state: dict[str, Any]) -> tuple[int, float]:
        items_of = MAP_ITEMS.get((self.workflow, name))
        items = items_of() if items_of else None  # None: the code enforces no cap
        if items is None:
            self.problems.append(f"{name}: a Map over a list with no declared cap")
            return 4, 0.0
        processor = state.get("ItemProcessor") or state["Iterator"]
        inner = Graph(
            self.workflow, self.template, self.params, processor["States"],
            processor["StartAt"], self.problems, copy.deepcopy(self.data),
        )  # fmt: skip
        events, seconds = inner.longest()
        rounds = math.ceil(items / max(1, int(state.get("MaxConcurrency", 0)) or items))
        return 4 + items * (2 + events), rounds * seconds

    def run_loop(self, part: list[str]) -> tuple[int, float]:
        """Go round the loop on its own data until a rule on that data, or its deadline, ends it."""
        members = set(part)
        entries = [n for n in part if n == self.start] + [
            n for src, s in self.states.items() if src not in members
            for n in successors(s) if n in members
        ]  # fmt: skip
        entry = entries[0]
        deadline = next(
            (
                d
                for (wf, task), d in LOOP_DEADLINES.items()
                if wf == self.workflow and task in members
            ),
            None,
        )
        limit = deadline.seconds(self.template, self.params) if deadline else None
        data = copy.deepcopy(self.data)
        events, seconds, waited, rounds = 0, 0.0, 0.0, 0
        round_seconds, longest_round = 0.0, 0.0
        name = entry
        while True:
            if name == entry and limit is not None and waited > limit:
                cost = self.state_cost(entry, data)  # the check that ends it
                # the deadline is wall time (tasks that take their time mean fewer rounds):
                # the most events come from instant tasks, the longest time is the deadline,
                # the round that passed it and the check that ends it
                return events + cost[0], limit + longest_round + cost[1]
            state = self.states[name]
            cost = self.state_cost(name, data)
            events, seconds = events + cost[0], seconds + cost[1]
            round_seconds += cost[1]
            if state["Type"] == "Wait":
                waited += cost[1]
            if state["Type"] == "Pass":
                data = run_pass(state, data)
            nxt = self._next_in_loop(state, data, members)
            if nxt is None:
                return events, seconds
            if nxt == entry:
                rounds += 1
                longest_round, round_seconds = max(longest_round, round_seconds), 0.0
                if rounds > 10 * MAX_HISTORY_EVENTS or seconds > MAX_EXECUTION_SECONDS:
                    self.problems.append(
                        f"loop {sorted(part)} is unbounded: nothing ends it "
                        "(no rule on its own data, no LOOP_DEADLINES entry)"
                    )
                    return events, seconds
            name = nxt

    @staticmethod
    def _next_in_loop(state: dict[str, Any], data: dict[str, Any], members: set[str]) -> str | None:
        if state["Type"] != "Choice":
            nxt = state.get("Next")
            return nxt if nxt in members else None
        for rule in state["Choices"]:
            verdict = _compare(rule, data)
            if verdict is True:
                return rule["Next"] if rule["Next"] in members else None
            if verdict is UNKNOWN and rule["Next"] in members:
                return str(rule["Next"])  # a task's answer that keeps it waiting
        default = state.get("Default")
        return default if default in members else None

    def longest(self) -> tuple[int, float]:
        """The most events, and the longest time, from the start to an end (each maximised)."""
        self.known_data()
        parts = components(self.states)
        owner = {n: i for i, c in enumerate(parts) for n in c}
        cost: dict[int, tuple[int, float]] = {}
        for i, part in enumerate(parts):
            if self._is_loop(part):
                cost[i] = self.run_loop(part)
                self.loops[",".join(sorted(part))] = {"events": cost[i][0], "seconds": cost[i][1]}
            else:
                cost[i] = self.state_cost(part[0], self.data)
        best: dict[int, tuple[int, float]] = {}

        def walk(i: int) -> tuple[int, float]:
            if i not in best:
                nexts = {owner[n] for m in parts[i] for n in successors(self.states[m])} - {i}
                tails = [walk(j) for j in nexts] or [(0, 0.0)]
                best[i] = (
                    cost[i][0] + max(t[0] for t in tails),
                    cost[i][1] + max(t[1] for t in tails),
                )
            return best[i]

        return walk(owner[self.start])


def _all_states(states: dict[str, dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, state in states.items():
        yield name, state
        processor = state.get("ItemProcessor") or state.get("Iterator")
        if processor:
            yield from _all_states(processor["States"])


def payload_bytes(workflow: str, definition: dict[str, Any], problems: list[str]) -> int:
    """The state data at its largest: the input, and every slot a ResultPath fills."""
    slots: dict[str, int] = {"$input": INPUT_BYTES}
    for name, state in _all_states(definition["States"]):
        for catcher in state.get("Catch", []):
            path = catcher.get("ResultPath", "$")
            if path is not None:
                slots[path] = max(slots.get(path, 0), ERROR_BYTES)
        path = state.get("ResultPath", "$")
        if path is None or state["Type"] in ("Choice", "Wait", "Succeed", "Fail"):
            continue
        size = 0
        if state["Type"] == "Task":
            selector = state.get("ResultSelector")
            if selector is None:
                size = WHOLE_RESULT_BYTES
            for key in selector or {}:
                listed = LIST_FIELDS.get((workflow, name, key.removesuffix(".$")))
                if listed:
                    cap_of = MAP_ITEMS.get((workflow, listed[0]))
                    cap = cap_of() if cap_of else None
                    if cap is None:
                        problems.append(f"{name}: {key} is a list with no declared cap")
                        continue
                    size += cap * listed[1]
                else:
                    size += FIELD_BYTES
        elif state["Type"] == "Pass":
            body = state.get("Parameters", state.get("Result"))
            size = FIELD_BYTES * max(1, len(body)) if isinstance(body, dict) else FIELD_BYTES
        elif state["Type"] == "Map":
            cap_of = MAP_ITEMS.get((workflow, name))
            cap = cap_of() if cap_of else None
            processor = state.get("ItemProcessor") or state["Iterator"]
            last = [s for s in processor["States"].values() if s.get("End")]
            fields = max(len(s.get("ResultSelector", s.get("Parameters", {}))) for s in last)
            bound_of = MAP_RESULT_BYTES.get((workflow, name))
            bound = bound_of() if bound_of else None
            if cap is None:
                problems.append(f"{name}: a Map over a list with no declared cap")
            else:
                size = cap * (bound if bound is not None else fields * FIELD_BYTES)
        slots[path] = max(slots.get(path, 0), size)
    return sum(slots.values())


def analyse(template: Template, workflow: str, params: Params) -> Report:
    definition = _substituted(template, workflow, params)
    problems: list[str] = []
    graph = Graph(workflow, template, params, definition["States"], definition["StartAt"], problems)
    events, seconds = graph.longest()
    figures = Figures(
        events=events + 2,  # ExecutionStarted, and ExecutionSucceeded or ExecutionFailed
        seconds=seconds,
        payload=payload_bytes(workflow, definition, problems),
        detail={"loops": graph.loops},
    )
    return Report(workflow, figures, problems, {})


def worst_case(template: Template, workflow: str) -> Report:
    """The workflow's worst figures over every combination of its parameters' limits, and every
    quota they break."""
    used, problems = workflow_parameters(template, workflow)
    deadline_params = {
        p for (wf, _), d in LOOP_DEADLINES.items() if wf == workflow for p in d.parameters
    }
    names = sorted(set(used.values()) | deadline_params)
    worst = Figures()
    for params in scenarios(template, names):
        report = analyse(template, workflow, params)
        problems.extend(p for p in report.problems if p not in problems)
        figures = report.figures
        if figures.events > worst.events:
            worst.events, worst.detail["events at"] = figures.events, params
            worst.detail["loops"] = figures.detail["loops"]
        if figures.seconds > worst.seconds:
            worst.seconds, worst.detail["seconds at"] = figures.seconds, params
        worst.payload = max(worst.payload, figures.payload)
    if worst.events > MAX_HISTORY_EVENTS:
        problems.append(
            f"{worst.events} history events at {worst.detail['events at']} "
            f"(quota {MAX_HISTORY_EVENTS}); loops: {worst.detail['loops']}"
        )
    if worst.seconds > MAX_EXECUTION_SECONDS:
        problems.append(f"{worst.seconds:.0f} s (quota {MAX_EXECUTION_SECONDS} s)")
    if worst.payload > MAX_PAYLOAD_BYTES:
        problems.append(f"{worst.payload} bytes of state data (quota {MAX_PAYLOAD_BYTES})")
    limits = {p: _limits(template, p) for p in names}
    return Report(workflow, worst, problems, limits)


def main() -> int:
    template = load_template()
    failed = False
    for workflow in sorted(state_machines(template)):
        report = worst_case(template, workflow)
        f = report.figures
        print(
            f"{workflow}: {f.events} events (at {f.detail.get('events at')}), "
            f"{f.seconds / 3600:.1f} h (at {f.detail.get('seconds at')}), {f.payload} bytes"
        )
        for problem in report.problems:
            failed = True
            print(f"  EXCEEDS/UNBOUNDED: {problem}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

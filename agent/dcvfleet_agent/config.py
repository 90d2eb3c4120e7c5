"""Agent settings, by precedence: defaults < the SSM settings parameter < a JSON file < DCVFLEET_*.

The file and DCVFLEET_<UPPER_SNAKE> variables may set every key. The optional SSM parameter named by
`settingsParameter` holds a JSON object of idle-policy keys (POLICY_KEYS), the same for a whole
fleet; main() reads it once at start (read_settings) and passes it to load_config. It is never
fatal: a parameter that cannot be read or is not a JSON object is left out, and so is each key in
it that is not a policy key or has an invalid value, each with a warning, because a fleet-wide
typo must not stop every host from reporting. In a variable, `null` disables a threshold
(e.g. DCVFLEET_GPU_THRESHOLD_PERCENT=null) and a list is JSON (DCVFLEET_BUSY_PROCESSES='["a"]').
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .aws import AwsError

ENV_CONFIG_PATH = "DCVFLEET_AGENT_CONFIG"
LINUX_CONFIG_PATH = "/etc/dcvfleet/agent.json"
WINDOWS_CONFIG_PATH = r"C:\ProgramData\DCVFleet\agent.json"
PLATFORMS = ("linux", "windows", "container")
# Conservative OS user name: no ':' or newline (chpasswd input), no leading '-' (option).
USERNAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,31}$")
_REGION_RE = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d+$")
_SESSION_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")  # as Host Ready's schema
_REQUIRED = object()


class ConfigError(Exception):
    """Invalid or missing setting; `key` names the offending key when there is one."""

    def __init__(self, message: str, key: str | None = None) -> None:
        self.key = key
        self.detail = message
        super().__init__(f"config key '{key}': {message}" if key else message)


@dataclass(frozen=True)
class Config:
    event_bus_name: str
    region: str
    instance_id: str | None
    session_id: str | None
    secret_arn: str | None
    platform: str
    dcv_command: tuple[str, ...]
    dcv_session_name: str
    manage_user: bool
    user_name: str
    ready_timeout_seconds: float
    send_max_attempts: int
    send_base_delay_seconds: float
    send_max_delay_seconds: float
    command_timeout_seconds: float
    endpoint_url: str | None
    settings_parameter: str | None
    heartbeat_interval_seconds: float
    sample_interval_seconds: float
    idle_timeout_seconds: float
    cpu_threshold_percent: float | None
    gpu_threshold_percent: float | None
    busy_processes: tuple[str, ...]
    cpu_stat_path: str
    nvidia_smi_command: tuple[str, ...]
    resume_gap_seconds: float


def default_platform() -> str:
    return "windows" if sys.platform.startswith("win") else "linux"


# (JSON key, attribute, kind, default)
_FIELDS: tuple[tuple[str, str, str, Any], ...] = (
    ("eventBusName", "event_bus_name", "str", _REQUIRED),
    ("region", "region", "region", _REQUIRED),
    ("instanceId", "instance_id", "str", None),
    ("sessionId", "session_id", "str", None),
    ("secretArn", "secret_arn", "str", None),
    ("platform", "platform", "platform", None),
    ("dcvCommand", "dcv_command", "argv", "dcv"),
    ("dcvSessionName", "dcv_session_name", "session", "desktop"),
    ("manageUser", "manage_user", "bool", True),
    ("userName", "user_name", "user", "dcvuser"),
    ("readyTimeoutSeconds", "ready_timeout_seconds", "positive", 300),
    ("sendMaxAttempts", "send_max_attempts", "count", 8),
    ("sendBaseDelaySeconds", "send_base_delay_seconds", "delay", 0.5),
    ("sendMaxDelaySeconds", "send_max_delay_seconds", "delay", 30),
    ("commandTimeoutSeconds", "command_timeout_seconds", "positive", 10),
    ("endpointUrl", "endpoint_url", "url", None),
    ("settingsParameter", "settings_parameter", "str", None),
    ("heartbeatIntervalSeconds", "heartbeat_interval_seconds", "positive", 60),
    ("sampleIntervalSeconds", "sample_interval_seconds", "positive", 10),
    ("idleTimeoutSeconds", "idle_timeout_seconds", "positive", 1800),
    ("cpuThresholdPercent", "cpu_threshold_percent", "percent", 10),
    ("gpuThresholdPercent", "gpu_threshold_percent", "percent", 10),
    ("busyProcesses", "busy_processes", "names", []),
    ("cpuStatPath", "cpu_stat_path", "str", "/proc/stat"),
    ("nvidiaSmiCommand", "nvidia_smi_command", "argv", "nvidia-smi"),
    ("resumeGapSeconds", "resume_gap_seconds", "positive", 120),
)
KEYS = tuple(field[0] for field in _FIELDS)
#: What the SSM settings parameter may set: the fleet's idle policy, nothing host-specific.
POLICY_KEYS = (
    "heartbeatIntervalSeconds",
    "sampleIntervalSeconds",
    "idleTimeoutSeconds",
    "cpuThresholdPercent",
    "gpuThresholdPercent",
    "busyProcesses",
)
_NULLABLE = ("percent",)  # null means "disabled" for these, not "use the default"
MAX_PROCESS_NAMES = 50  # the events' signals.processes.running holds at most 50 names of 128


def env_name(key: str) -> str:
    """eventBusName -> DCVFLEET_EVENT_BUS_NAME."""
    return "DCVFLEET_" + re.sub(r"(?<!^)(?=[A-Z])", "_", key).upper()


def default_config_path() -> str:
    return WINDOWS_CONFIG_PATH if sys.platform.startswith("win") else LINUX_CONFIG_PATH


def load_config(
    environ: Mapping[str, str] | None = None, settings: Mapping[str, Any] | None = None
) -> Config:
    """`settings`: the valid part of the SSM parameter (parse_settings)."""
    env = os.environ if environ is None else environ
    raw = _read_file(env)
    layer = settings or {}
    values: dict[str, Any] = {}
    for key, attr, kind, default in _FIELDS:
        env_value = env.get(env_name(key), "")
        if env_value != "":
            values[attr] = _from_env(key, kind, env_value)
        elif key in raw and (raw[key] is not None or kind in _NULLABLE):
            values[attr] = _check(key, kind, raw[key])
        elif key in layer:
            values[attr] = _check(key, kind, layer[key])
        elif default is _REQUIRED:
            raise ConfigError(f"is required (set it in the file or {env_name(key)})", key)
        else:
            values[attr] = None if default is None else _check(key, kind, default)
    if values["platform"] is None:
        values["platform"] = default_platform()
    if values["send_max_delay_seconds"] < values["send_base_delay_seconds"]:
        raise ConfigError("must not be smaller than sendBaseDelaySeconds", "sendMaxDelaySeconds")
    return Config(**values)


def parse_settings(name: str, text: str) -> tuple[dict[str, Any], list[ConfigError]]:
    """The SSM settings parameter's value, a JSON object: its valid POLICY_KEYS, and one
    ConfigError per key left out (not a policy key, or an invalid value), so that one bad or
    newer key does not throw away the rest of the fleet's policy."""
    try:
        data = json.loads(text)
    except ValueError:
        raise ConfigError(f"SSM parameter {name} is not JSON", "settingsParameter") from None
    if not isinstance(data, dict):
        raise ConfigError(f"SSM parameter {name} must hold a JSON object", "settingsParameter")
    settings: dict[str, Any] = {}
    ignored: list[ConfigError] = []
    for key, value in data.items():
        if key not in POLICY_KEYS:
            ignored.append(ConfigError(f"not a setting SSM parameter {name} may set", key))
            continue
        kind = next(field[2] for field in _FIELDS if field[0] == key)
        try:
            _check(key, kind, value)
        except ConfigError as exc:
            ignored.append(ConfigError(f"{exc.detail} (in SSM parameter {name})", key))
            continue
        settings[key] = value
    return settings, ignored


def read_settings(ssm: Any, name: str) -> tuple[dict[str, Any], list[ConfigError]]:
    """GetParameter once, then parse_settings; a parameter that cannot be read or is not a JSON
    object is a ConfigError (main() logs it and goes on without)."""
    try:
        response = ssm.get_parameter(Name=name)
        text = response["Parameter"]["Value"]
    except (AwsError, KeyError, TypeError) as exc:
        raise ConfigError(f"cannot read SSM parameter {name}: {exc}", "settingsParameter") from None
    return parse_settings(name, str(text))


def _read_file(env: Mapping[str, str]) -> dict[str, Any]:
    explicit = env.get(ENV_CONFIG_PATH, "")
    path = explicit or default_config_path()
    try:
        with open(path, encoding="utf-8-sig") as handle:
            data = json.load(handle)
    except FileNotFoundError:
        if explicit:
            raise ConfigError(f"config file {path} does not exist") from None
        return {}  # env-only configuration (containers, tests)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"config file {path} is unreadable or not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a JSON object")
    for key in data:
        if key not in KEYS:
            raise ConfigError(f"unknown key in {path}", key)
    return data


def _from_env(key: str, kind: str, text: str) -> Any:
    where = f" (from {env_name(key)})"
    value: Any = text
    try:
        if kind in _NULLABLE and text.strip().lower() == "null":
            value = None
        elif kind == "bool":
            lowered = text.strip().lower()
            if lowered not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(text)
            value = lowered in ("true", "1", "yes")
        elif kind == "count":
            value = int(text)
        elif kind in ("positive", "delay", "percent"):
            value = float(text)
        elif (kind == "argv" and text.lstrip().startswith("[")) or kind == "names":
            value = json.loads(text)
    except ValueError:
        raise ConfigError(f"cannot parse {text!r}{where}", key) from None
    try:
        return _check(key, kind, value)
    except ConfigError as exc:
        raise ConfigError(exc.detail + where, key) from None


def _check(key: str, kind: str, value: Any) -> Any:
    def fail(expected: str) -> ConfigError:
        return ConfigError(f"expected {expected}, got {value!r}", key)

    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "bool":
        if not isinstance(value, bool):
            raise fail("true or false")
        return value
    if kind == "count":
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise fail("an integer >= 1")
        return value
    if kind == "positive":
        if not is_number or value <= 0:
            raise fail("a number > 0")
        return float(value)
    if kind == "delay":
        if not is_number or value < 0:
            raise fail("a number >= 0")
        return float(value)
    if kind == "percent":
        if value is not None and (not is_number or not 0 <= value <= 100):
            raise fail("a number from 0 to 100, or null to disable the signal")
        return None if value is None else float(value)
    if kind == "names":
        if (
            not isinstance(value, list)
            or len(value) > MAX_PROCESS_NAMES
            or not all(isinstance(name, str) and 0 < len(name) <= 128 for name in value)
        ):
            raise fail(f"a list of at most {MAX_PROCESS_NAMES} process names (1-128 characters)")
        return tuple(value)
    if kind == "argv":
        if isinstance(value, str) and value:
            return (value,)
        if (
            isinstance(value, list)
            and value
            and all(isinstance(part, str) and part for part in value)
        ):
            return tuple(value)
        raise fail("a command string or a non-empty list of strings")
    if not isinstance(value, str) or not value:
        raise fail("a non-empty string")
    if kind == "region" and not _REGION_RE.match(value):
        raise fail("an AWS region such as us-east-1")
    if kind == "platform" and value not in PLATFORMS:
        raise fail(" or ".join(PLATFORMS))
    if kind == "session" and not _SESSION_NAME_RE.match(value):
        raise fail("a DCV session id of letters, digits, '_', '.', '-'")
    if kind == "user" and not USERNAME_RE.match(value):
        raise fail("a user name of letters, digits, '_', '.', '-' (max 32)")
    if kind == "url" and not value.startswith(("http://", "https://")):
        raise fail("an http(s) URL")
    return value

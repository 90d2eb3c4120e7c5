"""Agent settings: file + DCVFLEET_* overrides, defaults, and errors that name the key."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from dcvfleet_agent.aws import AwsError
from dcvfleet_agent.config import (
    KEYS,
    POLICY_KEYS,
    ConfigError,
    default_platform,
    env_name,
    load_config,
    read_settings,
)


def env_for(tmp_path: Path, data: Any, **extra: str) -> dict[str, str]:
    path = tmp_path / "agent.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return {"DCVFLEET_AGENT_CONFIG": str(path), **extra}


BASE = {"eventBusName": "fleet", "region": "us-east-1"}


def test_defaults_from_a_minimal_file(tmp_path: Path) -> None:
    config = load_config(env_for(tmp_path, BASE))
    assert config.event_bus_name == "fleet"
    assert config.region == "us-east-1"
    assert config.instance_id is None
    assert config.session_id is None
    assert config.secret_arn is None
    assert config.platform == default_platform()
    assert config.dcv_command == ("dcv",)
    assert config.dcv_session_name == "desktop"
    assert config.manage_user is True
    assert config.user_name == "dcvuser"
    assert config.ready_timeout_seconds == 300
    assert config.send_max_attempts == 8
    assert config.send_base_delay_seconds == 0.5
    assert config.send_max_delay_seconds == 30
    assert config.command_timeout_seconds == 10
    assert config.endpoint_url is None
    assert config.settings_parameter is None
    assert config.heartbeat_interval_seconds == 60
    assert config.sample_interval_seconds == 10
    assert config.idle_timeout_seconds == 1800
    assert config.cpu_threshold_percent == 10
    assert config.gpu_threshold_percent == 10
    assert config.busy_processes == ()
    assert config.cpu_stat_path == "/proc/stat"
    assert config.nvidia_smi_command == ("nvidia-smi",)


def test_env_overrides_every_key_by_upper_snake_name(tmp_path: Path) -> None:
    assert env_name("eventBusName") == "DCVFLEET_EVENT_BUS_NAME"
    assert env_name("readyTimeoutSeconds") == "DCVFLEET_READY_TIMEOUT_SECONDS"
    env = env_for(
        tmp_path,
        {**BASE, "dcvCommand": ["python3", "/sim.py"], "manageUser": True},
        DCVFLEET_REGION="eu-west-1",
        DCVFLEET_MANAGE_USER="false",
        DCVFLEET_SEND_MAX_ATTEMPTS="3",
        DCVFLEET_READY_TIMEOUT_SECONDS="0.5",
        DCVFLEET_PLATFORM="container",
        DCVFLEET_ENDPOINT_URL="http://127.0.0.1:4566",
        DCVFLEET_INSTANCE_ID="local-host-1",
    )
    config = load_config(env)
    assert config.region == "eu-west-1"
    assert config.manage_user is False
    assert config.send_max_attempts == 3
    assert config.ready_timeout_seconds == 0.5
    assert config.platform == "container"
    assert config.endpoint_url == "http://127.0.0.1:4566"
    assert config.instance_id == "local-host-1"
    assert config.dcv_command == ("python3", "/sim.py")


def test_dcv_command_from_env_as_json_list_or_single_path(tmp_path: Path) -> None:
    listed = load_config(env_for(tmp_path, BASE, DCVFLEET_DCV_COMMAND='["py", "sim.py"]'))
    assert listed.dcv_command == ("py", "sim.py")
    path = r"C:\Program Files\NICE\DCV\Server\bin\dcv.exe"
    single = load_config(env_for(tmp_path, BASE, DCVFLEET_DCV_COMMAND=path))
    assert single.dcv_command == (path,)


def test_env_only_configuration_when_default_file_is_absent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("dcvfleet_agent.config.LINUX_CONFIG_PATH", "/nonexistent/agent.json")
    config = load_config({"DCVFLEET_EVENT_BUS_NAME": "b", "DCVFLEET_REGION": "us-west-2"})
    assert (config.event_bus_name, config.region) == ("b", "us-west-2")


@pytest.mark.parametrize(
    ("data", "extra", "key", "fragment"),
    [
        ({"region": "us-east-1"}, {}, "eventBusName", "is required"),
        ({"eventBusName": "b"}, {}, "region", "DCVFLEET_REGION"),
        ({**BASE, "region": "mars-1"}, {}, "region", "AWS region"),
        ({**BASE, "readyTimeoutSeconds": "300"}, {}, "readyTimeoutSeconds", "number > 0"),
        ({**BASE, "readyTimeoutSeconds": 0}, {}, "readyTimeoutSeconds", "number > 0"),
        ({**BASE, "sendMaxAttempts": 0}, {}, "sendMaxAttempts", "integer >= 1"),
        ({**BASE, "sendMaxAttempts": True}, {}, "sendMaxAttempts", "integer >= 1"),
        ({**BASE, "manageUser": "yes"}, {}, "manageUser", "true or false"),
        ({**BASE, "platform": "macos"}, {}, "platform", "linux or windows or container"),
        ({**BASE, "dcvCommand": []}, {}, "dcvCommand", "list of strings"),
        ({**BASE, "dcvCommand": ["dcv", 3]}, {}, "dcvCommand", "list of strings"),
        ({**BASE, "userName": "bad:name"}, {}, "userName", "user name"),
        ({**BASE, "dcvSessionName": "-x"}, {}, "dcvSessionName", "session id"),
        ({**BASE, "endpointUrl": "localhost"}, {}, "endpointUrl", "http(s) URL"),
        ({**BASE, "sendBaseDelaySeconds": -1}, {}, "sendBaseDelaySeconds", ">= 0"),
        ({**BASE, "sendMaxDelaySeconds": 0.1}, {}, "sendMaxDelaySeconds", "sendBaseDelay"),
        ({**BASE, "eventBusNmae": "typo"}, {}, "eventBusNmae", "unknown key"),
        ({**BASE, "cpuThresholdPercent": 101}, {}, "cpuThresholdPercent", "0 to 100, or null"),
        ({**BASE, "gpuThresholdPercent": "5"}, {}, "gpuThresholdPercent", "0 to 100"),
        ({**BASE, "idleTimeoutSeconds": 0}, {}, "idleTimeoutSeconds", "number > 0"),
        ({**BASE, "sampleIntervalSeconds": -1}, {}, "sampleIntervalSeconds", "number > 0"),
        (
            {**BASE, "heartbeatIntervalSeconds": None, "busyProcesses": "x"},
            {},
            "busyProcesses",
            "list",
        ),
        ({**BASE, "busyProcesses": [""]}, {}, "busyProcesses", "1-128 characters"),
        ({**BASE, "busyProcesses": ["p"] * 51}, {}, "busyProcesses", "at most 50"),
        ({**BASE, "nvidiaSmiCommand": []}, {}, "nvidiaSmiCommand", "list of strings"),
        ({**BASE, "settingsParameter": ""}, {}, "settingsParameter", "non-empty string"),
        (BASE, {"DCVFLEET_CPU_THRESHOLD_PERCENT": "off"}, "cpuThresholdPercent", "cannot parse"),
        (BASE, {"DCVFLEET_BUSY_PROCESSES": "blender"}, "busyProcesses", "cannot parse"),
        (BASE, {"DCVFLEET_SEND_MAX_ATTEMPTS": "many"}, "sendMaxAttempts", "SEND_MAX_ATTEMPTS"),
        (BASE, {"DCVFLEET_MANAGE_USER": "maybe"}, "manageUser", "DCVFLEET_MANAGE_USER"),
        (BASE, {"DCVFLEET_READY_TIMEOUT_SECONDS": "-5"}, "readyTimeoutSeconds", "> 0"),
        (BASE, {"DCVFLEET_DCV_COMMAND": "[1, 2"}, "dcvCommand", "cannot parse"),
    ],
)
def test_invalid_settings_name_the_key(
    tmp_path: Path, data: Any, extra: dict[str, str], key: str, fragment: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(env_for(tmp_path, data, **extra))
    assert caught.value.key == key
    assert f"'{key}'" in str(caught.value)
    assert fragment in str(caught.value)


@pytest.mark.parametrize(
    ("content", "fragment"),
    [("{not json", "not JSON"), ("[1, 2]", "JSON object")],
)
def test_bad_file_is_a_config_error(tmp_path: Path, content: str, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        load_config(env_for(tmp_path, content))


def test_file_with_utf8_bom_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "agent.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(BASE).encode())
    assert load_config({"DCVFLEET_AGENT_CONFIG": str(path)}).event_bus_name == "fleet"


def test_explicit_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config({"DCVFLEET_AGENT_CONFIG": str(tmp_path / "missing.json")})


def test_every_key_is_documented_in_this_test() -> None:
    assert set(KEYS) == {
        "eventBusName", "region", "instanceId", "sessionId", "secretArn", "platform",
        "dcvCommand", "dcvSessionName", "manageUser", "userName", "readyTimeoutSeconds",
        "sendMaxAttempts", "sendBaseDelaySeconds", "sendMaxDelaySeconds",
        "commandTimeoutSeconds", "endpointUrl", "settingsParameter", "heartbeatIntervalSeconds",
        "sampleIntervalSeconds", "idleTimeoutSeconds", "cpuThresholdPercent",
        "gpuThresholdPercent", "busyProcesses", "cpuStatPath", "nvidiaSmiCommand",
        "resumeGapSeconds",
    }  # fmt: skip
    assert set(POLICY_KEYS) == {
        "heartbeatIntervalSeconds", "sampleIntervalSeconds", "idleTimeoutSeconds",
        "cpuThresholdPercent", "gpuThresholdPercent", "busyProcesses",
    }  # fmt: skip


def test_null_threshold_disables_the_signal_from_file_or_env(tmp_path: Path) -> None:
    config = load_config(env_for(tmp_path, {**BASE, "cpuThresholdPercent": None}))
    assert (config.cpu_threshold_percent, config.gpu_threshold_percent) == (None, 10)
    config = load_config(env_for(tmp_path, BASE, DCVFLEET_GPU_THRESHOLD_PERCENT="null"))
    assert config.gpu_threshold_percent is None
    config = load_config(env_for(tmp_path, BASE, DCVFLEET_GPU_THRESHOLD_PERCENT="0"))
    assert config.gpu_threshold_percent == 0  # 0 is a threshold nothing is under: never idle


def test_policy_keys_and_host_paths_from_file_and_env(tmp_path: Path) -> None:
    data = {
        **BASE,
        "busyProcesses": ["blender", "maya.exe"],
        "nvidiaSmiCommand": ["python3", "/sim/nvidia-smi.py"],
        "cpuStatPath": "/run/sim/stat",
        "settingsParameter": "/dcvfleet/agent-settings",
    }
    config = load_config(
        env_for(tmp_path, data, DCVFLEET_IDLE_TIMEOUT_SECONDS="20", DCVFLEET_BUSY_PROCESSES="[]")
    )
    assert config.busy_processes == ()
    assert config.idle_timeout_seconds == 20
    assert config.nvidia_smi_command == ("python3", "/sim/nvidia-smi.py")
    assert config.cpu_stat_path == "/run/sim/stat"
    assert config.settings_parameter == "/dcvfleet/agent-settings"


# --- the SSM settings parameter ---------------------------------------------------------------


class FakeSsm:
    """get_parameter answering with a value, or raising."""

    def __init__(self, value: Any) -> None:
        self.value = value
        self.names: list[str] = []

    def get_parameter(self, Name: str) -> dict[str, Any]:
        self.names.append(Name)
        if isinstance(self.value, Exception):
            raise self.value
        return {"Parameter": {"Name": Name, "Type": "String", "Value": self.value}}


SETTINGS = {
    "idleTimeoutSeconds": 900,
    "heartbeatIntervalSeconds": 30,
    "sampleIntervalSeconds": 5,
    "cpuThresholdPercent": 20,
    "gpuThresholdPercent": None,
    "busyProcesses": ["blender"],
}


def test_precedence_is_defaults_then_ssm_then_file_then_env(tmp_path: Path) -> None:
    ssm = FakeSsm(json.dumps(SETTINGS))
    settings, ignored = read_settings(ssm, "/dcvfleet/agent-settings")
    assert (ssm.names, ignored) == (["/dcvfleet/agent-settings"], [])
    file_data = {**BASE, "heartbeatIntervalSeconds": 45, "cpuThresholdPercent": None}
    env = env_for(tmp_path, file_data, DCVFLEET_SAMPLE_INTERVAL_SECONDS="2")
    config = load_config(env, settings=settings)
    assert config.idle_timeout_seconds == 900  # SSM over the default
    assert config.gpu_threshold_percent is None  # SSM's null disables
    assert config.busy_processes == ("blender",)
    assert config.heartbeat_interval_seconds == 45  # the file over SSM
    assert config.cpu_threshold_percent is None  # the file's null over SSM's 20
    assert config.sample_interval_seconds == 2  # the environment over all
    assert load_config(env).idle_timeout_seconds == 1800  # without SSM: the default


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        (AwsError("ParameterNotFound", "x", 400),
         "ParameterNotFound"),
        (AwsError("ConnectionError", "POST https://ssm/: refused"), "cannot read"),
        ("{idleTimeoutSeconds: 5", "is not JSON"),
        ("", "is not JSON"),
        ('["idleTimeoutSeconds"]', "JSON object"),
    ],
)  # fmt: skip
def test_an_unusable_settings_parameter_is_a_config_error(value: Any, fragment: str) -> None:
    with pytest.raises(ConfigError) as caught:
        read_settings(FakeSsm(value), "/dcvfleet/agent-settings")
    assert caught.value.key == "settingsParameter"
    assert fragment in str(caught.value)


def test_bad_or_unknown_keys_are_left_out_and_the_rest_applies() -> None:
    value = {
        "idleTimeoutSeconds": 600,
        "eventBusName": "other",  # host-specific: not the fleet's to set
        "idleGraceSeconds": 60,  # a newer or control-plane key
        "cpuThresholdPercent": 200,
        "busyProcesses": ["blender"],
    }
    settings, ignored = read_settings(FakeSsm(json.dumps(value)), "/p")
    assert settings == {"idleTimeoutSeconds": 600, "busyProcesses": ["blender"]}
    assert [(problem.key, problem.detail) for problem in ignored] == [
        ("eventBusName", "not a setting SSM parameter /p may set"),
        ("idleGraceSeconds", "not a setting SSM parameter /p may set"),
        (
            "cpuThresholdPercent",
            "expected a number from 0 to 100, or null to disable the signal, got 200"
            " (in SSM parameter /p)",
        ),
    ]

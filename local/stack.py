"""The local stack: the emulator, the template deployed into it, the API, simulated hosts.

``LocalStack.start`` starts moto in server mode with every gap of ``local.emulator`` closed
(``registry.apply_all``, with the ``SimulatorHooks`` it hands the simulators too) and the fault
injection of ``local.faults`` hooked in, deploys ``template.yaml`` into it (``local.deploy``),
serves the API from the template's OpenAPI body (``local.apigw``), runs simulated hosts for the
fleet's instances, simulated containers for its Batch jobs (``local.sim``) and the
``control_url`` server (``local.sim.control``), runs the EventBridge schedules
(``emulator.scheduler.Scheduler``; one schedule minute lasts ``minute_seconds`` real seconds),
creates the demo user and the admin user (a member of the ``admins`` group) and writes
``stack.json``. Its ports and its users' passwords are those of the last stack in the same state
directory while the ports are free (``local.remembered``). ``stop`` stops them and removes the gaps'
patches again.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dcvfleet.config import FLEET_TAG_KEY
from local import deploy, emulator, faults, remembered
from local.apigw import ApiServer
from local.emulator import registry
from local.emulator.gap import Context
from local.emulator.hooks import SimulatorHooks
from local.emulator.scheduler import Scheduler
from local.portal import PortalServer, template_policy
from local.sim.containers import JobSimulator
from local.sim.control import ControlServer
from local.sim.hosts import HostSimulator

log = logging.getLogger("local.stack")
REGION = "us-east-1"
STATE_DIR = emulator.ROOT / ".local"
DEMO_USER = "demo"
ADMIN_USER = "admin"


def use_emulator_credentials() -> None:
    """The emulator accepts any credentials; never let a real profile be used by accident."""
    os.environ.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",  # noqa: S106 - any value works
        AWS_SESSION_TOKEN="testing",  # noqa: S106
        AWS_DEFAULT_REGION=REGION,
        AWS_REGION=REGION,
    )
    for key in ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        os.environ.pop(key, None)


def create_user(
    idp: Any, pool_id: str, username: str, password: str, groups: tuple[str, ...] = ()
) -> None:
    """A user as an administrator creates one: verified e-mail, permanent password, and a member
    of ``groups`` (AdminAddUserToGroup:
    https://docs.aws.amazon.com/cognito-user-identity-pools/latest/APIReference/API_AdminAddUserToGroup.html;
    the group is in the ID token's ``cognito:groups`` claim)."""
    idp.admin_create_user(
        UserPoolId=pool_id,
        Username=username,
        UserAttributes=[
            {"Name": "email", "Value": f"{username}@example.com"},
            {"Name": "email_verified", "Value": "true"},
        ],
        MessageAction="SUPPRESS",
    )
    idp.admin_set_user_password(
        UserPoolId=pool_id, Username=username, Password=password, Permanent=True
    )
    for group in groups:
        idp.admin_add_user_to_group(UserPoolId=pool_id, Username=username, GroupName=group)


@dataclass
class StackInfo:
    api_url: str
    portal_url: str
    aws_endpoint_url: str
    region: str
    control_url: str
    user_pool_id: str
    user_pool_client_id: str
    demo_user: dict[str, str]
    admin_user: dict[str, str]
    parameters: dict[str, str]
    resources: dict[str, str]
    not_emulated: list[str]
    minute_seconds: float

    def as_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


class LocalStack:
    def __init__(
        self,
        overrides: dict[str, str] | None = None,
        *,
        boot_delay: float = 0.0,
        baked_boot_delay: float | None = None,
        batch_boot_delay: float | None = None,
        pull_delay: float = 0.0,
        moto_port: int = 0,
        state_dir: Path = STATE_DIR,
        minute_seconds: float = 60.0,
    ) -> None:
        if minute_seconds <= 0:
            raise ValueError("minute_seconds must be > 0")
        # the ports and passwords of the last stack in state_dir, while its ports are free
        self.remembered = remembered.choose(state_dir, {"aws": moto_port} if moto_port else None)
        self.portal_port = self.remembered.ports["portal"]
        self.overrides = {
            "PortalOrigin": f"http://127.0.0.1:{self.portal_port}",
            **deploy.samconfig_overrides(),
            **(overrides or {}),
        }
        self.boot_delay = boot_delay
        self.baked_boot_delay = baked_boot_delay
        # a Batch job's instance (default: boot_delay) and its desktop image's pull
        self.batch_boot_delay = batch_boot_delay
        self.pull_delay = pull_delay
        self.minute_seconds = minute_seconds
        self.moto_port = self.remembered.ports["aws"]
        self.state_dir = state_dir
        self.endpoint_url = f"http://127.0.0.1:{self.moto_port}"
        self._server: Any = None
        self.api: ApiServer | None = None
        self.portal: PortalServer | None = None
        self.hosts: HostSimulator | None = None
        self.jobs: JobSimulator | None = None
        self.control: ControlServer | None = None
        self.scheduler: Scheduler | None = None
        self.hooks = SimulatorHooks()
        self.info: StackInfo | None = None
        self.deployment: deploy.Deployment | None = None

    def start(self) -> StackInfo:
        from moto.server import ThreadedMotoServer

        use_emulator_credentials()
        # the emulator's HTTP server logs every request otherwise (make local, benches)
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        self._server = ThreadedMotoServer(
            ip_address="127.0.0.1", port=self.moto_port, verbose=False
        )
        self._server.start()
        faults.install()  # first: EC2_STATE_CHANGES then wraps its RunInstances
        registry.apply_all(Context(self.endpoint_url, self.moto_port, self.hooks))
        os.environ["AWS_ENDPOINT_URL"] = self.endpoint_url
        d = deploy.Deployer(self.endpoint_url, REGION).deploy(self.overrides)
        self.deployment = d
        api_id = next(iter(d.apis))
        self.api = ApiServer(
            endpoint_url=self.endpoint_url,
            region=REGION,
            body=d.apis[api_id]["body"],
            stage=d.apis[api_id]["stage"],
            client_ids=[d.outputs["UserPoolClientId"]],
            method_settings=d.apis[api_id]["methodSettings"],
            port=self.remembered.ports["api"],
        )
        self.api.start()
        self.portal = PortalServer(
            {
                "apiUrl": self.api.url,
                "region": REGION,
                "userPoolId": d.outputs["UserPoolId"],
                "userPoolClientId": d.outputs["UserPoolClientId"],
                "cognitoEndpoint": f"{self.endpoint_url}/",
            },
            template_policy(d.template),
            port=self.portal_port,
        )
        self.portal.start()
        shutil.rmtree(self.state_dir / "hosts", ignore_errors=True)
        self.hosts = HostSimulator(
            endpoint_url=self.endpoint_url,
            region=REGION,
            event_bus_name=d.outputs["EventBusName"],
            fleet_tag_key=FLEET_TAG_KEY,
            fleet_tag_value=d.parameter("FleetTagValue"),
            workdir=self.state_dir / "hosts",
            boot_delay=self.boot_delay,
            baked_boot_delay=self.baked_boot_delay,
            settings_parameter=d.outputs.get("AgentSettingsParameter"),
            hooks=self.hooks,
        )
        self.hosts.start()
        self.jobs = JobSimulator(
            self.hosts,
            self.hooks,
            boot_delay=self.batch_boot_delay,
            pull_delay=self.pull_delay,
            release_parameter=d.outputs.get("ReleaseParameter"),
        )
        self.jobs.start()
        self.scheduler = Scheduler(self.endpoint_url, self.minute_seconds)
        self.control = ControlServer(
            self.hosts,
            d.physical,
            port=self.remembered.ports["control"],
            scheduler=self.scheduler,
            jobs=self.jobs,
        )
        self.control.start()
        demo, admin = self._create_users(d.outputs["UserPoolId"], d.physical["AdminsGroup"])
        self.info = StackInfo(
            api_url=self.api.url,
            portal_url=self.portal.url,
            aws_endpoint_url=self.endpoint_url,
            region=REGION,
            control_url=self.control.url,
            user_pool_id=d.outputs["UserPoolId"],
            user_pool_client_id=d.outputs["UserPoolClientId"],
            demo_user=demo,
            admin_user=admin,
            parameters=d.parameters,
            resources=dict(d.physical),
            not_emulated=d.not_emulated,
            minute_seconds=self.minute_seconds,
        )
        self.scheduler.start()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.state_dir / "stack.json.tmp"
        tmp.write_text(json.dumps(self.info.as_json(), indent=2))
        os.replace(tmp, self.state_dir / "stack.json")
        return self.info

    def _create_users(
        self, pool_id: str, admins_group: str
    ) -> tuple[dict[str, str], dict[str, str]]:
        """The demo user, and the admin user: a member of the template's ``admins`` group."""
        import boto3

        idp = boto3.client("cognito-idp", endpoint_url=self.endpoint_url, region_name=REGION)
        demo_password = self.remembered.passwords["demo"]
        create_user(idp, pool_id, DEMO_USER, demo_password)
        admin_password = self.remembered.passwords["admin"]
        create_user(idp, pool_id, ADMIN_USER, admin_password, groups=(admins_group,))
        return (
            {"username": DEMO_USER, "password": demo_password},
            {"username": ADMIN_USER, "password": admin_password},
        )

    def stop(self) -> None:
        parts = (
            self.scheduler,
            self.control,
            self.portal,
            self.api,
            self.jobs,
            self.hosts,
            self._server,
        )
        for part in parts:
            if part is not None:
                began = time.monotonic()
                part.stop()  # the hosts' agents flush their events as they end
                log.info("stopped %s in %.1fs", type(part).__name__, time.monotonic() - began)
        registry.revert()
        (self.state_dir / "stack.json").unlink(missing_ok=True)

"""EC2: state-change events (the simulators told), page tokens, the default VPC's internet route,
an instance's LaunchTime after a start."""

from __future__ import annotations

import json
import logging
from typing import Any

from local.emulator.gap import Gap, Patch
from local.emulator.hooks import SimulatorHooks

log = logging.getLogger("local.emulator")


STATE_CHANGING_CALLS = ("run_instances", "start_instances", "stop_instances", "terminate_instances")
#: The states EC2 reports on the way to each final state.
_TRANSITIONS = {
    "running": ("pending", "running"),
    "stopped": ("stopping", "stopped"),
    "terminated": ("shutting-down", "terminated"),
}


def _state_change_events(backend: Any, changed: list[tuple[Any, str | None]]) -> None:
    from moto.events.models import events_backends

    entries = []
    for instance, previous in changed:
        final = instance.state
        if final == previous:
            continue  # starting a running instance changes nothing, and says nothing
        arn = f"arn:aws:ec2:{backend.region_name}:{backend.account_id}:instance/{instance.id}"
        for state in _TRANSITIONS.get(final, (final,)):
            entries.append(
                {
                    "Source": "aws.ec2",
                    "DetailType": "EC2 Instance State-change Notification",
                    "Detail": json.dumps({"instance-id": instance.id, "state": state}),
                    "Resources": [arn],
                    "EventBusName": "default",
                }
            )
    if entries:
        events_backends[backend.account_id][backend.region_name].put_events(entries)


def state_change_patches(hooks: SimulatorHooks) -> list[Patch]:
    """EC2_STATE_CHANGES: after every run, start, stop and terminate, put EC2's state-change
    events and tell the simulators (``hooks.instances_changed``); after CreateTags on an
    instance, tell the simulators only."""
    from moto.ec2.models.instances import InstanceBackend

    patches = []
    for name in STATE_CHANGING_CALLS:
        original = getattr(InstanceBackend, name)

        def notifying(self: Any, *args: Any, __original: Any = original, **kwargs: Any) -> Any:
            result = __original(self, *args, **kwargs)
            changed: list[tuple[Any, str | None]]
            if hasattr(result, "instances"):  # run_instances: a reservation of new instances
                changed = [(instance, None) for instance in result.instances]
            else:  # start, stop, terminate: (instance, its previous state)
                changed = [(instance, previous.name) for instance, previous in result]
            _state_change_events(self, changed)
            hooks.instances_changed()
            return result

        patches.append(Patch(InstanceBackend, name, notifying))
    from moto.ec2.models.tags import TagBackend

    original_tags = TagBackend.create_tags

    def create_tags(self: Any, resource_ids: list[str], tags: dict[str, str]) -> bool:
        # no event (tags are not a state), but the simulators hear of it at once: a warm pool
        # host's agent binds when its session tag is put on it
        result = original_tags(self, resource_ids, tags)
        if any(str(r).startswith("i-") for r in resource_ids):
            hooks.instances_changed()
        return bool(result)

    patches.append(Patch(TagBackend, "create_tags", create_tags))
    return patches


# EC2_PAGE_TOKEN
def ec2_page_token_patches() -> list[Patch]:
    """EC2_PAGE_TOKEN: ``DescribeInstances`` refuses a ``NextToken`` that names no reservation of
    the listing as a client error.."""
    from moto.ec2.exceptions import EC2ClientError
    from moto.ec2.responses.instances import InstanceResponse

    original = InstanceResponse.describe_instances

    def describe_instances(self: Any) -> Any:
        token = self._get_param("NextToken")
        if token:
            filters = self._filters_from_querystring()
            ids = self._get_param("InstanceIds", [])
            reservations = (
                self.ec2_backend.get_reservations_by_instance_ids(ids, filters=filters)
                if ids
                else self.ec2_backend.describe_instances(filters=filters)
            )
            if token not in {reservation.id for reservation in reservations}:
                # not echoed: a control character in it would make the XML answer unreadable
                raise EC2ClientError("InvalidParameterValue", "The NextToken is not valid.")
        return original(self)

    return [Patch(InstanceResponse, "describe_instances", describe_instances)]


# EC2_LAUNCH_TIME
def launch_time_patches() -> list[Patch]:
    """EC2_LAUNCH_TIME: starting a stopped instance sets its ``LaunchTime`` to now."""
    from moto.core.utils import utcnow
    from moto.ec2.models.instances import Instance

    original = Instance.start

    def start(self: Any) -> Any:
        previous = original(self)
        if previous.name != "running":
            self.launch_time = utcnow()
        return previous

    return [Patch(Instance, "start", start)]


# DEFAULT_VPC_INTERNET
def default_vpc_patches() -> list[Patch]:
    """DEFAULT_VPC_INTERNET: the default VPC gets an internet gateway and a ``0.0.0.0/0`` route
    to it in its main route table.."""
    from moto.ec2.models.vpcs import VPCBackend

    original = VPCBackend.create_default_vpc

    def create_default_vpc(self: Any) -> Any:
        vpc = original(self)
        gateway = self.create_internet_gateway()
        self.attach_internet_gateway(gateway.id, vpc.id)
        for table in self.describe_route_tables(filters={"vpc-id": [vpc.id]}):
            if table.main_association_id is not None:
                self.create_route(table.id, "0.0.0.0/0", gateway_id=gateway.id)
        return vpc

    return [Patch(VPCBackend, "create_default_vpc", create_default_vpc)]


# LAUNCH_TEMPLATE_SSM_IMAGE
#: A launch template's ImageId that names an SSM parameter, resolved by EC2 at each launch:
#: https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/using-systems-manager-parameter-to-find-AMI.html
SSM_IMAGE_PREFIX = "resolve:ssm:"


def launch_template_ssm_image_patches() -> list[Patch]:
    """LAUNCH_TEMPLATE_SSM_IMAGE: a launch template version's ``ImageId`` of the form
    ``resolve:ssm:<name>`` (or ``<name>:<version>``) is the parameter's value when an instance
    is launched from it; a parameter that does not exist fails the launch, as EC2's does."""
    from moto.ec2.exceptions import EC2ClientError
    from moto.ec2.models.launch_templates import LaunchTemplateVersion
    from moto.ssm.models import ssm_backends

    original = LaunchTemplateVersion.image_id

    def image_id(self: Any) -> str:
        value: str = original.fget(self)  # type: ignore[attr-defined]
        if not value.startswith(SSM_IMAGE_PREFIX):
            return value
        backend = self.template.ec2_backend
        name = value[len(SSM_IMAGE_PREFIX) :]
        parameter = ssm_backends[backend.account_id][backend.region_name].get_parameter(name)
        if parameter is None:
            raise EC2ClientError(
                "InvalidParameterValue",
                f"The SSM parameter {name} that the launch template's ImageId names does not"
                " exist.",
            )
        return str(parameter.value)

    return [Patch(LaunchTemplateVersion, "image_id", property(image_id))]


EC2_STATE_CHANGES = Gap(
    "EC2_STATE_CHANGES",
    moto_does="instances change state without the EC2 Instance State-change Notification events"
    " AWS puts on the default bus",
    we_do="after every run, start, stop and terminate, the emulator puts them (each transition:"
    " pending, running, stopping, stopped, shutting-down, terminated) and tells the simulators,"
    " as it does after CreateTags on an instance (no event)",
    install=lambda context: state_change_patches(context.hooks),
)
EC2_PAGE_TOKEN = Gap(
    "EC2_PAGE_TOKEN",
    moto_does="DescribeInstances with a NextToken it never gave fails with a bare ValueError"
    " (HTTP 500, which clients retry)",
    we_do="it answers InvalidParameterValue, a client error, as EC2 does",
    install=lambda context: ec2_page_token_patches(),
)
EC2_LAUNCH_TIME = Gap(
    "EC2_LAUNCH_TIME",
    moto_does="an instance's LaunchTime stays the time RunInstances made it, through every stop"
    " and start",
    we_do="StartInstances of a stopped instance sets its LaunchTime to now, as EC2's is 'the time"
    " that the instance was last launched'"
    " (https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_Instance.html); the host"
    " simulator tells from it a stop and start that came between two of its looks",
    install=lambda context: launch_time_patches(),
)
DEFAULT_VPC_INTERNET = Gap(
    "DEFAULT_VPC_INTERNET",
    moto_does="the default VPC has no internet gateway and its main route table only the local"
    " route",
    we_do="the default VPC gets an internet gateway and a 0.0.0.0/0 route to it, as AWS gives"
    " one (https://docs.aws.amazon.com/vpc/latest/userguide/default-vpc-components.html)",
    install=lambda context: default_vpc_patches(),
)
LAUNCH_TEMPLATE_SSM_IMAGE = Gap(
    "LAUNCH_TEMPLATE_SSM_IMAGE",
    moto_does="an instance launched from a launch template whose ImageId is resolve:ssm:<name>"
    " gets that text as its image id (no AMI, so no platform)",
    we_do="the launch template's ImageId is the named parameter's value at each launch, as EC2"
    " resolves it (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/"
    "using-systems-manager-parameter-to-find-AMI.html)",
    install=lambda context: launch_template_ssm_image_patches(),
)

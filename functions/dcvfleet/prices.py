"""The pinned table of GPU instance types and their list prices (``data/instance_types.json``).

For each instance type the product uses: vCPUs, memory, GPUs and GPU memory; per region, the
On-Demand hourly price for Linux and for Windows, the Spot price where recorded, and the EBS gp3
price per GB-month. The table says when it was taken (``takenAt``) and where each figure comes
from (``source``). ``tools/prices.py`` refreshes it from the AWS Price List Query API and EC2.

A figure the table does not have is None, never 0: a cost that needs it is "price unknown".
Prices are validated on load (pydantic): a price is a positive number or null, so a 0 written
by mistake is refused rather than shown as a free host.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from importlib import resources
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, PositiveFloat, PositiveInt, ValidationError

OperatingSystem = Literal["Linux", "Windows"]
TABLE = "instance_types.json"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Spec(_Model):
    vcpus: PositiveInt
    memoryMiB: PositiveInt
    gpus: PositiveInt
    gpuMemoryMiB: PositiveInt


class _Region(_Model):
    ebsGp3PerGbMonth: PositiveFloat | None
    onDemandPerHour: dict[str, dict[OperatingSystem, PositiveFloat | None]]
    spotPerHour: dict[str, dict[OperatingSystem, PositiveFloat | None]] = {}


class _Table(_Model):
    takenAt: str
    currency: Literal["USD"]
    hoursPerMonth: PositiveFloat
    source: dict[str, Any]
    instanceTypes: dict[str, _Spec]
    regions: dict[str, _Region]


@dataclass(frozen=True)
class InstanceSpec:
    vcpus: int
    memory_mib: int
    gpus: int
    gpu_memory_mib: int


@dataclass(frozen=True)
class PriceTable:
    taken_at: str
    currency: str
    hours_per_month: float
    source: dict[str, Any]
    _table: _Table

    def spec(self, instance_type: str) -> InstanceSpec | None:
        found = self._table.instanceTypes.get(instance_type)
        if found is None:
            return None
        return InstanceSpec(found.vcpus, found.memoryMiB, found.gpus, found.gpuMemoryMiB)

    def instance_types(self) -> list[str]:
        return sorted(self._table.instanceTypes)

    def regions(self) -> list[str]:
        return sorted(self._table.regions)

    def on_demand_hour(
        self, instance_type: str, region: str, os: OperatingSystem = "Linux"
    ) -> float | None:
        """The On-Demand price of one instance-hour, or None when the table does not have it."""
        found = self._table.regions.get(region)
        if found is None:
            return None
        return found.onDemandPerHour.get(instance_type, {}).get(os)

    def spot_hour(
        self, instance_type: str, region: str, os: OperatingSystem = "Linux"
    ) -> float | None:
        """The Spot price recorded for one instance-hour (the region's lowest Availability
        Zone's when taken), or None."""
        found = self._table.regions.get(region)
        if found is None:
            return None
        return found.spotPerHour.get(instance_type, {}).get(os)

    def ebs_gp3_gb_month(self, region: str) -> float | None:
        found = self._table.regions.get(region)
        return None if found is None else found.ebsGp3PerGbMonth

    def volume_hour(self, region: str, size_gib: int) -> float | None:
        """A gp3 volume of ``size_gib`` for one hour (its GB-month price over the table's hours
        per month), or None."""
        per_month = self.ebs_gp3_gb_month(region)
        return None if per_month is None else size_gib * per_month / self.hours_per_month


def parse(data: Any) -> PriceTable:
    """The table from its JSON form; ValueError naming the first wrong field."""
    try:
        table = _Table.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ValueError(f"price table: {where}: {first['msg']}") from None
    return PriceTable(table.takenAt, table.currency, table.hoursPerMonth, table.source, table)


@functools.cache
def pinned() -> PriceTable:
    """The table the product ships (``dcvfleet/data/instance_types.json``), read once."""
    text = resources.files("dcvfleet").joinpath("data", TABLE).read_text("utf-8")
    return parse(json.loads(text))

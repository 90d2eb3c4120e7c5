"""Refresh the pinned price table (functions/dcvfleet/data/instance_types.json) from AWS.

    python tools/prices.py --out functions/dcvfleet/data/instance_types.json
    python tools/prices.py --regions us-east-1 eu-west-1 --spot --out ...

- On-Demand hourly prices (Linux and Windows) and EBS gp3 GB-month prices: the AWS Price List
  Query API, ``pricing`` GetProducts on the AmazonEC2 service code
  (https://docs.aws.amazon.com/aws-cost-management/latest/APIReference/API_pricing_GetProducts.html).
  Its endpoints are in us-east-1 and ap-south-1 only, whatever region is priced (the service's
  API reference, "Service Endpoint":
  https://docs.aws.amazon.com/aws-cost-management/latest/APIReference/API_Operations_AWS_Price_List_Service.html).
  Each answer's ``PriceList`` is a list of JSON strings, one product each: ``product``
  (``sku``, ``productFamily``, ``attributes``) and ``terms`` (``OnDemand``: per offer term,
  ``priceDimensions``: per rate, ``unit`` and ``pricePerUnit`` {"USD": "..."}), as the price
  list files are
  (https://docs.aws.amazon.com/awsaccountbilling/latest/aboutv2/reading-service-price-list-file-for-services.html).
  An instance type's hourly price is the one product matching instanceType, regionCode,
  operatingSystem, tenancy Shared, preInstalledSw NA, capacitystatus Used and licenseModel
  "No License required" (a Windows price then includes its licence), read from its OnDemand
  term's ``Hrs`` rate.
- Specifications (vCPUs, memory, GPUs, GPU memory): EC2 DescribeInstanceTypes
  (https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_DescribeInstanceTypes.html).
- Spot prices are not in the Price List API. ``--spot`` reads EC2 DescribeSpotPriceHistory in
  each region from now (given a start time, it also returns the price in effect at that time:
  https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_DescribeSpotPriceHistory.html) and
  keeps the lowest Availability Zone's.

A price that cannot be found is written as null and named in ``source.notes``, never as 0.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "functions" / "dcvfleet" / "data" / "instance_types.json"
#: The GPU instance types the product uses or offers (AllowedInstanceTypes,
#: FallbackInstanceTypes, BatchInstanceTypes and their neighbours).
DEFAULT_TYPES = (
    "g4dn.xlarge",
    "g4dn.2xlarge",
    "g4dn.4xlarge",
    "g4dn.8xlarge",
    "g4dn.12xlarge",
    "g4dn.16xlarge",
    "g5.xlarge",
    "g5.2xlarge",
    "g5.4xlarge",
    "g5.8xlarge",
    "g5.12xlarge",
    "g5.16xlarge",
    "g6.xlarge",
    "g6.2xlarge",
    "g6.4xlarge",
    "g6.8xlarge",
    "g6e.xlarge",
    "g6e.2xlarge",
    "g6e.4xlarge",
    "g4ad.xlarge",
    "g4ad.2xlarge",
    "g4ad.4xlarge",
)
DEFAULT_REGIONS = ("us-east-1",)
#: The Price List Query API's endpoint region (the other is ap-south-1).
PRICING_REGION = "us-east-1"
OPERATING_SYSTEMS = ("Linux", "Windows")
#: DescribeSpotPriceHistory's product descriptions for the two systems.
SPOT_PRODUCTS = {"Linux": "Linux/UNIX", "Windows": "Windows"}
HOURS_PER_MONTH = 730


class PriceError(ValueError):
    """The Price List answered something this script cannot read as one price."""


def _filters(**fields: str) -> list[dict[str, str]]:
    return [{"Type": "TERM_MATCH", "Field": k, "Value": v} for k, v in fields.items()]


def _products(pricing: Any, filters: list[dict[str, str]]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    pages = pricing.get_paginator("get_products").paginate(
        ServiceCode="AmazonEC2", Filters=filters, FormatVersion="aws_v1"
    )
    for page in pages:
        for item in page.get("PriceList", []):
            found.append(item if isinstance(item, dict) else json.loads(item))
    return found


def on_demand_price(product: dict[str, Any], unit: str) -> float:
    """The USD price per ``unit`` of ``product``'s one OnDemand term."""
    sku = product.get("product", {}).get("sku", "?")
    terms = list(product.get("terms", {}).get("OnDemand", {}).values())
    if len(terms) != 1:
        raise PriceError(f"product {sku}: {len(terms)} OnDemand terms, not one")
    rates = [d for d in terms[0].get("priceDimensions", {}).values() if d.get("unit") == unit]
    if len(rates) != 1:
        raise PriceError(f"product {sku}: {len(rates)} OnDemand rates in {unit!r}, not one")
    usd = rates[0].get("pricePerUnit", {}).get("USD")
    if usd is None:
        raise PriceError(f"product {sku}: its rate has no USD price")
    return float(usd)


def _one(products: list[dict[str, Any]], what: str) -> dict[str, Any] | None:
    if not products:
        return None
    if len(products) > 1:
        skus = ", ".join(sorted(p.get("product", {}).get("sku", "?") for p in products))
        raise PriceError(f"{what}: {len(products)} products match ({skus}), not one")
    return products[0]


def instance_hour(pricing: Any, instance_type: str, region: str, os: str) -> float | None:
    """The On-Demand price of one hour of ``instance_type`` in ``region`` running ``os``;
    None when the Price List has no such product (a type not offered there)."""
    filters = _filters(
        instanceType=instance_type,
        regionCode=region,
        operatingSystem=os,
        tenancy="Shared",
        preInstalledSw="NA",
        capacitystatus="Used",
        licenseModel="No License required",
    )
    product = _one(_products(pricing, filters), f"{instance_type} {os} in {region}")
    if product is None:
        return None
    price = on_demand_price(product, "Hrs")
    return price if price > 0 else None


def gp3_gb_month(pricing: Any, region: str) -> float | None:
    filters = _filters(productFamily="Storage", volumeApiName="gp3", regionCode=region)
    product = _one(_products(pricing, filters), f"gp3 in {region}")
    if product is None:
        return None
    price = on_demand_price(product, "GB-Mo")
    return price if price > 0 else None


def specs(ec2: Any, instance_types: Sequence[str]) -> dict[str, dict[str, int]]:
    """vCPUs, memory, GPUs and GPU memory of each type EC2 describes (a type it does not
    know is left out)."""
    found: dict[str, dict[str, int]] = {}
    for page in ec2.get_paginator("describe_instance_types").paginate(
        Filters=[{"Name": "instance-type", "Values": list(instance_types)}]
    ):
        for t in page.get("InstanceTypes", []):
            gpu = t.get("GpuInfo")
            if not gpu:
                continue  # not a GPU type: not the product's
            found[t["InstanceType"]] = {
                "vcpus": t["VCpuInfo"]["DefaultVCpus"],
                "memoryMiB": t["MemoryInfo"]["SizeInMiB"],
                "gpus": sum(g.get("Count", 0) for g in gpu.get("Gpus", [])),
                "gpuMemoryMiB": gpu["TotalGpuMemoryInMiB"],
            }
    return found


def spot_prices(
    ec2: Any, instance_types: Sequence[str], now: dt.datetime
) -> dict[str, dict[str, float]]:
    """The lowest Availability Zone's Spot price in effect at ``now``, per type and system."""
    lowest: dict[str, dict[str, float]] = {}
    by_product = {v: k for k, v in SPOT_PRODUCTS.items()}
    for page in ec2.get_paginator("describe_spot_price_history").paginate(
        InstanceTypes=list(instance_types),
        ProductDescriptions=list(SPOT_PRODUCTS.values()),
        StartTime=now,
    ):
        for entry in page.get("SpotPriceHistory", []):
            os = by_product.get(entry.get("ProductDescription", ""))
            if os is None:
                continue
            price = float(entry["SpotPrice"])
            seen = lowest.setdefault(entry["InstanceType"], {})
            if price > 0 and price < seen.get(os, float("inf")):
                seen[os] = price
    return lowest


def build(
    pricing: Any,
    ec2_for: Any,
    *,
    regions: Sequence[str],
    instance_types: Sequence[str],
    spot: bool,
    now: dt.datetime,
) -> dict[str, Any]:
    """The whole table. ``ec2_for(region)`` gives an EC2 client of that region."""
    missing: list[str] = []
    table_specs = specs(ec2_for(regions[0]), instance_types)
    missing += [f"{t}: no specifications" for t in instance_types if t not in table_specs]
    region_rows: dict[str, Any] = {}
    for region in regions:
        on_demand: dict[str, dict[str, float | None]] = {}
        for t in instance_types:
            row = {os: instance_hour(pricing, t, region, os) for os in OPERATING_SYSTEMS}
            missing += [f"{t} {os} On-Demand in {region}" for os, v in row.items() if v is None]
            on_demand[t] = row
        ebs = gp3_gb_month(pricing, region)
        if ebs is None:
            missing.append(f"gp3 in {region}")
        row_spot: dict[str, dict[str, float | None]] = {}
        if spot:
            found = spot_prices(ec2_for(region), instance_types, now)
            for t in instance_types:
                row_spot[t] = {os: found.get(t, {}).get(os) for os in OPERATING_SYSTEMS}
        region_rows[region] = {
            "ebsGp3PerGbMonth": ebs,
            "onDemandPerHour": on_demand,
            "spotPerHour": row_spot,
        }
    notes = [f"Not found, so null: {', '.join(missing)}."] if missing else []
    if not spot:
        notes.append("Spot prices not taken (run with --spot).")
    return {
        "takenAt": now.astimezone(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "currency": "USD",
        "hoursPerMonth": HOURS_PER_MONTH,
        "source": {
            "how": "tools/prices.py: the AWS Price List Query API (GetProducts, AmazonEC2)"
            " for On-Demand and gp3 prices, EC2 DescribeInstanceTypes for specifications"
            + (", EC2 DescribeSpotPriceHistory for Spot (lowest zone)" if spot else ""),
            "notes": notes,
        },
        "instanceTypes": dict(sorted(table_specs.items())),
        "regions": region_rows,
    }


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--regions", nargs="+", default=list(DEFAULT_REGIONS))
    parser.add_argument("--types", nargs="+", default=list(DEFAULT_TYPES))
    parser.add_argument("--spot", action="store_true", help="also take Spot prices")
    args = parser.parse_args(list(argv) if argv is not None else None)
    import boto3  # only when run against AWS

    pricing = boto3.client("pricing", region_name=PRICING_REGION)
    table = build(
        pricing,
        lambda region: boto3.client("ec2", region_name=region),
        regions=args.regions,
        instance_types=args.types,
        spot=args.spot,
        now=dt.datetime.now(dt.UTC),
    )
    sys.path.insert(0, str(ROOT / "functions"))
    from dcvfleet import prices

    prices.parse(table)  # what the product will load
    args.out.write_text(json.dumps(table, indent=2) + "\n")
    print(f"{args.out}: {len(table['instanceTypes'])} types, taken {table['takenAt']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The pinned price table loads with a typed API, never turns a missing price into 0, covers
every instance type the template offers; tools/prices.py builds it from the Price List Query API
and EC2, driven here by botocore's Stubber (which checks each request and answer against the
services' models) with answers shaped as the GetProducts reference shows
(https://docs.aws.amazon.com/aws-cost-management/latest/APIReference/API_pricing_GetProducts.html)."""

from __future__ import annotations

import copy
import datetime as dt
import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from dcvfleet import prices
from tests.support.template import TEMPLATE
from tools import prices as refresh

FIXTURES = Path(__file__).parent / "fixtures" / "pricing"
NOW = dt.datetime(2026, 12, 7, 12, 0, tzinfo=dt.UTC)


def _fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return data


def test_the_pinned_table_answers_prices_specs_and_when_it_was_taken() -> None:
    table = prices.pinned()
    assert table.taken_at == "2026-12-07"
    assert table.on_demand_hour("g5.xlarge", "us-east-1") == pytest.approx(1.006)
    spec = table.spec("g5.xlarge")
    assert spec == prices.InstanceSpec(vcpus=4, memory_mib=16384, gpus=1, gpu_memory_mib=24576)
    # 100 GiB of gp3 for an hour: 100 x $0.08 / 730 h
    assert table.volume_hour("us-east-1", 100) == pytest.approx(100 * 0.08 / 730)
    assert table.source["notes"]


def test_a_price_the_table_does_not_have_is_none_never_zero() -> None:
    table = prices.pinned()
    assert table.on_demand_hour("g5.xlarge", "us-east-1", "Windows") is None
    assert table.on_demand_hour("g5.xlarge", "eu-west-1") is None
    assert table.on_demand_hour("p5.48xlarge", "us-east-1") is None
    assert table.spot_hour("g5.xlarge", "us-east-1") is None
    assert table.volume_hour("eu-west-1", 100) is None
    assert table.spec("p5.48xlarge") is None


def test_a_table_with_a_zero_price_is_refused_naming_the_field() -> None:
    data = json.loads((Path(prices.__file__).parent / "data" / prices.TABLE).read_text())
    data["regions"]["us-east-1"]["onDemandPerHour"]["g5.xlarge"]["Linux"] = 0
    with pytest.raises(ValueError, match=r"regions\.us-east-1\.onDemandPerHour\.g5\.xlarge\.Linux"):
        prices.parse(data)


def test_every_instance_type_the_template_offers_has_its_specs_in_the_table() -> None:
    params = TEMPLATE["Parameters"]
    offered = {params["LinuxInstanceType"]["Default"], params["WindowsInstanceType"]["Default"]}
    for name in ("AllowedInstanceTypes", "FallbackInstanceTypes", "BatchInstanceTypes"):
        offered |= set(params[name]["Default"].split(","))
    table = prices.pinned()
    assert sorted(t for t in offered if table.spec(t) is None) == []
    # and the refresh script fetches each of them
    assert offered <= set(refresh.DEFAULT_TYPES)


def _instance_filters(instance_type: str, os: str) -> list[dict[str, str]]:
    fields = {
        "instanceType": instance_type,
        "regionCode": "us-east-1",
        "operatingSystem": os,
        "tenancy": "Shared",
        "preInstalledSw": "NA",
        "capacitystatus": "Used",
        "licenseModel": "No License required",
    }
    return [{"Type": "TERM_MATCH", "Field": k, "Value": v} for k, v in fields.items()]


def _products_request(filters: list[dict[str, str]]) -> dict[str, Any]:
    return {"ServiceCode": "AmazonEC2", "Filters": filters, "FormatVersion": "aws_v1"}


def _g5_description() -> dict[str, Any]:
    return {
        "InstanceTypes": [
            {
                "InstanceType": "g5.xlarge",
                "VCpuInfo": {"DefaultVCpus": 4},
                "MemoryInfo": {"SizeInMiB": 16384},
                "GpuInfo": {
                    "Gpus": [
                        {
                            "Name": "A10G",
                            "Manufacturer": "NVIDIA",
                            "Count": 1,
                            "MemoryInfo": {"SizeInMiB": 24576},
                        }
                    ],
                    "TotalGpuMemoryInMiB": 24576,
                },
            }
        ]
    }


def test_the_refresh_builds_a_table_the_product_loads_from_the_price_list_and_ec2() -> None:
    pricing = boto3.client("pricing", region_name="us-east-1")
    ec2 = boto3.client("ec2", region_name="us-east-1")
    with Stubber(pricing) as p, Stubber(ec2) as e:
        e.add_response(
            "describe_instance_types",
            _g5_description(),
            {"Filters": [{"Name": "instance-type", "Values": ["g5.xlarge"]}]},
        )
        p.add_response(
            "get_products",
            _fixture("get_products_g5_xlarge_linux.json"),
            _products_request(_instance_filters("g5.xlarge", "Linux")),
        )
        # no Windows product matches: the price is unknown, not 0
        p.add_response(
            "get_products",
            {"FormatVersion": "aws_v1", "PriceList": []},
            _products_request(_instance_filters("g5.xlarge", "Windows")),
        )
        gp3 = [
            {"Type": "TERM_MATCH", "Field": k, "Value": v}
            for k, v in {
                "productFamily": "Storage",
                "volumeApiName": "gp3",
                "regionCode": "us-east-1",
            }.items()
        ]
        p.add_response("get_products", _fixture("get_products_gp3.json"), _products_request(gp3))
        e.add_response(
            "describe_spot_price_history",
            {
                "SpotPriceHistory": [
                    {
                        "AvailabilityZone": zone,
                        "InstanceType": "g5.xlarge",
                        "ProductDescription": "Linux/UNIX",
                        "SpotPrice": price,
                        "Timestamp": NOW,
                    }
                    for zone, price in (("us-east-1a", "0.4501"), ("us-east-1b", "0.3902"))
                ]
            },
            {
                "InstanceTypes": ["g5.xlarge"],
                "ProductDescriptions": ["Linux/UNIX", "Windows"],
                "StartTime": NOW,
            },
        )
        built = refresh.build(
            pricing,
            lambda region: ec2,
            regions=["us-east-1"],
            instance_types=["g5.xlarge"],
            spot=True,
            now=NOW,
        )
        p.assert_no_pending_responses()
        e.assert_no_pending_responses()
    table = prices.parse(built)
    assert table.taken_at == "2026-12-07T12:00:00Z"
    assert table.on_demand_hour("g5.xlarge", "us-east-1") == pytest.approx(1.006)
    assert table.on_demand_hour("g5.xlarge", "us-east-1", "Windows") is None
    assert table.ebs_gp3_gb_month("us-east-1") == pytest.approx(0.08)
    assert table.spot_hour("g5.xlarge", "us-east-1") == pytest.approx(0.3902)  # lowest zone
    assert table.spec("g5.xlarge") == prices.InstanceSpec(4, 16384, 1, 24576)
    assert "g5.xlarge Windows On-Demand in us-east-1" in built["source"]["notes"][0]


def test_a_product_with_more_than_one_hourly_rate_is_refused_not_guessed() -> None:
    answer = _fixture("get_products_g5_xlarge_linux.json")
    product = json.loads(answer["PriceList"][0])
    term = next(iter(product["terms"]["OnDemand"].values()))
    rate = next(iter(term["priceDimensions"].values()))
    term["priceDimensions"]["second"] = copy.deepcopy(rate)
    with pytest.raises(refresh.PriceError, match="2 OnDemand rates in 'Hrs'"):
        refresh.on_demand_price(product, "Hrs")


def test_two_products_for_one_type_are_refused_naming_their_skus() -> None:
    pricing = boto3.client("pricing", region_name="us-east-1")
    answer = _fixture("get_products_g5_xlarge_linux.json")
    other = json.loads(answer["PriceList"][0])
    other["product"]["sku"] = "OTHERSKU"
    answer["PriceList"].append(json.dumps(other))
    with Stubber(pricing) as p:
        p.add_response("get_products", answer)
        with pytest.raises(refresh.PriceError, match="2 products match"):
            refresh.instance_hour(pricing, "g5.xlarge", "us-east-1", "Linux")

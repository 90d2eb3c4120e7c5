"""Publishing the portal at deploy time (``dcvfleet.portal`` and the PortalSite custom resource)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from dcvfleet import portal

CONFIG = {
    "apiUrl": "https://abc.execute-api.us-east-1.amazonaws.com/v1",
    "region": "us-east-1",
    "userPoolId": "us-east-1_abc",
    "userPoolClientId": "client",
    "cognitoEndpoint": "https://cognito-idp.us-east-1.amazonaws.com/",
}


class FakeCloudFront:
    def __init__(self) -> None:
        self.invalidations: list[dict[str, Any]] = []

    def create_invalidation(self, **kwargs: Any) -> None:
        self.invalidations.append(kwargs)


@pytest.fixture
def assets(tmp_path: Path) -> Path:
    (tmp_path / "js").mkdir()
    (tmp_path / "index.html").write_text("<!doctype html>")
    (tmp_path / "js" / "app.js").write_text("export {};")
    (tmp_path / "README.md").write_text("not part of the site")
    return tmp_path


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        client = boto3.client("s3")
        client.create_bucket(Bucket="portal")
        client.put_bucket_versioning(Bucket="portal", VersioningConfiguration={"Status": "Enabled"})
        yield client


def test_publish_uploads_the_site_and_its_config_and_invalidates(s3: Any, assets: Path) -> None:
    s3.put_object(Bucket="portal", Key="old.js", Body=b"gone")
    cloudfront = FakeCloudFront()
    count = portal.publish(s3, cloudfront, assets, "portal", "E123", CONFIG)
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket="portal")["Contents"]}
    assert keys == {"index.html", "js/app.js", "config.json"}
    assert count == 3
    page = s3.get_object(Bucket="portal", Key="js/app.js")
    assert page["ContentType"] == "text/javascript; charset=utf-8"
    config = json.loads(s3.get_object(Bucket="portal", Key="config.json")["Body"].read())
    assert config == CONFIG
    (invalidation,) = cloudfront.invalidations
    assert invalidation["DistributionId"] == "E123"
    assert invalidation["InvalidationBatch"]["Paths"]["Items"] == ["/*"]


def test_a_config_missing_a_key_publishes_nothing(s3: Any, assets: Path) -> None:
    with pytest.raises(ValueError, match="userPoolClientId"):
        portal.publish(
            s3, FakeCloudFront(), assets, "portal", "E1", {**CONFIG, "userPoolClientId": ""}
        )
    assert "Contents" not in s3.list_objects_v2(Bucket="portal")


def test_empty_removes_every_version(s3: Any, assets: Path) -> None:
    portal.publish(s3, FakeCloudFront(), assets, "portal", "", CONFIG)
    portal.publish(s3, FakeCloudFront(), assets, "portal", "", CONFIG)
    assert portal.empty(s3, "portal") == 6
    assert "Versions" not in s3.list_object_versions(Bucket="portal")

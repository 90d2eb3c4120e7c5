"""Publishing the web portal: its static files and its ``config.json`` in the portal bucket.

The template runs this at deploy time (the ``PortalSite`` custom resource), so the portal's API
URL and Cognito settings are injected where it is deployed, never baked into its files.
"""

from __future__ import annotations

import json
import mimetypes
import uuid
from pathlib import Path
from typing import Any

CONFIG_KEY = "config.json"
#: config.json's keys (portal/README.md): what the portal needs to know about its stack.
CONFIG_KEYS = ("apiUrl", "region", "userPoolId", "userPoolClientId", "cognitoEndpoint")
#: Not part of the site.
SKIPPED = frozenset({"README.md", CONFIG_KEY})
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".woff2": "font/woff2",
}


def content_type(path: str) -> str:
    suffix = Path(path).suffix.lower()
    return CONTENT_TYPES.get(suffix) or mimetypes.guess_type(path)[0] or "application/octet-stream"


def site_files(assets: Path) -> dict[str, Path]:
    """The portal's files by their key in the bucket (their path under ``assets``)."""
    return {
        p.relative_to(assets).as_posix(): p
        for p in sorted(assets.rglob("*"))
        if p.is_file() and p.name not in SKIPPED and "__pycache__" not in p.parts
    }


def config_document(config: dict[str, Any]) -> bytes:
    """``config.json``: exactly CONFIG_KEYS, each a non-empty string."""
    missing = [k for k in CONFIG_KEYS if not isinstance(config.get(k), str) or not config[k]]
    if missing:
        raise ValueError(f"portal config: {', '.join(missing)} missing")
    return json.dumps({k: config[k] for k in CONFIG_KEYS}, indent=2).encode()


def publish(  # noqa: PLR0917 (the clients, then what to publish where)
    s3: Any,
    cloudfront: Any,
    assets: Path,
    bucket: str,
    distribution_id: str,
    config: dict[str, Any],
) -> int:
    """Upload every file and config.json, remove files no longer in the portal, and invalidate
    the distribution's cache; the number of files published."""
    document = config_document(config)  # refuse a bad config before anything changes
    files = site_files(assets)
    if "index.html" not in files:
        raise ValueError(f"portal assets in {assets} have no index.html")
    for key, path in files.items():
        s3.put_object(
            Bucket=bucket,
            Key=key,
            Body=path.read_bytes(),
            ContentType=content_type(key),
            CacheControl="no-cache",  # files keep their names: browsers revalidate (ETag)
        )
    s3.put_object(
        Bucket=bucket,
        Key=CONFIG_KEY,
        Body=document,
        ContentType=content_type(CONFIG_KEY),
        CacheControl="no-store",
    )
    keep = {*files, CONFIG_KEY}
    stale = [key for key in _keys(s3, bucket) if key not in keep]
    for start in range(0, len(stale), 1000):
        batch = [{"Key": k} for k in stale[start : start + 1000]]
        s3.delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True})
    if distribution_id:
        cloudfront.create_invalidation(
            DistributionId=distribution_id,
            InvalidationBatch={
                "Paths": {"Quantity": 1, "Items": ["/*"]},
                "CallerReference": str(uuid.uuid4()),
            },
        )
    return len(files) + 1


def empty(s3: Any, bucket: str) -> int:
    """Delete every object version, so the stack can delete the bucket; the number deleted."""
    deleted = 0
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        versions = [
            {"Key": v["Key"], "VersionId": v["VersionId"]}
            for v in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]
        ]
        if versions:
            s3.delete_objects(Bucket=bucket, Delete={"Objects": versions, "Quiet": True})
            deleted += len(versions)
    return deleted


def _keys(s3: Any, bucket: str) -> list[str]:
    return [
        obj["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
        for obj in page.get("Contents", [])
    ]

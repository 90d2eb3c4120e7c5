"""The tests read a function's logs whole: every stream (Lambda writes one per invocation, and
DescribeLogStreams answers 50 a page) and every page of a stream (GetLogEvents answers at most
10,000 events or 1 MB a call)."""

from __future__ import annotations

import time

import boto3
from moto import mock_aws

from tests.support.stack import log_events

GROUP = "/aws/lambda/dcvfleet-AgentEvents"


@mock_aws
def test_every_stream_and_every_page_of_a_log_group_is_read() -> None:
    logs = boto3.client("logs", region_name="us-east-1")
    now = int(time.time() * 1000)  # CloudWatch Logs refuses events from the future
    logs.create_log_group(logGroupName=GROUP)
    for n in range(60):  # more invocations than one DescribeLogStreams page names
        logs.create_log_stream(logGroupName=GROUP, logStreamName=f"2026/12/07/[$LATEST]{n:032x}")
        logs.put_log_events(
            logGroupName=GROUP,
            logStreamName=f"2026/12/07/[$LATEST]{n:032x}",
            logEvents=[{"timestamp": now + n, "message": f"invocation {n}"}],
        )
    long = "2026/12/07/[$LATEST]long"
    logs.create_log_stream(logGroupName=GROUP, logStreamName=long)
    for batch in range(2):  # more events than one GetLogEvents page holds
        logs.put_log_events(
            logGroupName=GROUP,
            logStreamName=long,
            logEvents=[
                {"timestamp": now + 100 + batch * 6000 + i, "message": f"line {batch * 6000 + i}"}
                for i in range(6000)
            ],
        )
    assert len(logs.describe_log_streams(logGroupName=GROUP)["logStreams"]) == 50
    read = list(log_events(logs, GROUP))
    assert {message for _, message in read} >= {f"invocation {n}" for n in range(60)}
    assert [m for stream, m in read if stream == long] == [f"line {i}" for i in range(12000)]

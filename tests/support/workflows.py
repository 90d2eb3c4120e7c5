"""The provisioning workflow's paths through its states, as its execution history lists them."""

from __future__ import annotations

HAPPY_PATH = [
    "LoadSettings",
    "IsResume",
    "WhichBackend",
    "LaunchInstance",
    "WaitForHostReady",
    "MarkReady",
    "PublishReady",
    "NotifyReady",
    "Ready",
]
COMPENSATION = ["Compensate", "ReadyAfterAll", "PublishFailed", "NotifyFailed", "Failed"]

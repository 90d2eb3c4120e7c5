"""The local stack of the batch desktops' end-to-end tests (the release workflow's too): its
parameters, and a batch desktop's request.
"""

from __future__ import annotations

IDLE_TIMEOUT = 10  # the least IdleTimeoutSeconds the template allows (its MinValue)
GRACE = 4
CAPACITY_TIMEOUT = 4
PARAMS = (
    "HostReadyTimeoutSeconds=30 MaxActiveSessionsPerUser=2 "
    f"IdleTimeoutSeconds={IDLE_TIMEOUT} IdleGraceSeconds={GRACE} "
    "HeartbeatIntervalSeconds=1 SignalSampleSeconds=1 HeartbeatTimeoutSeconds=30 "
    f"SweepIntervalMinutes=60 BatchCapacityTimeoutSeconds={CAPACITY_TIMEOUT}"
)
BATCH = {"backend": "batch", "os": "linux"}

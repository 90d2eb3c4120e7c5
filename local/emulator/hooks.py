"""What the emulator tells the local stack's simulators, and asks them.

One ``SimulatorHooks`` is made by the stack and handed both to the emulator (``registry.apply_all``)
and to the host and job simulators, which register with it: EC2_STATE_CHANGES tells them an
instance changed, BATCH_JOBS that a job needs placing or stopping, and SSM_RUN_COMMAND asks them
which instances are managed nodes (simulated hosts with an SSM Agent).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ManagedNode:
    """A simulated host as Run Command sees it: its ``platformType``, whether its SSM Agent is
    reachable (the host is up), and the shell environment a command runs in."""

    platform: str  # "Linux" or "Windows"
    online: bool
    environ: Mapping[str, str]
    cwd: str


Listener = Callable[[], None]
NodeLookup = Callable[[str], ManagedNode | None]


@dataclass
class SimulatorHooks:
    """The listeners and lookups the simulators register (each added once, removed on stop)."""

    #: Called with no arguments after any instance was run, started, stopped or terminated.
    instance_listeners: list[Listener] = field(default_factory=list)
    #: Called with no arguments when a Batch job needs the job simulator: it became RUNNABLE,
    #: or TerminateJob asked a job that had started to end.
    job_listeners: list[Listener] = field(default_factory=list)
    #: Instance id -> its managed node, or None when the instance is not the lookup's.
    node_lookups: list[NodeLookup] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def on_instances(self, listener: Listener) -> None:
        with self._lock:
            self.instance_listeners.append(listener)

    def on_jobs(self, listener: Listener) -> None:
        with self._lock:
            self.job_listeners.append(listener)

    def on_managed_node(self, lookup: NodeLookup) -> None:
        with self._lock:
            self.node_lookups.append(lookup)

    def forget(self, hook: Listener | NodeLookup) -> None:
        """Unregister a listener or lookup wherever it was registered."""
        with self._lock:
            for hooks in (self.instance_listeners, self.job_listeners, self.node_lookups):
                while hook in hooks:
                    hooks.remove(hook)  # type: ignore[arg-type]

    def instances_changed(self) -> None:
        with self._lock:
            listeners = list(self.instance_listeners)
        for listener in listeners:
            listener()

    def jobs_changed(self) -> None:
        with self._lock:
            listeners = list(self.job_listeners)
        for listener in listeners:
            listener()

    def managed_node(self, instance_id: str) -> ManagedNode | None:
        with self._lock:
            lookups = list(self.node_lookups)
        for lookup in lookups:
            node = lookup(instance_id)
            if node is not None:
                return node
        return None

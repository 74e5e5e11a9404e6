"""What this machine lends the process: commands size threads and workers from it."""

from __future__ import annotations

import os


def available_cpus() -> int:
    """CPUs this process may run on (its affinity, e.g. a container's share), not the
    machine's count: sizing threads from the latter oversubscribes a limited process."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1

"""Lambda's CPU share for a memory size: a cgroup v1 CPU group with a quota of memory/1769 of a
core (1,769 MB is one vCPU), in 100 ms periods. A process is moved into it when its init ends."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path("/sys/fs/cgroup/cpu")
PERIOD_US = 100_000
ONE_VCPU_MB = 1769


class CpuShare:
    def __init__(self, memory_mb: int):
        self.memory_mb = memory_mb
        self.fraction = memory_mb / ONE_VCPU_MB
        self.path = ROOT / f"users-api-bench-{memory_mb}mb-{os.getpid()}"
        self.error: str | None = None
        try:
            self.path.mkdir(exist_ok=True)
            (self.path / "cpu.cfs_period_us").write_text(str(PERIOD_US))
            quota = int(PERIOD_US * min(self.fraction, os.cpu_count() or 1))
            (self.path / "cpu.cfs_quota_us").write_text(str(quota))
        except OSError as error:
            self.error = f"cannot set a CPU quota ({error}); measuring at full CPU"

    def add(self, pid: int) -> None:
        """Moves a process, all its threads, into the group (cgroup.procs moves thread groups)."""
        if self.error is None:
            (self.path / "cgroup.procs").write_text(str(pid))

    def remove(self) -> None:
        if self.error is None:
            try:
                self.path.rmdir()
            except OSError:
                pass

"""One process under the Lambda Runtime API, timing its phases as Lambda bills them: init (spawn
to its first /next, at full CPU), then each invocation (event handed over to answer received),
with the process moved into the memory size's CPU share when its init ends. The Runtime API is
the local stack's (local/aws/lambda_runtime.py), so the benchmark and `scripts/run` speak it the
same way."""

from __future__ import annotations

import json
import queue
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from local.aws.lambda_runtime import Handed, Outcome, RuntimeApi

from .cgroup import CpuShare


def cpu_ns(pid: int) -> int:
    """CPU time a process has used so far, all its threads (first field of schedstat)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (OSError, IndexError, ValueError):
            pass
    return total


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


@dataclass
class Invocation:
    payload: object
    error: object | None
    ms: float
    cpu_ms: float


class MeasuredFunction:
    """One execution environment on the local stack's Runtime API (local/aws/lambda_runtime.py),
    timed: start() runs init, invoke() one event at a time."""

    def __init__(self, command: list[str], env: dict[str, str], share: CpuShare | None, timeout: float = 60):
        self._command, self._env, self._share, self._timeout = command, env, share, timeout
        self._events: queue.Queue = queue.Queue()
        self._answers: queue.Queue = queue.Queue()
        self._first_next = threading.Event()
        self.init_ms = self.init_cpu_ms = 0.0
        self._handed_at = 0.0
        self._cpu_at_hand = 0
        self._request_id = ""
        self._answer_lock = threading.Lock()
        self._init_error: str | None = None
        self._stopping = False
        self._api = RuntimeApi(self, name="bench-runtime-api")
        self._api.start()
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        env = {**self._env, "AWS_LAMBDA_RUNTIME_API": self._api.address}
        self._spawned_at = time.perf_counter()
        self.process = subprocess.Popen(self._command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        gives_up = time.monotonic() + self._timeout
        while not self._first_next.wait(0.05):
            problem = (self._init_error or (f"exited with status {self.process.returncode} during init"
                                            if self.process.poll() is not None else None)
                       or (f"did not ask for an event within {self._timeout}s" if time.monotonic() > gives_up else None))
            if problem:
                self.stop()
                raise RuntimeError(f"{self._command[0]}: {problem}")

    def invoke(self, event: object) -> Invocation:
        self._events.put(event)
        gives_up = time.monotonic() + self._timeout
        while True:
            try:
                payload, error, done_at, cpu = self._answers.get(timeout=0.05)
                break
            except queue.Empty:
                # A crash or a hang is an error answer, counted as such, not a stalled benchmark.
                if self.process.poll() is not None or time.monotonic() > gives_up:
                    reason = (f"exit status {self.process.returncode}" if self.process.poll() is not None
                              else f"no answer within {self._timeout}s")
                    return Invocation(None, {"errorType": "Runtime.ExitError", "errorMessage": reason}, 0.0, 0.0)
        return Invocation(payload, error, (done_at - self._handed_at) * 1000, (cpu - self._cpu_at_hand) / 1e6)

    def stop(self) -> float:
        """Stops the process; its peak RSS in MB."""
        rss = peak_rss_mb(self.process.pid) if self.process and self.process.poll() is None else 0.0
        self._stopping = True
        if self.process:
            self.process.kill()
            self.process.wait()
        self._api.stop()
        return rss

    # --- what the Runtime API serves ---
    def next_handed(self) -> Handed | None:
        pid = self.process.pid
        if not self._first_next.is_set():
            # Init is over: what follows runs at the memory size's share of a CPU.
            self.init_ms = (time.perf_counter() - self._spawned_at) * 1000
            self.init_cpu_ms = cpu_ns(pid) / 1e6
            if self._share is not None:
                self._share.add(pid)
            self._first_next.set()
        while True:
            if self._stopping:
                return None
            try:
                event = self._events.get(timeout=0.2)
                break
            except queue.Empty:
                continue
        body = json.dumps(event).encode()
        with self._answer_lock:
            self._request_id = str(uuid.uuid4())
        self._cpu_at_hand = cpu_ns(pid)
        self._handed_at = time.perf_counter()
        return Handed(self._request_id, body, int((time.time() + self._timeout) * 1000),
                      "arn:aws:lambda:us-east-1:123456789012:function:bench",
                      "Root=1-00000000-000000000000000000000000;Sampled=0")

    def arrived(self) -> tuple[float, int]:
        """When the answer arrived, and the CPU used by then: read before its body is."""
        return time.perf_counter(), cpu_ns(self.process.pid)

    def answered(self, request_id: str, outcome: Outcome, arrival: tuple[float, int]) -> bool:
        with self._answer_lock:  # one answer per event: a second post for it is refused
            if not request_id or request_id != self._request_id:
                return False
            self._request_id = ""
        done_at, cpu = arrival
        self._answers.put((outcome.payload, outcome.error, done_at, cpu))
        return True

    def init_failed(self, body: bytes) -> None:
        self._init_error = f"init error: {body.decode(errors='replace')}"

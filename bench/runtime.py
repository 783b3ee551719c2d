"""A Lambda Runtime API for one process, timing its phases as Lambda bills them: init (spawn to
its first /next, at full CPU), then each invocation (event handed over to answer received),
with the process moved into the memory size's CPU share when its init ends."""

from __future__ import annotations

import json
import os
import queue
import socket
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

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
    """One execution environment: start() runs init, invoke() one event at a time."""

    def __init__(self, command: list[str], env: dict[str, str], share: CpuShare | None, timeout: float = 60):
        self._command, self._env, self._share, self._timeout = command, env, share, timeout
        self._events: queue.Queue = queue.Queue()
        self._answers: queue.Queue = queue.Queue()
        self._first_next = threading.Event()
        self.init_ms = self.init_cpu_ms = 0.0
        self._handed_at = 0.0
        self._cpu_at_hand = 0
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        env = {**self._env, "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{self._server.server_address[1]}"}
        self._spawned_at = time.perf_counter()
        self.process = subprocess.Popen(self._command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not self._first_next.wait(self._timeout):
            raise RuntimeError(f"{self._command[0]} did not ask for an event within {self._timeout}s")

    def invoke(self, event: object) -> Invocation:
        self._events.put(event)
        payload, error, done_at, cpu = self._answers.get(timeout=self._timeout)
        return Invocation(payload, error, (done_at - self._handed_at) * 1000, (cpu - self._cpu_at_hand) / 1e6)

    def stop(self) -> float:
        """Stops the process; its peak RSS in MB."""
        rss = peak_rss_mb(self.process.pid) if self.process and self.process.poll() is None else 0.0
        if self.process:
            self.process.kill()
            self.process.wait()
        self._server.shutdown()
        self._server.server_close()
        return rss

    def _handler(self):
        function = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_args) -> None:
                pass

            def setup(self) -> None:
                super().setup()
                # http.server writes an answer's headers and its body separately: with Nagle's
                # algorithm the body waits for the client's delayed ACK, 40 ms on every warm
                # /next, which Lambda's own Runtime API does not cost. Send at once.
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def handle(self) -> None:
                # A process killed while it waits on /next resets its connection: that is the end
                # of a measurement, not an error.
                try:
                    super().handle()
                except (ConnectionResetError, BrokenPipeError):
                    pass

            def _reply(self, status: int, body: bytes = b"", headers: dict | None = None) -> None:
                self.send_response(status)
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:  # /2018-06-01/runtime/invocation/next
                pid = function.process.pid
                if not function._first_next.is_set():
                    # Init is over: what follows runs at the memory size's share of a CPU.
                    function.init_ms = (time.perf_counter() - function._spawned_at) * 1000
                    function.init_cpu_ms = cpu_ns(pid) / 1e6
                    if function._share is not None:
                        function._share.add(pid)
                    function._first_next.set()
                event = function._events.get()
                body = json.dumps(event).encode()
                deadline = int((time.time() + function._timeout) * 1000)
                function._cpu_at_hand = cpu_ns(pid)
                function._handed_at = time.perf_counter()
                self._reply(200, body, {
                    "Lambda-Runtime-Aws-Request-Id": str(uuid.uuid4()),
                    "Lambda-Runtime-Deadline-Ms": str(deadline),
                    "Lambda-Runtime-Invoked-Function-Arn": "arn:aws:lambda:us-east-1:123456789012:function:bench",
                    "Lambda-Runtime-Trace-Id": "Root=1-00000000-000000000000000000000000;Sampled=0",
                    "Content-Type": "application/json",
                })

            def do_POST(self) -> None:  # .../{id}/response, .../{id}/error, /init/error
                done_at = time.perf_counter()
                cpu = cpu_ns(function.process.pid)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                self._reply(202)
                try:
                    parsed = json.loads(body) if body else None
                except ValueError:
                    parsed = body.decode(errors="replace")
                if self.path.endswith("/response"):
                    function._answers.put((parsed, None, done_at, cpu))
                else:
                    function._answers.put((None, parsed or "error", done_at, cpu))

        return Handler

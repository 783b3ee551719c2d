"""A function of template.yaml run locally as its real Lambda binary.

Each execution environment gets its own implementation of the Lambda Runtime API (the HTTP
interface every custom runtime, lambda_runtime included, polls for events) on a loopback port,
and one process of its binary, as on Lambda: one invocation at a time, the template's Timeout
enforced (the process is killed and restarted, as Lambda does), and a crashed process reported
as a function error and started again for the next invocation.

A function scales out as Lambda does: an invocation that finds every environment busy starts
another one, up to a limit (`concurrency`), so two requests at once run in two processes at
once, and races between them happen here as they do on AWS.
"""

from __future__ import annotations

import json
import socket
import queue
import re
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from .. import processes

API = "/2018-06-01/runtime"

# lambda_runtime wraps every log line of an invocation in a span that carries the request and
# trace ids in full; locally the first 8 characters of the request id say enough.
_INVOCATION_SPAN = re.compile(r'Lambda runtime invoke\{requestId="([0-9a-f]{8})[^}]*\}: ')


def tidy_log_line(line: str) -> str:
    return _INVOCATION_SPAN.sub(r"request=\1 ", line)
ACCOUNT = "123456789012"


@dataclass
class Outcome:
    """The end of one invocation: a result payload, or a function error."""

    payload: Any = None
    error: dict | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class _Invocation:
    def __init__(self, event: Any, timeout: float):
        self.id = str(uuid.uuid4())
        self.body = json.dumps(event).encode()
        self.deadline_ms = int((time.time() + timeout) * 1000)
        self.done = threading.Event()
        self.outcome = Outcome(error={"errorType": "Runtime.Unknown", "errorMessage": "no answer"})
        self._settle = threading.Lock()

    def finish(self, outcome: Outcome) -> None:
        """The first outcome wins: a late answer after a timeout or crash is ignored."""
        with self._settle:
            if not self.done.is_set():
                self.outcome = outcome
                self.done.set()


_STOPPED = Outcome(error={"errorType": "Runtime.Stopped", "errorMessage": "the local stack is stopping"})


@dataclass
class Handed:
    """An event handed to the function on its /next, with the headers Lambda sends."""

    request_id: str
    body: bytes
    deadline_ms: int
    function_arn: str
    trace_id: str


def outcome_of(kind: str, body: bytes) -> Outcome:
    """What a function posted to .../response or .../error, as an outcome."""
    if kind == "response":
        try:
            return Outcome(payload=json.loads(body) if body else None)
        except ValueError:  # not JSON, or not UTF-8
            return Outcome(payload=body.decode(errors="replace"))
    try:
        error = json.loads(body)
    except ValueError:
        error = None
    if not isinstance(error, dict):
        error = {"errorType": "Unknown", "errorMessage": body.decode(errors="replace")}
    return Outcome(error=error)


class RuntimeApi:
    """The Lambda Runtime API over HTTP on a loopback port, for one process at a time: the one
    implementation the local stack and the benchmark share. What it serves comes from its host:

    - `host.next_handed()`: blocks until an event is handed over (a `Handed`), or returns None
      when this process should stop polling (410);
    - `host.arrived()`: called first thing when an answer's request arrives; whatever it returns
      (the benchmark: the time and the process's CPU) is handed to `answered`;
    - `host.answered(request_id, outcome, arrival)`: the function's answer; False for an unknown
      (or already answered) request id (400);
    - `host.init_failed(body)`: the function reported an init error.
    """

    def __init__(self, host, name: str = "runtime-api"):
        self._host = host
        self._name = name
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True

    @property
    def address(self) -> str:
        host, port = self._server.server_address[:2]
        return f"{host}:{port}"

    def start(self) -> None:
        threading.Thread(target=self._server.serve_forever, name=self._name, daemon=True).start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler_class(self):
        host = self._host

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                # http.server writes an answer's headers and body separately: with Nagle's
                # algorithm the body would wait 40 ms for the function's delayed ACK on every
                # warm invocation. Lambda's Runtime API costs no such wait.
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def log_message(self, *_args) -> None:  # the function's own logs are enough
                pass

            def handle(self) -> None:
                # A process killed while it waits on /next resets its connection: not an error.
                try:
                    super().handle()
                except (ConnectionResetError, BrokenPipeError):
                    pass

            def _reply(self, status: int, body: bytes = b"", headers: dict | None = None) -> None:
                self.send_response(status)
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                try:
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the process went away (stopped, crashed or timed out)

            def do_GET(self) -> None:
                if self.path != f"{API}/invocation/next":
                    return self._reply(404)
                handed = host.next_handed()
                if handed is None:
                    return self._reply(410)
                self._reply(200, handed.body, {
                    "Content-Type": "application/json",
                    "Lambda-Runtime-Aws-Request-Id": handed.request_id,
                    "Lambda-Runtime-Deadline-Ms": str(handed.deadline_ms),
                    "Lambda-Runtime-Invoked-Function-Arn": handed.function_arn,
                    "Lambda-Runtime-Trace-Id": handed.trace_id,
                })

            def do_POST(self) -> None:
                arrival = host.arrived()
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = self.path.removeprefix(f"{API}/").split("/")
                if parts == ["init", "error"]:
                    host.init_failed(body)
                    return self._reply(202, b"{}")
                if len(parts) != 3 or parts[0] != "invocation" or parts[2] not in ("response", "error"):
                    return self._reply(404)
                if not host.answered(parts[1], outcome_of(parts[2], body), arrival):
                    return self._reply(400, b'{"errorMessage":"unknown request id"}')
                self._reply(202, b'{"status":"OK"}')

        return Handler


class LocalFunction:
    """One function: up to `concurrency` execution environments of its binary. Thread-safe
    `invoke`: an invocation takes an idle environment, or starts a new one while there are fewer
    than `concurrency`, or waits for one to be free (Lambda would throttle instead; locally a
    short wait is kinder than a 429)."""

    def __init__(
        self,
        name: str,
        binary: Path,
        environment: dict[str, str],
        timeout: float,
        memory_mb: int,
        log: processes.Log,
        tag: str | None = None,
        concurrency: int = 1,
    ):
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.name = name
        self.arn = f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:{name}"
        self.tag = tag or name
        self.concurrency = concurrency
        self._settings = (binary, environment, timeout, memory_mb, log)
        self._environments: list[_Environment] = []
        self._idle: list[_Environment] = []
        self._starting = 0  # environments being started, outside the lock
        self._numbers = 0  # environments ever started or being started, to number them
        self._stopped = False
        self._changed = threading.Condition()

    def start(self) -> None:
        """Starts the first environment, so a binary that cannot start shows at once."""
        with self._changed:
            number = self._reserve()
        environment = self._new_environment(number)
        with self._changed:
            self._idle.append(environment)

    def stop(self) -> None:
        """Stops every environment; an invocation in flight ends with an error, and none starts."""
        with self._changed:
            self._stopped = True
            environments = list(self._environments)
            self._changed.notify_all()
        for environment in environments:
            environment.stop()

    @property
    def environments(self) -> int:
        """How many execution environments this function has started."""
        with self._changed:
            return len(self._environments)

    def invoke(self, event: Any) -> Outcome:
        """Invokes the function synchronously, as Lambda's Invoke API with RequestResponse."""
        with self._changed:
            while not self._stopped and not self._idle and len(self._environments) + self._starting >= self.concurrency:
                self._changed.wait()
            if self._stopped:
                return _STOPPED
            environment = self._idle.pop() if self._idle else None
            number = self._reserve() if environment is None else 0
        if environment is None:
            try:
                environment = self._new_environment(number)  # outside the lock: a slow start blocks no one else
            except BaseException:
                with self._changed:
                    self._changed.notify()
                raise
        try:
            return environment.invoke(event)
        finally:
            with self._changed:
                self._idle.append(environment)
                self._changed.notify()

    def _reserve(self) -> int:
        """With the lock held: a slot for one more environment, so that no other invocation
        starts one too many meanwhile; returns its number."""
        self._starting += 1
        self._numbers += 1
        return self._numbers

    def _new_environment(self, number: int) -> "_Environment":
        """Starts environment `number` in the slot reserved for it. The first logs under the
        function's tag, later ones under `tag#2`, `tag#3`..., as Lambda gives each its own log
        stream."""
        try:
            binary, environment, timeout, memory_mb, log = self._settings
            tag = self.tag if number == 1 else f"{self.tag}#{number}"
            created = _Environment(self.name, self.arn, binary, environment, timeout, memory_mb, log, tag, number)
            created.start()
        finally:
            with self._changed:
                self._starting -= 1
        with self._changed:
            self._environments.append(created)
            stopped = self._stopped
        if stopped:  # stopped while it started: nobody else will stop it
            created.stop()
        if number > 1:
            log.line(tag, f"started execution environment {number} of at most {self.concurrency}")
        return created


class _Environment:
    """One execution environment: a Runtime API and one process of the binary."""

    def __init__(
        self,
        name: str,
        arn: str,
        binary: Path,
        environment: dict[str, str],
        timeout: float,
        memory_mb: int,
        log: processes.Log,
        tag: str,
        number: int,
    ):
        self.name = name
        self.arn = arn
        self.tag = tag
        self._number = number
        self._binary = binary
        self._environment = environment
        self._timeout = timeout
        self._memory_mb = memory_mb
        self._log = log
        self._next: "queue.Queue[_Invocation]" = queue.Queue()
        self._in_flight: dict[str, _Invocation] = {}
        self._one_at_a_time = threading.Lock()
        self._process: subprocess.Popen | None = None
        self._api = RuntimeApi(self, name=f"runtime-api-{name}")
        self._stopping = False
        # Bumped whenever a process starts, so that a dead process's pending /next poll does not
        # take an invocation meant for its successor.
        self._generation = 0

    # --- lifecycle ---
    def start(self) -> None:
        self._api.start()
        try:
            self._start_process()
        except BaseException:
            self._api.stop()
            raise

    def stop(self) -> None:
        self._stopping = True
        processes.stop(self._process)
        for invocation in list(self._in_flight.values()):
            invocation.finish(_STOPPED)
        self._api.stop()

    def _start_process(self) -> None:
        self._generation += 1
        env = {
            **self._environment,
            "AWS_LAMBDA_RUNTIME_API": self._api.address,
            "AWS_LAMBDA_FUNCTION_NAME": self.name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(self._memory_mb),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{self.name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": f"local-{self._number}",
        }
        generation = self._generation
        self._process = processes.spawn(
            self.tag, [str(self._binary)], env, self._log, lambda code: self._exited(code, generation), tidy=tidy_log_line
        )

    def _exited(self, code: int, generation: int) -> None:
        # A process replaced after a timeout or crash may report its exit late: the invocations
        # in flight by then belong to its successor.
        if self._stopping or generation != self._generation:
            return
        self._log.line(self.tag, f"process exited with status {code}")
        for invocation in list(self._in_flight.values()):
            invocation.finish(Outcome(error={
                "errorType": "Runtime.ExitError",
                "errorMessage": f"Runtime exited with error: exit status {code}",
            }))

    # --- invoking ---
    def invoke(self, event: Any) -> Outcome:
        """One invocation; the function hands an environment one invocation at a time."""
        with self._one_at_a_time:
            if self._stopping:
                return _STOPPED
            if self._process is None or self._process.poll() is not None:
                self._start_process()
            invocation = _Invocation(event, self._timeout)
            self._in_flight[invocation.id] = invocation
            self._next.put(invocation)
            if not invocation.done.wait(self._timeout):
                # Settled before the kill, so the exit it causes is not reported instead.
                invocation.finish(Outcome(error={
                    "errorType": "Sandbox.Timedout",
                    "errorMessage": f"Task timed out after {self._timeout:.2f} seconds",
                }))
                self._log.line(self.tag, f"Task timed out after {self._timeout:.0f} seconds; restarting")
                processes.stop(self._process, timeout=1)
            self._in_flight.pop(invocation.id, None)
            return invocation.outcome

    # --- what the Runtime API serves (see RuntimeApi) ---
    def next_handed(self) -> Handed | None:
        """The next invocation for the process polling now; None once that process has been
        replaced (a late poll of a dead process must not take its successor's invocation)."""
        generation = self._generation
        while True:
            if self._stopping or self._generation != generation:
                return None
            try:
                invocation = self._next.get(timeout=0.2)
            except queue.Empty:
                continue
            if self._generation != generation:
                self._next.put(invocation)  # for the process that replaced ours
                return None
            if not invocation.done.is_set():
                return Handed(invocation.id, invocation.body, invocation.deadline_ms, self.arn,
                              f"Root=1-{int(time.time()):08x}-{invocation.id.replace('-', '')[:24]}")

    def arrived(self) -> None:
        return None

    def answered(self, request_id: str, outcome: Outcome, _arrival: None) -> bool:
        invocation = self._in_flight.get(request_id)
        if invocation is None:
            return False
        invocation.finish(outcome)
        return True

    def init_failed(self, body: bytes) -> None:
        self._log.line(self.tag, f"init error: {body.decode(errors='replace')}")

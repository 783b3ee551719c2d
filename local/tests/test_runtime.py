"""The local Lambda Runtime API, driven by a tiny runtime written here (the Rust functions use
the same API through lambda_runtime; the end-to-end test covers them)."""

import io
import os
import stat
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from local.processes import Log
from local.aws.lambda_runtime import LocalFunction, tidy_log_line

RUNTIME = textwrap.dedent(
    f"""\
    #!{sys.executable}
    import json, os, sys, time, urllib.request
    api = "http://" + os.environ["AWS_LAMBDA_RUNTIME_API"] + "/2018-06-01/runtime/invocation/"
    print("started", os.environ["AWS_LAMBDA_FUNCTION_NAME"], flush=True)
    while True:
        with urllib.request.urlopen(api + "next") as response:
            request_id = response.headers["Lambda-Runtime-Aws-Request-Id"]
            event = json.loads(response.read())
        if event.get("crash"):
            sys.exit(3)
        time.sleep(event.get("sleep", 0))
        kind, body = ("error", {{"errorType": "Bad", "errorMessage": "asked to fail"}}) if event.get("fail") else ("response", {{"echo": event, "pid": os.getpid()}})
        urllib.request.urlopen(urllib.request.Request(api + request_id + "/" + kind, data=json.dumps(body).encode(), method="POST")).read()
    """
)


def start_function(tmp_path, concurrency: int = 1) -> LocalFunction:
    binary = tmp_path / "bootstrap"
    binary.write_text(RUNTIME)
    binary.chmod(binary.stat().st_mode | stat.S_IEXEC)
    output = io.StringIO()
    env = {"PATH": os.environ.get("PATH", "")}
    function = LocalFunction("EchoFunction", binary, env, timeout=2, memory_mb=128, log=Log(output), concurrency=concurrency)
    function.output = output
    function.start()
    return function


@pytest.fixture
def function(tmp_path):
    function = start_function(tmp_path)
    yield function
    function.stop()


def invoke_together(function: LocalFunction, events: list[dict]) -> list:
    with ThreadPoolExecutor(len(events)) as pool:
        return list(pool.map(function.invoke, events))


def test_invocations_get_the_event_and_return_the_response(function):
    assert function.invoke({"n": 1}).payload["echo"] == {"n": 1}
    assert function.invoke({"n": 2}).payload["echo"] == {"n": 2}
    assert "[EchoFunction] started EchoFunction" in function.output.getvalue()


def test_a_function_error_is_reported(function):
    outcome = function.invoke({"fail": True})
    assert not outcome.ok and outcome.error == {"errorType": "Bad", "errorMessage": "asked to fail"}


def test_a_crash_is_an_error_and_the_next_invocation_gets_a_new_process(function):
    outcome = function.invoke({"crash": True})
    assert outcome.error["errorType"] == "Runtime.ExitError"
    assert function.invoke({"n": 3}).payload["echo"] == {"n": 3}
    assert "process exited with status 3" in function.output.getvalue()


def test_a_timeout_kills_the_process_and_the_next_invocation_works(function):
    outcome = function.invoke({"sleep": 10})
    assert outcome.error["errorType"] == "Sandbox.Timedout"
    assert function.invoke({"n": 4}).payload["echo"] == {"n": 4}


def test_concurrent_invocations_run_in_as_many_processes_up_to_the_limit(tmp_path):
    function = start_function(tmp_path, concurrency=2)
    try:
        # Two at once, each busy for a while: the second cannot wait for the first's process.
        outcomes = invoke_together(function, [{"n": 1, "sleep": 0.5}, {"n": 2, "sleep": 0.5}])
        assert [o.payload["echo"]["n"] for o in outcomes] == [1, 2]
        assert len({o.payload["pid"] for o in outcomes}) == 2
        # Three at once with a limit of two: the third waits for a free environment; no third process.
        outcomes = invoke_together(function, [{"n": n, "sleep": 0.3} for n in range(3)])
        assert all(o.ok for o in outcomes), [o.error for o in outcomes]
        assert len({o.payload["pid"] for o in outcomes}) == 2
        assert function.environments == 2
        assert "[EchoFunction#2] started execution environment 2 of at most 2" in function.output.getvalue()
    finally:
        function.stop()


def test_one_environment_serialises_invocations(function):
    outcomes = invoke_together(function, [{"n": 1, "sleep": 0.2}, {"n": 2, "sleep": 0.2}])
    assert len({o.payload["pid"] for o in outcomes}) == 1
    assert function.environments == 1


def test_stopping_ends_invocations_in_flight_and_refuses_new_ones(tmp_path):
    function = start_function(tmp_path, concurrency=2)
    with ThreadPoolExecutor(1) as pool:
        in_flight = pool.submit(function.invoke, {"sleep": 5})
        time.sleep(0.5)
        started = time.monotonic()
        function.stop()
        outcome = in_flight.result(timeout=5)
    # Ended by the stop, not by the 2 s timeout nor reported as a crash.
    assert outcome.error["errorType"] == "Runtime.Stopped", outcome
    assert time.monotonic() - started < 1.5
    assert function.invoke({"n": 1}).error["errorType"] == "Runtime.Stopped"
    assert function.environments == 1


def test_log_lines_lose_the_long_invocation_span():
    line = (' INFO Lambda runtime invoke{requestId="5145523c-18e6-45c1-9d05-216f8faaa915" '
            'xrayTraceId="Root=1-6b0286c5-bba578ab71f647548d192ba8"}: user change event_name="INSERT"')
    assert tidy_log_line(line) == ' INFO request=5145523c user change event_name="INSERT"'
    assert tidy_log_line("plain line") == "plain line"


def test_the_runtime_api_answers_as_lambdas_does_for_odd_requests():
    """The Runtime API itself, with a host that hands one event: unknown paths 404, an unknown
    request id 400, an error body that is no JSON object (or no UTF-8) still an error."""
    import http.client

    from local.aws.lambda_runtime import Handed, RuntimeApi

    class OneEvent:
        def __init__(self):
            self.answers = []

        def next_handed(self):
            return Handed("req-1", b'{"n":1}', 1, "arn:aws:lambda:us-east-1:123456789012:function:f", "Root=1-0-0")

        def arrived(self):
            return "arrival"

        def answered(self, request_id, outcome, arrival):
            if request_id != "req-1":
                return False
            self.answers.append((outcome, arrival))
            return True

        def init_failed(self, body):
            self.answers.append(("init", body))

    host = OneEvent()
    api = RuntimeApi(host)
    api.start()
    try:
        def call(method, path, body=b""):
            connection = http.client.HTTPConnection(api.address, timeout=5)
            connection.request(method, path, body=body)
            response = connection.getresponse()
            return response.status, response.getheaders(), response.read()

        status, headers, body = call("GET", "/2018-06-01/runtime/invocation/next")
        assert (status, body) == (200, b'{"n":1}')
        assert dict(headers)["Lambda-Runtime-Aws-Request-Id"] == "req-1"
        assert call("GET", "/2018-06-01/runtime/other")[0] == 404
        assert call("POST", "/2018-06-01/runtime/invocation/unknown/response", b"{}")[0] == 400
        assert call("POST", "/2018-06-01/runtime/invocation/req-1/error", b"null")[0] == 202
        assert call("POST", "/2018-06-01/runtime/invocation/req-1/error", b"\xff\xfe")[0] == 202
        assert call("POST", "/2018-06-01/runtime/invocation/req-1/response", b'{"ok":true}')[0] == 202
        assert call("POST", "/2018-06-01/runtime/init/error", b'{"errorType":"x"}')[0] == 202
    finally:
        api.stop()
    [(null_error, arrival), (bad_bytes, _), (response, _), init] = host.answers
    assert arrival == "arrival"
    assert not null_error.ok and null_error.error["errorType"] == "Unknown"
    assert not bad_bytes.ok and bad_bytes.error["errorType"] == "Unknown"
    assert response.ok and response.payload == {"ok": True}
    assert init == ("init", b'{"errorType":"x"}')

"""The local Lambda Runtime API, driven by a tiny runtime written here (the Rust functions use
the same API through lambda_runtime; the end-to-end test covers them)."""

import io
import os
import stat
import sys
import textwrap

import pytest

from local.processes import Log
from local.runtime import LocalFunction, tidy_log_line

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
        kind, body = ("error", {{"errorType": "Bad", "errorMessage": "asked to fail"}}) if event.get("fail") else ("response", {{"echo": event}})
        urllib.request.urlopen(urllib.request.Request(api + request_id + "/" + kind, data=json.dumps(body).encode(), method="POST")).read()
    """
)


@pytest.fixture
def function(tmp_path):
    binary = tmp_path / "bootstrap"
    binary.write_text(RUNTIME)
    binary.chmod(binary.stat().st_mode | stat.S_IEXEC)
    output = io.StringIO()
    env = {"PATH": os.environ.get("PATH", "")}
    function = LocalFunction("EchoFunction", binary, env, timeout=2, memory_mb=128, log=Log(output))
    function.output = output
    function.start()
    yield function
    function.stop()


def test_invocations_get_the_event_and_return_the_response(function):
    assert function.invoke({"n": 1}).payload == {"echo": {"n": 1}}
    assert function.invoke({"n": 2}).payload == {"echo": {"n": 2}}
    assert "[EchoFunction] started EchoFunction" in function.output.getvalue()


def test_a_function_error_is_reported(function):
    outcome = function.invoke({"fail": True})
    assert not outcome.ok and outcome.error == {"errorType": "Bad", "errorMessage": "asked to fail"}


def test_a_crash_is_an_error_and_the_next_invocation_gets_a_new_process(function):
    outcome = function.invoke({"crash": True})
    assert outcome.error["errorType"] == "Runtime.ExitError"
    assert function.invoke({"n": 3}).payload == {"echo": {"n": 3}}
    assert "process exited with status 3" in function.output.getvalue()


def test_a_timeout_kills_the_process_and_the_next_invocation_works(function):
    outcome = function.invoke({"sleep": 10})
    assert outcome.error["errorType"] == "Sandbox.Timedout"
    assert function.invoke({"n": 4}).payload == {"echo": {"n": 4}}


def test_log_lines_lose_the_long_invocation_span():
    line = (' INFO Lambda runtime invoke{requestId="5145523c-18e6-45c1-9d05-216f8faaa915" '
            'xrayTraceId="Root=1-6b0286c5-bba578ab71f647548d192ba8"}: user change event_name="INSERT"')
    assert tidy_log_line(line) == ' INFO request=5145523c user change event_name="INSERT"'
    assert tidy_log_line("plain line") == "plain line"

"""`cargo lambda watch` with the rest of the system beside it, stream trigger included:

    .venv/bin/python -m local.watch [--invoke-port 9000] [--dynamodb-port 8000]

Starts moto with the template's tables, queues and buckets (as scripts/run does), then `cargo lambda
watch` with every function's table variables, and the template's event source mappings, which
poll the users table's stream and invoke the stream function through watch's invoke API. So a
`cargo lambda invoke create-user ...` reaches the stream function as it does on AWS, and every
function is rebuilt on each change. Ctrl-C or SIGTERM stops all of it.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from .aws.moto import MotoServer
from .processes import Log
from .aws.lambda_runtime import ACCOUNT, Outcome
from .stack import EventSourceMappings
from .template import ROOT, Template, functions
from .testenv import Signals, stop_session, variables

# cargo lambda compiles a function on its first invocation: give that time.
FIRST_INVOKE_TIMEOUT = 900.0


class WatchedFunction:
    """A function that cargo lambda watch runs, invoked through its Lambda Invoke API."""

    def __init__(self, binary: str, address: str, timeout: float):
        self.tag = binary
        self.arn = f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:{binary}"
        self._url = f"http://{address}/2015-03-31/functions/{binary}/invocations"
        self._timeout = timeout
        self._invoked = False

    def invoke(self, event: dict) -> Outcome:
        request = urllib.request.Request(self._url, data=json.dumps(event).encode(), method="POST")
        timeout = self._timeout if self._invoked else FIRST_INVOKE_TIMEOUT
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                body = response.read()
                function_error = response.headers.get("X-Amz-Function-Error")
        except urllib.error.HTTPError as error:
            return Outcome(error={"errorType": f"HTTP {error.code}", "errorMessage": error.read().decode(errors="replace")[:500]})
        except OSError as error:
            return Outcome(error={"errorType": "Unreachable", "errorMessage": str(error)})
        self._invoked = True
        payload = json.loads(body) if body else None
        if function_error:
            return Outcome(error=payload if isinstance(payload, dict) else {"errorType": function_error})
        return Outcome(payload=payload)


def wait_for_port(port: int, watch: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if watch.poll() is not None:
            raise RuntimeError(f"cargo lambda watch exited with {watch.returncode}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise RuntimeError(f"cargo lambda watch did not listen on {port} within {timeout:.0f}s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.watch", description=__doc__.split("\n\n")[0])
    parser.add_argument("--invoke-port", type=int, default=9000, help="cargo lambda watch's port (default 9000)")
    parser.add_argument("--dynamodb-port", type=int, default=8000, help="moto's port (default 8000)")
    args = parser.parse_args(argv)

    log = Log()
    signals = Signals()
    template = Template.load()
    moto = MotoServer(port=args.dynamodb_port, log=ROOT / ".local" / "moto.log")
    mappings = EventSourceMappings(moto, log)
    watch: subprocess.Popen | None = None
    try:
        moto.start()
        log.line("watch", moto.create_resources(template))
        env = {
            **os.environ,
            **variables(moto, template),
            "RUST_LOG": os.environ.get("RUST_LOG", "info"),
            # cargo-lambda is installed in the project's virtual environment, beside this Python.
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        }
        command = ["cargo", "lambda", "watch", "--invoke-address", "127.0.0.1", "--invoke-port", str(args.invoke_port)]
        watch = subprocess.Popen(command, cwd=ROOT, env=env, start_new_session=True)
        wait_for_port(args.invoke_port, watch)
        address = f"127.0.0.1:{args.invoke_port}"
        for spec in functions(template):
            mappings.start_all(WatchedFunction(spec.binary, address, spec.timeout), spec)
        log.line("watch", f"ready: invoke with --invoke-address 127.0.0.1 --invoke-port {args.invoke_port}; "
                          f"look at the data with .venv/bin/python -m local.show --endpoint {moto.endpoint} users")
        signum = signals.wait(lambda: watch.poll() is not None)
        if signum is not None:
            log.line("watch", "stopping")
        return 0 if signum is not None else watch.returncode or 0
    except (RuntimeError, OSError) as error:
        log.line("watch", f"cannot start: {error}")
        return 1
    finally:
        mappings.stop()
        if watch is not None:
            stop_session(watch.pid)
            watch.wait()
        moto.stop()


if __name__ == "__main__":
    sys.exit(main())

"""A fresh local DynamoDB with the template's tables, for tests and development:

    python -m local.testenv -- cargo test --workspace    # run a command against it
    python -m local.testenv --serve                      # print its variables, serve until stdin closes

Starts moto on a free port and creates the tables of template.yaml. With a command, runs it with
every function's table variables (USERS_TABLE, ...) and the SDK endpoint variables set, then stops
moto whatever happened, and exits with the command's status. With --serve, prints those variables
as one JSON line ({"variables": {...}}) and keeps moto until its standard input closes: the Rust
integration tests use this under a bare `cargo test`, so moto lives exactly as long as they do.

Ctrl-C or SIGTERM stops everything it started, the command's own children included (cargo
lambda watch and the functions it runs), with one line and no traceback.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from .aws.moto import MotoServer
from .template import Template

USAGE = "usage: python -m local.testenv -- COMMAND [ARGS...]  |  python -m local.testenv --serve"


def variables(moto: MotoServer, template: Template) -> dict[str, str]:
    """The SDK's endpoint variables and every function's table variables."""
    env = dict(moto.sdk_environment())
    for function in template.of_type("AWS::Serverless::Function"):
        env.update(template.function_environment(function))
    # For replay-failures and its tests: the bucket the stream mapping keeps failures in.
    env["STREAM_FAILURE_BUCKET"] = "StreamFailureBucket"
    return env


def session_members(session_id: int) -> list[int]:
    """The live processes of a session: a command and everything it started, whatever their
    process groups."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[3]) == session_id and fields[0] != "Z":
                members.append(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            continue
    return members


def stop_session(session_id: int, grace: float = 10.0) -> None:
    """SIGTERM to every process of the session, then SIGKILL to what is left after `grace`."""
    for signum in (signal.SIGTERM, signal.SIGKILL):
        for pid in session_members(session_id):
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace
        while session_members(session_id) and time.monotonic() < deadline:
            time.sleep(0.1)
        if not session_members(session_id):
            return


class Signals:
    """Remembers SIGINT and SIGTERM instead of letting them raise (no KeyboardInterrupt)."""

    def __init__(self) -> None:
        # A plain list: appending is safe in a signal handler, unlike taking a lock.
        self.received: list[int] = []
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda signum, _frame: self.received.append(signum))

    def wait(self, done) -> int | None:
        """Waits until `done()` or a signal; the signal, if one came."""
        while not done() and not self.received:
            time.sleep(0.1)
        return self.received[0] if self.received else None


def run_command(command: list[str], env: dict[str, str], signals: Signals) -> int:
    # A session of its own: the command's children (cargo lambda watch's functions) stay in it,
    # so stopping the session stops all of them.
    child = subprocess.Popen(command, env=env, start_new_session=True)
    signum = signals.wait(lambda: child.poll() is not None)
    if signum is not None:
        print(f"testenv: {signal.Signals(signum).name}, stopping {command[0]} and the local DynamoDB", file=sys.stderr, flush=True)
    stop_session(child.pid)  # after the command exits too: what it started must not outlive it
    child.wait()
    return 128 + signum if signum is not None else child.returncode


def serve(env: dict[str, str], signals: Signals) -> int:
    print(json.dumps({"variables": env}), flush=True)
    closed = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), closed.set()), daemon=True).start()
    signals.wait(closed.is_set)
    return 0


def main(argv: list[str]) -> int:
    serving = argv == ["--serve"]
    if not serving and ("--" not in argv or argv.index("--") == len(argv) - 1):
        print(USAGE, file=sys.stderr)
        return 2
    signals = Signals()
    template = Template.load()
    with MotoServer() as moto:
        summary = moto.create_resources(template)
        env = variables(moto, template)
        if serving:
            return serve(env, signals)
        print(f"local {summary} (read them with: .venv/bin/python -m local.show --endpoint {moto.endpoint} users)", flush=True)
        return run_command(argv[argv.index("--") + 1 :], {**os.environ, **env}, signals)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""local.testenv stops everything it started: on SIGTERM or Ctrl-C (SIGINT) the command and its
own children and the local DynamoDB are gone, with one line and no traceback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from local.template import ROOT


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def wait_for(predicate, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_the_command_its_children_and_moto(tmp_path, signum):
    pids = tmp_path / "pids"
    # A command that starts a child of its own in another process group, as cargo lambda watch
    # starts the functions, and records both pids.
    own_group = f"{sys.executable} -c 'import os; os.setpgid(0, 0); os.execvp(\"sleep\", [\"sleep\", \"300\"])'"
    script = f"sleep 300 & echo $! >> {pids}; {own_group} & echo $! >> {pids}; echo $$ >> {pids}; wait"
    testenv = subprocess.Popen(
        [sys.executable, "-m", "local.testenv", "--", "sh", "-c", script],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )
    wait_for(lambda: pids.exists() and len(pids.read_text().split()) == 3)
    started = [int(pid) for pid in pids.read_text().split()]
    moto = [p for p in map(int, filter(str.isdigit, os.listdir("/proc")))
            if alive(p) and b"local.aws.moto_app" in open(f"/proc/{p}/cmdline", "rb").read() and os.getsid(p) == testenv.pid]
    assert len(moto) == 1

    testenv.send_signal(signum)
    out, err = testenv.communicate(timeout=30)

    assert testenv.returncode == 128 + signum
    assert "Traceback" not in out + err, err
    assert err.strip().splitlines() == [f"testenv: {signal.Signals(signum).name}, stopping sh and the local DynamoDB"]
    wait_for(lambda: not any(alive(pid) for pid in started + moto), timeout=10)


def test_the_commands_status_is_returned_and_nothing_outlives_it(tmp_path):
    pids = tmp_path / "pids"
    result = subprocess.run(
        [sys.executable, "-m", "local.testenv", "--", "sh", "-c", f"sleep 300 & echo $! > {pids}; exit 3"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 3
    assert "local DynamoDB, Streams, SQS, S3 and SES at http://127.0.0.1:" in result.stdout
    wait_for(lambda: not alive(int(pids.read_text())), timeout=15)

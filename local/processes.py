"""Child processes of the local tools: started so that they die with their parent (even on
SIGKILL), their output tagged line by line, and stopped politely, then firmly."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Sequence

_PR_SET_PDEATHSIG = 1
_COLOURS = ["36", "35", "33", "32", "34", "31"]
_print_lock = threading.Lock()
# PR_SET_PDEATHSIG signals the child when the *thread* that forked it exits, not the process. A
# child forked by a short-lived thread (an HTTP request's, a pool's) would be killed when that
# thread ends, so every child is forked by this one thread, which lives as long as we do.
_FORKER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="forker")


# Loaded once here: between fork and exec the child should run as little as possible, and
# loading a library there (dlopen) can deadlock on a lock another thread of the parent held.
try:
    _LIBC = ctypes.CDLL("libc.so.6", use_errno=True)
except OSError:
    _LIBC = None


def die_with_parent() -> None:
    """In the child, before exec: ask Linux to SIGTERM us when the parent dies."""
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def managed_child() -> None:
    """In the child, before exec: a process group of its own, so that Ctrl-C in a terminal
    reaches only the tool that started it, which then stops its children in order (the stream
    pollers before DynamoDB, say); and SIGTERM when that tool dies."""
    os.setpgrp()
    die_with_parent()


class Log:
    """Writes lines tagged with their source, e.g. `[user-stream] ...`, in colour on a tty."""

    def __init__(self, stream=None):
        self._stream = stream or sys.stdout
        self._colour = self._stream.isatty() and "NO_COLOR" not in os.environ
        self._tags: dict[str, str] = {}

    def line(self, tag: str, text: str) -> None:
        if tag not in self._tags:
            self._tags[tag] = _COLOURS[len(self._tags) % len(_COLOURS)]
        label = f"[{tag}]"
        if self._colour:
            label = f"\x1b[{self._tags[tag]}m{label}\x1b[0m"
        with _print_lock:
            self._stream.write(f"{label} {text}\n")
            self._stream.flush()


def spawn(
    tag: str,
    command: Sequence[str],
    env: dict[str, str],
    log: Log,
    on_exit: Callable[[int], None] | None = None,
    tidy: Callable[[str], str] = lambda line: line,
) -> subprocess.Popen:
    """Starts a child whose stdout and stderr go to `log` under `tag`, each line through `tidy`."""
    process = _FORKER.submit(
        subprocess.Popen,
        list(command),
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        preexec_fn=managed_child,
    ).result()

    def pump() -> None:
        assert process.stdout is not None
        for raw in process.stdout:
            log.line(tag, tidy(raw.decode("utf-8", "replace").rstrip()))
        code = process.wait()
        if on_exit:
            on_exit(code)

    threading.Thread(target=pump, name=f"log-{tag}", daemon=True).start()
    return process


def stop(process: subprocess.Popen | None, timeout: float = 5.0) -> None:
    """SIGTERM, then SIGKILL if it is still there after `timeout` seconds."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()

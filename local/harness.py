"""A local stack started as its own process (python -m local.stack), for the end-to-end test and
the latency benchmark: wait for its output, call its API, read its tables, stop it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import boto3

from .template import ROOT


class StackFailed(AssertionError):
    pass


class RunningStack:
    def __init__(self, log_path: Path, port: int, dynamodb_port: int, log_format: str = "text",
                 issuer_port: int | None = None, extra_args: tuple[str, ...] = ()):
        """With `issuer_port`, the stack requires tokens (`--auth`) from a local issuer there;
        `extra_args` go to python -m local.stack as they are."""
        self.port, self.dynamodb_port, self.log_path = port, dynamodb_port, log_path
        self.issuer_port = issuer_port
        auth = ["--auth", "--issuer-port", str(issuer_port)] if issuer_port else []
        self.url = f"http://127.0.0.1:{port}"
        self._log = log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "local.stack", "--port", str(port), "--dynamodb-port", str(dynamodb_port),
             "--log-format", log_format, *auth, *extra_args],
            cwd=ROOT,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "NO_COLOR": "1"},
            start_new_session=True,  # its own session, so we can find every process it started
        )
        self.wait_for_output("[stack] ready", timeout=90)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_output(self, text: str, timeout: float = 20, after: int = 0) -> int:
        """Waits until `text` appears in the output (past offset `after`); returns its offset."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            output = self.output()
            found = output.find(text, after)
            if found >= 0:
                return found
            if self.process.poll() is not None:
                raise StackFailed(f"the stack exited with {self.process.returncode}:\n{output}")
            time.sleep(0.02)
        raise StackFailed(f"{text!r} did not appear within {timeout}s:\n{self.output()}")

    def post(self, path: str, body) -> tuple[int, dict]:
        return self.call("POST", path, body)

    def call(self, method: str, path: str, body=None, token: str | None = None) -> tuple[int, dict]:
        """An API request (a JSON body unless `body` is None or bytes), with a bearer token if
        given; its status and JSON answer."""
        data = None if body is None else body if isinstance(body, bytes) else json.dumps(body).encode()
        headers = {} if data is None else {"Content-Type": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        request = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            assert error.headers["Content-Type"] == "application/json"
            return error.code, json.loads(error.read())

    def aws(self, service: str):
        return boto3.client(
            service, endpoint_url=f"http://127.0.0.1:{self.dynamodb_port}", region_name="us-east-1",
            aws_access_key_id="local", aws_secret_access_key="local",
        )

    def history(self, user_id: str) -> list[dict]:
        items = self.aws("dynamodb").query(
            # Entries only: a deleted user's erasure marker (sort key "~erased") sorts after them.
            TableName="HistoryTable", KeyConditionExpression="userId = :u AND sequenceNumber < :marker",
            ExpressionAttributeValues={":u": {"S": user_id}, ":marker": {"S": "~"}}, ConsistentRead=True,
        )["Items"]
        return items

    def sent_emails(self, to: str | None = None) -> list[dict]:
        """What moto's SES has sent (to one address, if given)."""
        from .show import sent_emails
        emails = sent_emails(f"http://127.0.0.1:{self.dynamodb_port}")
        return [email for email in emails if to is None or to in email["to"]]

    def stop(self, signum: int = signal.SIGINT) -> int:
        self.process.send_signal(signum)
        code = self.process.wait(timeout=30)
        self._log.close()
        return code



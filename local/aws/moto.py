"""moto's server as the local DynamoDB endpoint: started on a loopback port (a free one unless
told), with the template's tables, and stopped when done (or when its parent dies)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import boto3

from .. import processes
from ..template import ROOT, Template

REGION = "us-east-1"
# moto accepts any credentials; these keep the SDKs from looking for real ones.
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "local",
    "AWS_SECRET_ACCESS_KEY": "local",
    "AWS_REGION": REGION,
    "AWS_DEFAULT_REGION": REGION,
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class MotoServer:
    """A moto server process; use as a context manager."""

    def __init__(self, port: int | None = None, log: Path | None = None):
        self.port = port or free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._log = log
        self._process: subprocess.Popen | None = None

    def __enter__(self) -> "MotoServer":
        self.start()
        return self

    def __exit__(self, *_exc) -> None:
        self.stop()

    def start(self, timeout: float = 30.0) -> None:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", self.port)) == 0:
                raise RuntimeError(f"port {self.port} is already in use (choose another DynamoDB port)")
        if self._log:
            Path(self._log).parent.mkdir(parents=True, exist_ok=True)  # .local/ on a fresh clone
        # The child gets its own copy of the log's descriptor; ours is closed once it has started.
        with open(self._log or os.devnull, "ab") as output:
            self._process = subprocess.Popen(
                # moto's server, handling one request at a time (see local/aws/moto_app.py).
                [sys.executable, "-m", "local.aws.moto_app", "-H", "127.0.0.1", "-p", str(self.port)],
                stdout=output,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
                preexec_fn=processes.managed_child,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"moto's server exited with {self._process.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"moto's server did not listen on {self.port} within {timeout}s")

    def stop(self) -> None:
        processes.stop(self._process)
        self._process = None

    def client(self, service: str):
        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id="local",
            aws_secret_access_key="local",
        )

    def sdk_environment(self) -> dict[str, str]:
        """What the AWS SDKs (Rust and Python) need to talk to this server."""
        return {
            **CREDENTIALS,
            "AWS_ENDPOINT_URL_DYNAMODB": self.endpoint,
            "AWS_ENDPOINT_URL_DYNAMODB_STREAMS": self.endpoint,
            "AWS_ENDPOINT_URL_SQS": self.endpoint,
            "AWS_ENDPOINT_URL_S3": self.endpoint,
            "AWS_ENDPOINT_URL_SESV2": self.endpoint,
        }

    def create_queues(self, template: Template, visibility_timeout: int | None = None) -> dict[str, str]:
        """Creates every queue the template declares (named by its logical id), dead-letter
        queues first, with its encryption, retention, visibility timeout (unless overridden, for
        tests that cannot wait a minute) and redrive policy; their URLs by logical id."""
        sqs = self.client("sqs")
        queues = template.of_type("AWS::SQS::Queue")

        def dead_letter_target(props: dict) -> str | None:
            target = props.get("RedrivePolicy", {}).get("deadLetterTargetArn")
            return str(target["Fn::GetAtt"][0]) if isinstance(target, dict) else None

        ordered = sorted(queues, key=lambda name: dead_letter_target(queues[name].get("Properties", {})) is not None)
        urls: dict[str, str] = {}
        for name in ordered:
            props = queues[name].get("Properties", {})
            attributes = {
                key: str(props[key]).lower() if isinstance(props[key], bool) else str(props[key])
                for key in ("VisibilityTimeout", "MessageRetentionPeriod", "SqsManagedSseEnabled", "DelaySeconds",
                            "ReceiveMessageWaitTimeSeconds")
                if key in props
            }
            if visibility_timeout is not None:
                attributes["VisibilityTimeout"] = str(visibility_timeout)
            target = dead_letter_target(props)
            if target:
                target_arn = sqs.get_queue_attributes(QueueUrl=urls[target], AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
                attributes["RedrivePolicy"] = json.dumps({
                    "deadLetterTargetArn": target_arn,
                    "maxReceiveCount": int(props["RedrivePolicy"]["maxReceiveCount"]),
                })
            urls[name] = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        return urls

    def create_resources(self, template: Template, visibility_timeout: int | None = None) -> str:
        """Everything the template declares that moto holds: tables, queues (whose URLs become
        what !Ref of them resolves to), buckets, and the welcome sender verified in SES. A
        summary line."""
        tables = self.create_tables(template)
        queues = self.create_queues(template, visibility_timeout)
        template.refs.update(queues)
        buckets = self.create_buckets(template)
        sender = template.parameters.get("WelcomeSender", "")
        if sender:
            self.verify_sender(sender)
        return (f"DynamoDB, Streams, SQS, S3 and SES at {self.endpoint}: tables {', '.join(tables)}; "
                f"queues {', '.join(queues) or 'none'}; buckets {', '.join(buckets) or 'none'}; "
                f"SES sender {sender or 'none (no welcome emails)'}")

    def verify_sender(self, address: str) -> None:
        """Verifies an address in moto's SES (on AWS, the address or its domain is verified in
        SES before the stack is deployed)."""
        self.client("sesv2").create_email_identity(EmailIdentity=address)

    def create_buckets(self, template: Template) -> list[str]:
        """Creates every bucket the template declares, named by its logical id like the tables."""
        s3 = self.client("s3")
        names = list(template.of_type("AWS::S3::Bucket"))
        for name in names:
            s3.create_bucket(Bucket=name)
        return names

    def create_tables(self, template: Template) -> list[str]:
        """Creates every table the template declares, exactly as declared."""
        dynamodb = self.client("dynamodb")
        names = []
        for request in template.table_requests():
            dynamodb.create_table(**request)
            dynamodb.get_waiter("table_exists").wait(TableName=request["TableName"])
            names.append(request["TableName"])
        return names

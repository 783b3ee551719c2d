"""A local event source mapping for SQS queues, with Lambda's semantics.

`QueuePoller` polls a queue (ReceiveMessage, up to ten messages a call), gathers a batch
(BatchSize, MaximumBatchingWindowInSeconds) and invokes the function with an SQS event in the
shape Lambda delivers it. Then, as Lambda does:

- the function failed (an error, a crash, a timeout): nothing is deleted; every message becomes
  visible again when the queue's visibility timeout runs out;
- with ReportBatchItemFailures, the messages named in `batchItemFailures` stay and the rest are
  deleted; a response naming an empty, missing or unknown identifier fails the whole batch;
- otherwise the whole batch is deleted.

The queue itself (moto's SQS) counts receives and moves a message past its RedrivePolicy's
maxReceiveCount to the dead-letter queue, as SQS does. Receives are short polls: moto's server
handles one request at a time (local/aws/moto_app.py), and a long poll would hold every other
request up.
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

from ..processes import Log
from .lambda_runtime import Outcome

POLL_INTERVAL = 0.2  # between empty receives: short polls, a few a second
RECEIVE_LIMIT = 10  # SQS returns at most ten messages per ReceiveMessage


@dataclass
class QueueSettings:
    """The SQS event's properties in template.yaml, with Lambda's defaults."""

    queue: str  # logical id of the queue
    batch_size: int = 10
    batching_window: float = 0.0
    report_batch_item_failures: bool = False
    enabled: bool = True

    @classmethod
    def from_properties(cls, props: dict[str, Any]) -> "QueueSettings":
        queue = props["Queue"]
        if isinstance(queue, dict) and "Fn::GetAtt" in queue:
            queue = queue["Fn::GetAtt"][0]
        return cls(
            queue=str(queue),
            batch_size=int(props.get("BatchSize", 10)),
            batching_window=float(props.get("MaximumBatchingWindowInSeconds", 0)),
            report_batch_item_failures="ReportBatchItemFailures" in props.get("FunctionResponseTypes", []),
            enabled=str(props.get("Enabled", True)).lower() != "false",
        )


def lambda_message(message: dict, queue_arn: str, region: str) -> dict:
    """One received message as a record of Lambda's SQS event."""
    attributes = message.get("Attributes", {})
    body = message.get("Body", "")
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": body,
        "attributes": {
            name: attributes[name]
            for name in ("ApproximateReceiveCount", "SentTimestamp", "SenderId", "ApproximateFirstReceiveTimestamp")
            if name in attributes
        },
        "messageAttributes": {
            name: {
                "stringValue": value.get("StringValue"),
                "binaryValue": value.get("BinaryValue"),
                "stringListValues": [],
                "binaryListValues": [],
                "dataType": value["DataType"],
            }
            for name, value in message.get("MessageAttributes", {}).items()
        },
        "md5OfBody": message.get("MD5OfBody") or hashlib.md5(body.encode()).hexdigest(),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }


def messages_to_delete(batch: list[dict], outcome: Outcome, report_batch_item_failures: bool) -> list[dict]:
    """The messages of a handled batch that Lambda deletes, given the function's outcome."""
    if not outcome.ok:
        return []
    if not report_batch_item_failures:
        return batch
    payload = outcome.payload
    if payload is None:
        return batch  # no response at all: every message succeeded
    if not isinstance(payload, dict):
        return []  # not a batch response: an invalid response fails the whole batch
    failures = payload.get("batchItemFailures") or []
    if not isinstance(failures, list):
        return []
    ids = {message["messageId"] for message in batch}
    failed = set()
    for failure in failures:
        identifier = failure.get("itemIdentifier") if isinstance(failure, dict) else None
        if not identifier or identifier not in ids:
            return []  # an invalid response fails the whole batch
        failed.add(identifier)
    return [message for message in batch if message["messageId"] not in failed]


class QueuePoller:
    """Polls one queue and invokes one function (anything with `invoke(event) -> Outcome`)."""

    def __init__(self, tag: str, sqs, queue_url: str, queue_arn: str, region: str, settings: QueueSettings,
                 invoke: Callable[[dict], Outcome], log: Log):
        self.tag = tag
        self._sqs = sqs
        self._url = queue_url
        self._arn = queue_arn
        self._region = region
        self._settings = settings
        self._invoke = invoke
        self._log = log
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=tag, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                batch = self._gather()
                if batch:
                    self.handle(batch)
                else:
                    self._stopping.wait(POLL_INTERVAL)
            except Exception as error:  # moto restarting, a network blip: keep polling
                if self._stopping.is_set():
                    return
                self._log.line(self.tag, f"poll failed: {error!r}")
                self._stopping.wait(1.0)

    def _receive(self, up_to: int) -> list[dict]:
        answer = self._sqs.receive_message(
            QueueUrl=self._url,
            MaxNumberOfMessages=max(1, min(RECEIVE_LIMIT, up_to)),
            WaitTimeSeconds=0,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        return [lambda_message(message, self._arn, self._region) for message in answer.get("Messages", [])]

    def _gather(self) -> list[dict]:
        """A batch: what one receive returns, topped up until BatchSize or the batching window
        (counted from the first message) runs out."""
        batch = self._receive(self._settings.batch_size)
        if not batch:
            return []
        closes = time.monotonic() + self._settings.batching_window
        while len(batch) < self._settings.batch_size and time.monotonic() < closes and not self._stopping.is_set():
            more = self._receive(self._settings.batch_size - len(batch))
            if more:
                batch.extend(more)
            else:
                self._stopping.wait(min(POLL_INTERVAL, max(0.0, closes - time.monotonic())))
        return batch

    def handle(self, batch: list[dict]) -> None:
        self._log.line(self.tag, f"invoking with {len(batch)} message(s)")
        outcome = self._invoke({"Records": batch})
        done = messages_to_delete(batch, outcome, self._settings.report_batch_item_failures)
        if not outcome.ok:
            self._log.line(self.tag, f"function error: {outcome.error}; {len(batch)} message(s) back after the visibility timeout")
        elif len(done) < len(batch):
            self._log.line(self.tag, f"{len(batch) - len(done)} message(s) back after the visibility timeout")
        for start in range(0, len(done), RECEIVE_LIMIT):
            chunk = done[start:start + RECEIVE_LIMIT]
            answer = self._sqs.delete_message_batch(
                QueueUrl=self._url,
                Entries=[{"Id": str(n), "ReceiptHandle": m["receiptHandle"]} for n, m in enumerate(chunk)],
            )
            for failed in answer.get("Failed", []):
                self._log.line(self.tag, f"could not delete a handled message: {failed}")

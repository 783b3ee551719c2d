"""A local event source mapping for DynamoDB streams, with Lambda's semantics.

`StreamPoller` reads a table's stream through the DynamoDB Streams API, four times a second as
Lambda does, keeps the records that pass FilterCriteria, and gathers batches (BatchSize,
MaximumBatchingWindowInSeconds). `BatchProcessor` delivers one batch the way Lambda does:

- Records of a shard are handled in order; a failing batch blocks its shard until it succeeds or
  is discarded.
- With ReportBatchItemFailures, a response naming failed records checkpoints before the lowest
  failed sequence number: the records before it are done, the rest are retried. A response
  that names an unknown, empty or missing identifier fails the whole batch. Without it, any
  function error fails the whole batch.
- A failed batch is retried up to MaximumRetryAttempts times (-1: until the records expire).
  With BisectBatchOnFunctionError, a batch whose invocation failed is split in two and the
  halves are retried separately, each counting as a retry of its records.
- Records older than MaximumRecordAgeInSeconds are not sent; like records whose retries are
  exhausted, they are discarded, and their description goes to the OnFailure destination in
  the shape Lambda sends (DDBStreamBatchInfo; for an S3 destination with the invocation's
  payload, records included), then processing goes on after them.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable

from . import event_filters as filters
from ..processes import Log
from .lambda_runtime import Outcome

POLL_INTERVAL = 0.25  # Lambda polls DynamoDB stream shards four times per second.
RETRY_BACKOFF = 0.2


@dataclass
class StreamSettings:
    """The DynamoDB event's properties in template.yaml, with Lambda's defaults."""

    starting_position: str = "TRIM_HORIZON"
    batch_size: int = 100
    batching_window: float = 0.0
    max_retry_attempts: int = -1
    bisect_on_error: bool = False
    max_record_age: int = -1
    report_batch_item_failures: bool = False
    filter_patterns: list[dict] = field(default_factory=list)
    on_failure: str | None = None  # logical id of the destination (a bucket, queue or topic)
    on_failure_type: str = "SQS"  # SAM's DestinationConfig.OnFailure.Type: S3, SQS or SNS
    enabled: bool = True

    @classmethod
    def from_properties(cls, props: dict[str, Any]) -> "StreamSettings":
        destination = props.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination")
        if isinstance(destination, dict) and "Fn::GetAtt" in destination:
            destination = destination["Fn::GetAtt"][0]
        elif isinstance(destination, dict) and "Ref" in destination:
            destination = destination["Ref"]
        return cls(
            starting_position=str(props.get("StartingPosition", "TRIM_HORIZON")),
            batch_size=int(props.get("BatchSize", 100)),
            batching_window=float(props.get("MaximumBatchingWindowInSeconds", 0)),
            max_retry_attempts=int(props.get("MaximumRetryAttempts", -1)),
            bisect_on_error=bool(props.get("BisectBatchOnFunctionError", False)),
            max_record_age=int(props.get("MaximumRecordAgeInSeconds", -1)),
            report_batch_item_failures="ReportBatchItemFailures" in props.get("FunctionResponseTypes", []),
            filter_patterns=filters.parse_filter_criteria(props.get("FilterCriteria")),
            on_failure=destination,
            on_failure_type=str(props.get("DestinationConfig", {}).get("OnFailure", {}).get("Type", "SQS")),
            enabled=bool(props.get("Enabled", True)),
        )


@dataclass
class Discarded:
    """Records Lambda gave up on, and why: what an OnFailure destination is told."""

    records: list[dict]
    condition: str  # RetryAttemptsExhausted | RecordAgeExceeded
    invoke_count: int
    outcome: Outcome | None
    shard_id: str = ""
    invoked: list[dict] | None = None  # the last invocation's records, if it was invoked

    def invocation_record(self, function_arn: str, stream_arn: str) -> dict:
        """The message Lambda sends to an on-failure destination for a stream batch."""
        arrivals = [r["dynamodb"].get("ApproximateCreationDateTime", 0) for r in self.records]
        message: dict[str, Any] = {
            "requestContext": {
                "requestId": str(uuid.uuid4()),
                "functionArn": function_arn,
                "condition": self.condition,
                "approximateInvokeCount": self.invoke_count,
            },
            "version": "1.0",
            "timestamp": _iso(time.time(), millis=True),
            "DDBStreamBatchInfo": {
                "shardId": self.shard_id,
                "startSequenceNumber": self.records[0]["dynamodb"]["SequenceNumber"],
                "endSequenceNumber": self.records[-1]["dynamodb"]["SequenceNumber"],
                "approximateArrivalOfFirstRecord": _iso(min(arrivals)),
                "approximateArrivalOfLastRecord": _iso(max(arrivals)),
                "batchSize": len(self.records),
                "streamArn": stream_arn,
            },
        }
        if self.outcome is not None:
            message["responseContext"] = {"statusCode": 200, "executedVersion": "$LATEST"}
            if not self.outcome.ok:
                message["responseContext"]["functionError"] = "Unhandled"
        return message

    def s3_object(self, function_arn: str, stream_arn: str) -> dict:
        """What Lambda writes to an S3 on-failure destination: the invocation record, plus the
        invocation's payload (the event as the function got it, records included) as a JSON
        string. Records discarded for their age were never sent: the payload is the event they
        would have been."""
        message = self.invocation_record(function_arn, stream_arn)
        message["payload"] = as_json({"Records": self.invoked if self.invoked is not None else self.records})
        return message

    def s3_key(self, mapping_uuid: str, now: float | None = None) -> str:
        """Where Lambda puts it: aws/lambda/<mapping UUID>/<shard id>/YYYY/MM/DD/<time>-<UUID>."""
        moment = dt.datetime.fromtimestamp(time.time() if now is None else now, dt.timezone.utc)
        return (f"aws/lambda/{mapping_uuid}/{self.shard_id}/{moment:%Y/%m/%d}/"
                f"{moment:%Y-%m-%dT%H.%M.%S}-{uuid.uuid4()}")


class BatchProcessor:
    """Delivers one batch with Lambda's retry, checkpoint, bisection and discard rules."""

    def __init__(
        self,
        settings: StreamSettings,
        invoke: Callable[[dict], Outcome],
        discard: Callable[[Discarded], None],
        clock: Callable[[], float] = time.time,
        wait: Callable[[float], Any] = time.sleep,
    ):
        self.settings = settings
        self._invoke = invoke
        self._discard = discard
        self._clock = clock
        self._wait = wait
        self.invocations = 0

    def process(self, batch: list[dict], shard_id: str = "", stopping: Callable[[], bool] = lambda: False) -> bool:
        """Delivers a batch of one shard. Returns when every record is processed or discarded
        (True), or on stop (False)."""
        work: deque[tuple[list[dict], int]] = deque([(batch, 0)])
        while work:
            if stopping():
                return False
            records, retries = work.popleft()
            records = self._without_expired(records, retries, shard_id)
            if not records:
                continue
            self.invocations += 1
            outcome = self._invoke({"Records": records})
            failed, whole_batch_failed = self._failed_part(records, outcome)
            if not failed:
                continue
            limit = self.settings.max_retry_attempts
            if limit >= 0 and retries >= limit:
                self._discard(Discarded(failed, "RetryAttemptsExhausted", retries + 1, outcome, shard_id, records))
                continue
            self._wait(RETRY_BACKOFF)
            if whole_batch_failed and self.settings.bisect_on_error and len(failed) > 1:
                half = len(failed) // 2
                work.appendleft((failed[half:], retries + 1))
                work.appendleft((failed[:half], retries + 1))
            else:
                work.appendleft((failed, retries + 1))
        return True

    def _without_expired(self, records: list[dict], retries: int, shard_id: str) -> list[dict]:
        max_age = self.settings.max_record_age
        if max_age < 0:
            return records
        now = self._clock()
        expired = [r for r in records if now - r["dynamodb"]["ApproximateCreationDateTime"] > max_age]
        if expired:
            self._discard(Discarded(expired, "RecordAgeExceeded", retries, None, shard_id))
        return [r for r in records if r not in expired]

    def _failed_part(self, records: list[dict], outcome: Outcome) -> tuple[list[dict], bool]:
        """The records to retry, and whether the whole batch failed."""
        if not outcome.ok:
            return records, True
        if not self.settings.report_batch_item_failures:
            return [], False
        payload = outcome.payload
        failures = payload.get("batchItemFailures") if isinstance(payload, dict) else None
        if not failures:
            return [], False
        positions = {r["dynamodb"]["SequenceNumber"]: i for i, r in enumerate(records)}
        identifiers = [f.get("itemIdentifier") if isinstance(f, dict) else None for f in failures]
        if any(not isinstance(i, str) or i not in positions for i in identifiers):
            return records, True
        first_failed = min(positions[i] for i in identifiers)
        return records[first_failed:], False


def lambda_record(record: dict, stream_arn: str) -> dict:
    """A record from the Streams API in the shape Lambda delivers it: whole-second
    ApproximateCreationDateTime, binary values base64, and eventSourceARN added."""
    body = dict(record["dynamodb"])
    created = body.get("ApproximateCreationDateTime")
    if isinstance(created, dt.datetime):
        body["ApproximateCreationDateTime"] = int(created.timestamp())
    elif created is not None:
        body["ApproximateCreationDateTime"] = int(created)
    return {
        "eventID": record["eventID"],
        "eventName": record["eventName"],
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": record.get("awsRegion", "us-east-1"),
        "dynamodb": _json_safe(body),
        "eventSourceARN": stream_arn,
    }


def read_shard(streams_client, stream_arn: str, shard_id: str, after: str | None) -> list[dict]:
    """The next records of a shard after a sequence number (None: from its start).

    A fresh iterator for every read, rather than NextShardIterator: moto undoes a cancelled
    transaction by swapping in a copy of the table, which strands older iterators on a dead copy
    of the shard (one that even holds the undone writes).
    """
    if after is None:
        position = {"ShardIteratorType": "TRIM_HORIZON"}
    else:
        position = {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": after}
    iterator = streams_client.get_shard_iterator(StreamArn=stream_arn, ShardId=shard_id, **position)
    return streams_client.get_records(ShardIterator=iterator["ShardIterator"], Limit=1000).get("Records", [])


def read_stream(streams_client, stream_arn: str) -> list[dict]:
    """Every record of every shard of a stream so far, in shard order."""
    records: list[dict] = []
    for shard in streams_client.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"]:
        last = None
        while page := read_shard(streams_client, stream_arn, shard["ShardId"], last):
            records += page
            last = page[-1]["dynamodb"]["SequenceNumber"]
    return records


class StreamPoller:
    """Polls every shard of one stream and feeds batches to a BatchProcessor, on a thread."""

    def __init__(
        self,
        name: str,
        streams_client,
        stream_arn: str,
        settings: StreamSettings,
        processor: BatchProcessor,
        log: Log,
    ):
        self.name = name
        self._streams = streams_client
        self._stream_arn = stream_arn
        self._settings = settings
        self._processor = processor
        self._log = log
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"esm-{name}", daemon=True)
        self._last_sequence: dict[str, str | None] = {}
        self._pending: dict[str, list[dict]] = {}
        self._first_pending_at: dict[str, float] = {}

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        known_shards_at = 0.0
        while not self._stop.is_set():
            try:
                if time.monotonic() - known_shards_at > 5:
                    self._discover_shards()
                    known_shards_at = time.monotonic()
                busy = False
                for shard_id in list(self._pending):
                    busy |= self._poll(shard_id)
                if not busy:
                    self._stop.wait(POLL_INTERVAL)
            except Exception as error:  # a hiccup of the local endpoint must not end the mapping
                self._log.line(self.name, f"polling failed, retrying: {error!r}")
                self._stop.wait(1)

    def _discover_shards(self) -> None:
        description = self._streams.describe_stream(StreamArn=self._stream_arn)["StreamDescription"]
        first_discovery = not self._pending
        for shard in description.get("Shards", []):
            shard_id = shard["ShardId"]
            if shard_id in self._pending:
                continue
            self._pending[shard_id] = []
            # The starting position applies to the shards there at start; later shards are read
            # from their beginning so that no record is missed.
            if first_discovery and self._settings.starting_position == "LATEST":
                self._last_sequence[shard_id] = self._last_sequence_in(shard_id)
            else:
                self._last_sequence[shard_id] = None

    def _last_sequence_in(self, shard_id: str) -> str | None:
        last = None
        while records := self._read(shard_id, last):
            last = records[-1]["dynamodb"]["SequenceNumber"]
        return last

    def _read(self, shard_id: str, after: str | None) -> list[dict]:
        return read_shard(self._streams, self._stream_arn, shard_id, after)

    def _poll(self, shard_id: str) -> bool:
        """Reads what is new on one shard and delivers a batch when one is due."""
        pending = self._pending[shard_id]
        if len(pending) < self._settings.batch_size:
            new = self._read(shard_id, self._last_sequence[shard_id])
            if new:
                self._last_sequence[shard_id] = new[-1]["dynamodb"]["SequenceNumber"]
            for raw in new:
                record = lambda_record(raw, self._stream_arn)
                # Filtered-out records count as processed: they never reach the function.
                if filters.accepts(self._settings.filter_patterns, record):
                    pending.append(record)
                    self._first_pending_at.setdefault(shard_id, time.monotonic())
        if not pending:
            return False
        waited = time.monotonic() - self._first_pending_at[shard_id]
        if len(pending) < self._settings.batch_size and waited < self._settings.batching_window:
            return False
        batch, self._pending[shard_id] = pending[: self._settings.batch_size], pending[self._settings.batch_size :]
        if self._pending[shard_id]:
            self._first_pending_at[shard_id] = time.monotonic()
        else:
            self._first_pending_at.pop(shard_id, None)
        self._processor.process(batch, shard_id, stopping=self._stop.is_set)
        return True


def _iso(epoch_seconds: float, millis: bool = False) -> str:
    moment = dt.datetime.fromtimestamp(epoch_seconds, dt.timezone.utc)
    if millis:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _json_safe(value: Any) -> Any:
    """boto3 gives binary attributes as bytes; Lambda events carry them base64-encoded."""
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(value).decode()
    if isinstance(value, (set, frozenset)):
        return [_json_safe(v) for v in sorted(value)]
    return value


def as_json(message: dict) -> str:
    return json.dumps(message, separators=(",", ":"))

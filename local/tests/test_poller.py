"""The event source mapping's reading side on a real stream (moto's DynamoDB Streams API):
starting position, batch size, filters, and records written after a cancelled transaction."""

from __future__ import annotations

import io
import threading
import time

import pytest
from botocore.exceptions import ClientError

from local.aws.stream_mapping import StreamPoller, StreamSettings
from local.aws.moto import MotoServer
from local.processes import Log
from local.template import Template


@pytest.fixture(scope="module")
def moto():
    with MotoServer() as server:
        server.create_tables(Template.load())
        yield server


class Collector:
    """Stands in for BatchProcessor: keeps each batch's user ids."""

    def __init__(self):
        self.batches: list[list[str]] = []
        self.changed = threading.Event()

    def process(self, batch, shard_id="", stopping=lambda: False):
        self.batches.append([r["dynamodb"]["Keys"]["id"]["S"] for r in batch])
        self.changed.set()
        return True

    def ids(self):
        return [i for batch in self.batches for i in batch]


def put(moto, user_id):
    moto.client("dynamodb").put_item(
        TableName="UsersTable", Item={"id": {"S": user_id}, "email": {"S": f"{user_id}@test.com"}}
    )


def poll(moto, settings, collector):
    arn = moto.client("dynamodb").describe_table(TableName="UsersTable")["Table"]["LatestStreamArn"]
    poller = StreamPoller("test", moto.client("dynamodbstreams"), arn, settings, collector, Log(io.StringIO()))
    poller.start()
    return poller


def wait_until(predicate, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("timed out")


def test_reads_from_the_starting_position_in_batches_with_filters(moto):
    for n in range(5):
        put(moto, f"old-{n}")

    # LATEST: what was there at start is skipped.
    latest = Collector()
    poller = poll(moto, StreamSettings(starting_position="LATEST", batch_size=2), latest)
    try:
        time.sleep(0.6)
        for n in range(5):
            put(moto, f"new-{n}")
        wait_until(lambda: len(latest.ids()) == 5)
        assert latest.ids() == [f"new-{n}" for n in range(5)]
        assert all(len(batch) <= 2 for batch in latest.batches)
    finally:
        poller.stop()

    # TRIM_HORIZON with a filter: everything from the start, but only what the pattern accepts.
    filtered = Collector()
    settings = StreamSettings(
        starting_position="TRIM_HORIZON",
        filter_patterns=[{"dynamodb": {"Keys": {"id": {"S": [{"prefix": "old-"}]}}}}],
    )
    poller = poll(moto, settings, filtered)
    try:
        wait_until(lambda: len(filtered.ids()) >= 5)
        time.sleep(0.5)
        assert filtered.ids() == [f"old-{n}" for n in range(5)]
    finally:
        poller.stop()


def test_a_cancelled_transaction_neither_shows_up_nor_hides_what_follows(moto):
    collector = Collector()
    poller = poll(moto, StreamSettings(starting_position="LATEST"), collector)
    try:
        time.sleep(0.6)
        put(moto, "tx-before")
        wait_until(lambda: "tx-before" in collector.ids())
        # A transaction moto cancels after applying its first write.
        put(moto, "tx-taken")
        with pytest.raises(ClientError):
            moto.client("dynamodb").transact_write_items(
                TransactItems=[
                    {"Put": {"TableName": "UsersTable", "Item": {"id": {"S": "tx-phantom"}}}},
                    {"Put": {"TableName": "UsersTable", "Item": {"id": {"S": "tx-taken"}}, "ConditionExpression": "attribute_not_exists(id)"}},
                ]
            )
        put(moto, "tx-after")
        wait_until(lambda: "tx-after" in collector.ids())
        assert "tx-phantom" not in collector.ids()
    finally:
        poller.stop()

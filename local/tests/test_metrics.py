"""The business metrics, end to end: under the local stack (python -m local.stack), the
functions' log lines carry EMF records (CloudWatch's Embedded Metric Format) with the right
counts for a create, a 409 and a stream batch. Needs the debug binaries."""

from __future__ import annotations

import json
import time

from local.harness import RunningStack
from local.aws.moto import free_port


def emf_records(output: str) -> list[tuple[str, dict]]:
    """Every EMF record the functions logged, with the function's tag (`[create-user] {...}`)."""
    records = []
    for line in output.splitlines():
        tag, _, rest = line.partition("] ")
        if not tag.startswith("[") or not rest.startswith("{"):
            continue
        try:
            record = json.loads(rest)
        except ValueError:
            continue
        if isinstance(record, dict) and "_aws" in record:
            records.append((tag[1:].split("#")[0], record))
    return records


def total(records: list[tuple[str, dict]], metric: str, **dimensions: str) -> int:
    return sum(record[metric] for _, record in records
               if metric in record and all(record.get(k) == v for k, v in dimensions.items()))


def test_a_create_a_409_and_a_stream_batch_are_counted(tmp_path):
    stack = RunningStack(tmp_path / "stack.log", free_port(), free_port(), log_format="template")
    try:
        # WHEN a user is created, the same email is created again (409), and the stream records it
        assert stack.post("/create", {"email": "counted@test.com"})[0] == 201
        assert stack.post("/create", {"email": "counted@test.com"})[0] == 409
        deadline = time.monotonic() + 30
        while not total(emf_records(stack.output()), "RecordsHandled") and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(0.5)
        records = emf_records(stack.output())
        output = stack.output()
    finally:
        assert stack.stop() == 0

    # THEN each is counted once, under the namespace the template gives
    assert total(records, "UsersCreated", Function="create-user") == 1
    assert total(records, "UsersRefused", Function="create-user", Outcome="taken") == 1
    assert total(records, "UsersRefused", Function="create-user", Outcome="invalid") == 0
    assert total(records, "StreamBatchSize", Function="user-stream") == 1
    assert total(records, "RecordsHandled", Function="user-stream") == 1
    assert total(records, "RecordsFailed", Function="user-stream") == 0
    assert total(records, "ColdStart", Function="create-user") == 1
    for tag, record in records:
        [directive] = record["_aws"]["CloudWatchMetrics"]
        assert directive["Namespace"] == "UsersApi/local", record  # the template's, for a stack called local
        [metric] = directive["Metrics"]
        assert record["Function"] == tag, record  # the dimension names the function that wrote it
        assert all(name in record for name in directive["Dimensions"][0]), record
        assert isinstance(record[metric["Name"]], int) and metric["Unit"] == "Count", record
        assert "@" not in json.dumps(record), record  # no user data

    # AND every line the handlers logged while handling carries the invocation's X-Ray trace id
    handled = [json.loads(line.partition("] ")[2]) for line in output.splitlines()
               if line.startswith(("[create-user]", "[user-stream]")) and '"fields"' in line]
    assert handled
    for line in handled:
        assert line["span"]["xrayTraceId"].startswith("Root=1-"), line

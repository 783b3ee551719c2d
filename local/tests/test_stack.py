"""End to end: the local stack (python -m local.stack) runs the seed lesson, retries a poison
record per the template and keeps it whole in the on-failure bucket, and stops leaving nothing behind.

Needs the debug binaries (cargo build --bins), which scripts/test builds first.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from local.aws.stream_mapping import StreamSettings, read_stream
from local.harness import RunningStack
from local.aws.moto import free_port
from local.template import ROOT, Template, functions, target_dir

STREAM_SETTINGS = StreamSettings.from_properties(
    next(
        event["Properties"]
        for spec in functions(Template.load())
        for event in spec.events.values()
        if event["Type"] == "DynamoDB"
    )
)


def session_processes(session_id: int) -> list[str]:
    """Command lines of the live processes in a session."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            state, sid = fields[0], int(fields[3])
            if sid == session_id and state != "Z":
                found.append((stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode())
        except (OSError, IndexError, ValueError):
            continue
    return found


def nothing_listens_on(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def handled(stack: RunningStack, event_name: str, user_id: str) -> int:
    return stack.wait_for_output(f'event_name="{event_name}" user_id={user_id}')


def test_the_lesson_the_poison_record_and_a_clean_stop(tmp_path):
    port, dynamodb_port = free_port(), free_port()
    stack = RunningStack(tmp_path / "stack.log", port, dynamodb_port)
    try:
        # The seed lesson: create -> INSERT handled -> history row; delete -> REMOVE handled.
        status, user = stack.post("/create", {"email": "test@test.com"})
        assert status == 201, user
        assert set(user) == {"id", "timestamp", "email"} and user["email"] == "test@test.com"
        handled(stack, "INSERT", user["id"])
        assert [i["eventName"]["S"] for i in stack.history(user["id"])] == ["INSERT"]

        assert stack.post("/create", {"email": "TEST@test.com"})[0] == 409
        status, deleted = stack.post("/delete", {"id": user["id"]})
        assert (status, deleted) == (200, user)
        handled(stack, "REMOVE", user["id"])
        assert [i["eventName"]["S"] for i in stack.history(user["id"])] == ["INSERT", "REMOVE"]
        assert stack.post("/delete", {"id": user["id"]}) == (404, {"message": f"no user with id {user['id']}"})
        assert stack.post("/nope", {})[0] == 404
        assert stack.post("/create", b"{not json")[0] == 400

        # A poison record between two good ones: written behind the API's back, it is no user.
        _, before = stack.post("/create", {"email": "before@test.com"})
        poison_id = str(uuid.uuid4())
        stack.aws("dynamodb").put_item(TableName="UsersTable", Item={"id": {"S": poison_id}, "email": {"S": "x@test.com"}})
        _, after = stack.post("/create", {"email": "after@test.com"})

        # The records around it are handled ...
        handled(stack, "INSERT", before["id"])
        handled(stack, "INSERT", after["id"])
        assert len(stack.history(before["id"])) == 1 and len(stack.history(after["id"])) == 1

        # ... and it is retried per the template, then kept whole in the on-failure bucket.
        [failure] = wait_for_kept_failures(stack, 1)
        poison_sequence = next(
            r["dynamodb"]["SequenceNumber"]
            for r in _stream_records(stack)
            if r["dynamodb"]["Keys"]["id"]["S"] == poison_id
        )
        assert failure["requestContext"]["condition"] == "RetryAttemptsExhausted"
        assert failure["requestContext"]["approximateInvokeCount"] == STREAM_SETTINGS.max_retry_attempts + 1
        assert failure["requestContext"]["functionArn"].endswith(":function:UserStreamFunction")
        assert failure["DDBStreamBatchInfo"]["startSequenceNumber"] == poison_sequence
        assert failure["DDBStreamBatchInfo"]["streamArn"].startswith("arn:aws:dynamodb:")
        # The last invocation's event, whole: the poison record (and any sent with it).
        kept = {r["dynamodb"]["SequenceNumber"]: r for r in json.loads(failure["payload"])["Records"]}
        assert kept[poison_sequence]["dynamodb"]["NewImage"] == {"id": {"S": poison_id}, "email": {"S": "x@test.com"}}
        reported = stack.output().count(f"batchItemFailures: ['{poison_sequence}']")
        assert reported == STREAM_SETTINGS.max_retry_attempts + 1
        assert stack.history(poison_id) == []
        # Replaying cannot mend a poison record: it says so and keeps the object.
        replayed = replay_failures(stack)
        assert replayed.returncode == 1, replayed.stdout + replayed.stderr
        assert f"{len(kept) - 1} record(s) recorded, 1 still failing; kept" in replayed.stdout
        assert f"{poison_sequence}: stream record is not a valid user change" in replayed.stdout
        assert len(kept_failures(stack)) == 1

        # Function logs are tagged by function.
        assert "[create-user]" in stack.output() and "[user-stream]" in stack.output()
    finally:
        code = stack.stop()

    # Stopped on SIGINT: exit 0, no process of its session left, its ports free again.
    assert code == 0, stack.output()
    assert session_processes(stack.process.pid) == []
    assert nothing_listens_on(port) and nothing_listens_on(dynamodb_port)

    # And it starts again cleanly on the same ports, and stops on SIGTERM too.
    again = RunningStack(tmp_path / "again.log", port, dynamodb_port)
    assert again.post("/create", {"email": "test@test.com"})[0] == 201
    assert again.stop(signal.SIGTERM) == 0
    assert session_processes(again.process.pid) == []


def test_the_lesson_with_a_patch_produces_insert_modify_remove_and_a_history_to_read(tmp_path):
    stack = RunningStack(tmp_path / "stack.log", free_port(), free_port())
    try:
        # create -> read -> PATCH -> delete through the local API ...
        status, user = stack.post("/create", {"email": "test@test.com"})
        assert status == 201, user
        assert stack.call("GET", f"/users/{user['id']}") == (200, user)
        status, renamed = stack.call("PATCH", f"/users/{user['id']}", {"email": "renamed@test.com"})
        assert (status, renamed) == (200, {**user, "email": "renamed@test.com"})
        assert stack.post("/delete", {"id": user["id"]}) == (200, renamed)
        assert stack.call("GET", f"/users/{user['id']}")[0] == 404

        # ... reaches the stream function as INSERT, MODIFY, REMOVE, each recorded ...
        for event_name in ("INSERT", "MODIFY", "REMOVE"):
            handled(stack, event_name, user["id"])

        # ... and the history reads them back in order: what changed and when, and, the user
        # being deleted, none of its emails.
        status, page = stack.call("GET", f"/users/{user['id']}/history")
        assert status == 200, page
        assert [item["eventName"] for item in page["items"]] == ["INSERT", "MODIFY", "REMOVE"]
        insert, modify, remove = page["items"]
        erased = {"id": user["id"], "timestamp": user["timestamp"]}
        assert (insert.get("oldImage"), insert["newImage"]) == (None, erased)
        assert (modify["oldImage"], modify["newImage"]) == (erased, erased)
        assert (remove["oldImage"], remove.get("newImage")) == (erased, None)
        assert page["next"] is None
        # local.show reads the same history from the table, and the stream's records.
        shown = subprocess.run(
            [sys.executable, "-m", "local.show", "--endpoint", f"http://127.0.0.1:{stack.dynamodb_port}", "history", user["id"]],
            cwd=ROOT, capture_output=True, text=True, timeout=30, check=True,
        ).stdout.splitlines()
        assert [json.loads(line)["eventName"] for line in shown] == ["INSERT", "MODIFY", "REMOVE"]
        assert "test.com" not in "\n".join(shown)
        stream = subprocess.run(
            [sys.executable, "-m", "local.show", "--endpoint", f"http://127.0.0.1:{stack.dynamodb_port}", "stream"],
            cwd=ROOT, capture_output=True, text=True, timeout=30, check=True,
        ).stdout.splitlines()
        ours = [json.loads(line) for line in stream if user["id"] in line]
        assert [record["eventName"] for record in ours] == ["INSERT", "MODIFY", "REMOVE"]
        assert ours[0]["newImage"] == user  # numbers come back as numbers

        # The old email was freed by the PATCH, the new one by the delete.
        assert stack.post("/create", {"email": "test@test.com"})[0] == 201
        assert stack.post("/create", {"email": "renamed@test.com"})[0] == 201
    finally:
        assert stack.stop() == 0


def test_concurrent_requests_run_in_concurrent_processes_and_get_answers_they_can_explain(tmp_path):
    # As on Lambda, a request that finds a function's process busy gets another process, so
    # a client's retry racing its first try, or a delete racing a PATCH, really overlaps.
    stack = RunningStack(tmp_path / "stack.log", free_port(), free_port())

    def together(*calls):
        with ThreadPoolExecutor(len(calls)) as pool:
            return list(pool.map(lambda call: stack.call(*call), calls))

    try:
        for round in range(5):
            status, user = stack.post("/create", {"email": f"twice{round}@test.com"})
            assert status == 201, user
            patch = ("PATCH", f"/users/{user['id']}", {"email": f"renamed{round}@test.com"})
            renamed = {**user, "email": f"renamed{round}@test.com"}
            # A client retrying twice while its first try runs: four at once in the first round.
            copies = 4 if round == 0 else 2
            assert together(*[patch] * copies) == [(200, renamed)] * copies

            deleted, patched = together(("POST", "/delete", {"id": user["id"]}),
                                        ("PATCH", f"/users/{user['id']}", {"email": f"moved{round}@test.com"}))
            assert deleted[0] == 200 and patched[0] in (200, 404), (deleted, patched)
            assert deleted[1]["email"] == (f"moved{round}@test.com" if patched[0] == 200 else renamed["email"])
            assert stack.call("GET", f"/users/{user['id']}")[0] == 404
        output = stack.output()
        assert "[update-user#2] started execution environment 2 of at most 4" in output, output
    finally:
        assert stack.stop() == 0


def test_function_logs_follow_the_templates_logging_config(tmp_path):
    # The template says LogFormat JSON, ApplicationLogLevel INFO: as on AWS, each function gets
    # AWS_LAMBDA_LOG_FORMAT=JSON and AWS_LAMBDA_LOG_LEVEL=INFO, and logs JSON lines.
    assert {s.name: s.log_environment() for s in functions(Template.load())}["CreateUserFunction"] == {
        "AWS_LAMBDA_LOG_FORMAT": "JSON", "AWS_LAMBDA_LOG_LEVEL": "INFO",
    }
    stack = RunningStack(tmp_path / "stack.log", free_port(), free_port(), log_format="template")
    try:
        status, user = stack.post("/create", {"email": "json@test.com"})
        assert status == 201
        start = stack.wait_for_output('[create-user] {"level"')
        line = stack.output()[start:].splitlines()[0].removeprefix("[create-user] ")
        logged = json.loads(line)
        # Besides the log lines, the metrics' EMF records (JSON too, with no level: INFO to Lambda).
        assert '[create-user] {"ColdStart":1' in stack.output()
        assert logged["level"] == "INFO" and logged["fields"]["message"] == "user created", logged
        assert logged["fields"]["user_id"] == user["id"]
    finally:
        assert stack.stop() == 0


def test_records_that_exhaust_their_retries_are_kept_whole_and_replayed_exactly_once(tmp_path):
    stack = RunningStack(tmp_path / "stack.log", free_port(), free_port())
    try:
        # GIVEN a history table that refuses writes (the fault: it is gone)
        dynamodb = stack.aws("dynamodb")
        dynamodb.delete_table(TableName="HistoryTable")
        dynamodb.get_waiter("table_not_exists").wait(TableName="HistoryTable")

        # WHEN a user is created and renamed, the stream function cannot record any of it: each
        # record is retried per the template, then kept whole in the bucket. (A delete needs the
        # history table too, for the user's erasure marker: it would answer 500 now.)
        status, user = stack.post("/create", {"email": "kept@test.com"})
        assert status == 201, user
        assert stack.call("PATCH", f"/users/{user['id']}", {"email": "renamed-kept@test.com"})[0] == 200
        ours = [r["dynamodb"]["SequenceNumber"] for r in _stream_records(stack) if r["dynamodb"]["Keys"]["id"]["S"] == user["id"]]
        assert len(ours) == 2
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            kept = [r["dynamodb"]["SequenceNumber"] for f in kept_failures(stack) for r in json.loads(f["payload"])["Records"]]
            if set(ours) <= set(kept):
                break
            time.sleep(0.5)
        assert set(ours) <= set(kept), stack.output()
        shown = subprocess.run(
            [sys.executable, "-m", "local.show", "--endpoint", f"http://127.0.0.1:{stack.dynamodb_port}", "failures"],
            cwd=ROOT, capture_output=True, text=True, timeout=30, check=True,
        ).stdout.splitlines()
        listed = [record for line in shown for record in json.loads(line)["records"]]
        assert {r["sequenceNumber"] for r in listed} >= set(ours)
        assert "kept@test.com" not in "\n".join(shown)  # ids and sequence numbers, never emails

        # AND with the fault switched off, a replay records every change once and empties the bucket
        [history_table] = [t for t in Template.load().table_requests() if t["TableName"] == "HistoryTable"]
        dynamodb.create_table(**history_table)
        dynamodb.get_waiter("table_exists").wait(TableName="HistoryTable")
        dry = replay_failures(stack, "--dry-run")
        assert dry.returncode == 0 and "would be recorded" in dry.stdout, dry.stdout + dry.stderr
        assert stack.history(user["id"]) == [] and kept_failures(stack)

        first = replay_failures(stack)
        assert first.returncode == 0, first.stdout + first.stderr
        assert "recorded; deleted" in first.stdout and "; kept" not in first.stdout
        assert ", 0 kept (0 record(s) still failing)" in first.stdout
        history = stack.history(user["id"])
        assert [i["eventName"]["S"] for i in history] == ["INSERT", "MODIFY"]
        assert kept_failures(stack) == []

        # AND a second replay changes nothing
        second = replay_failures(stack)
        assert second.returncode == 0 and ": 0 kept failure(s)" in second.stdout, second.stdout
        assert stack.history(user["id"]) == history

        # AND the new user is welcomed once (the INSERT was forwarded on every try and again by
        # the replay), under the address it has now
        deadline = time.monotonic() + 30
        while not stack.sent_emails(to="renamed-kept@test.com") and time.monotonic() < deadline:
            time.sleep(0.3)
        time.sleep(1)
        assert len(stack.sent_emails(to="renamed-kept@test.com")) == 1, stack.output()
        assert stack.sent_emails(to="kept@test.com") == []

        # AND the history reads back through the API as if nothing had failed, and goes on: a
        # delete now is recorded (and erases the addresses) as usual
        status, page = stack.call("GET", f"/users/{user['id']}/history")
        assert [item["eventName"] for item in page["items"]] == ["INSERT", "MODIFY"]
        assert page["items"][1]["newImage"]["email"] == "renamed-kept@test.com"
        assert stack.post("/delete", {"id": user["id"]})[0] == 200
        handled(stack, "REMOVE", user["id"])
        status, page = stack.call("GET", f"/users/{user['id']}/history")
        assert [item["eventName"] for item in page["items"]] == ["INSERT", "MODIFY", "REMOVE"]
        assert "kept@test.com" not in json.dumps(page)
    finally:
        assert stack.stop() == 0


def kept_failures(stack: RunningStack) -> list[dict]:
    """Every failure record in the on-failure bucket, oldest first."""
    s3 = stack.aws("s3")
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket="StreamFailureBucket").get("Contents", []))
    return [json.loads(s3.get_object(Bucket="StreamFailureBucket", Key=key)["Body"].read()) for key in keys]


def wait_for_kept_failures(stack: RunningStack, count: int, timeout: float = 60) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(found := kept_failures(stack)) >= count:
            return found
        time.sleep(0.5)
    raise AssertionError(f"no {count} kept failure(s) within {timeout}s:\n{stack.output()}")


def replay_failures(stack: RunningStack, *flags: str) -> subprocess.CompletedProcess:
    """The replay command, as an operator runs it against the local stack (which has a welcome queue)."""
    queue_url = stack.aws("sqs").get_queue_url(QueueName="WelcomeQueue")["QueueUrl"]
    return subprocess.run(
        [str(target_dir() / "debug" / "replay-failures"), "--endpoint", f"http://127.0.0.1:{stack.dynamodb_port}",
         "--bucket", "StreamFailureBucket", "--history-table", "HistoryTable", "--welcome-queue-url", queue_url, *flags],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
        env={k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
    )


def _stream_records(stack: RunningStack) -> list[dict]:
    arn = stack.aws("dynamodb").describe_table(TableName="UsersTable")["Table"]["LatestStreamArn"]
    return read_stream(stack.aws("dynamodbstreams"), arn)


def test_a_busy_port_is_reported_and_nothing_is_left_running():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        for flag in ("--dynamodb-port", "--port"):
            result = subprocess.run(
                [sys.executable, "-m", "local.stack", flag, str(port)] + (["--dynamodb-port", str(free_port())] if flag == "--port" else []),
                cwd=ROOT, capture_output=True, text=True, timeout=60, env={**os.environ, "NO_COLOR": "1"},
            )
            assert result.returncode == 1, result.stdout + result.stderr
            assert f"[stack] cannot start:" in result.stdout and str(port) in result.stdout
            assert "Traceback" not in result.stdout + result.stderr

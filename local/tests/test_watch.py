"""local.watch: cargo lambda watch with the local DynamoDB and the event source mapping beside
it, so that a create invoked through watch reaches the stream function; and local.event, which
makes the lesson's follow-up events for `cargo lambda invoke`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import boto3

from local.event import event
from local.aws.moto import free_port
from local.template import ROOT


def invoke(port: int, function: str, payload: dict) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/2015-03-31/functions/{function}/invocations",
        data=json.dumps(payload).encode(), method="POST",
    )
    with urllib.request.urlopen(request, timeout=600) as response:
        return json.loads(response.read())


def test_a_create_under_watch_reaches_the_stream_function(tmp_path):
    invoke_port, dynamodb_port = free_port(), free_port()
    log = (tmp_path / "watch.log").open("wb")
    watch = subprocess.Popen(
        [sys.executable, "-m", "local.watch", "--invoke-port", str(invoke_port), "--dynamodb-port", str(dynamodb_port)],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        env={**os.environ, "NO_COLOR": "1", "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"},
    )
    output = lambda: (tmp_path / "watch.log").read_text(errors="replace")
    try:
        deadline = time.monotonic() + 120
        while "[watch] ready" not in output():
            assert watch.poll() is None and time.monotonic() < deadline, output()
            time.sleep(0.2)

        # WHEN a user is created and deleted through watch, as `cargo lambda invoke` does it
        created = invoke(invoke_port, "create-user", event("create", email="watched@test.com"))
        assert created["statusCode"] == 201, created
        user = json.loads(created["body"])
        deleted = invoke(invoke_port, "delete-user", event("delete", user_id=user["id"]))
        assert deleted["statusCode"] == 200, deleted

        # THEN the mapping delivers both changes to the stream function, which records them
        dynamodb = boto3.client("dynamodb", endpoint_url=f"http://127.0.0.1:{dynamodb_port}", region_name="us-east-1",
                                aws_access_key_id="local", aws_secret_access_key="local")
        names: list[str] = []
        deadline = time.monotonic() + 300  # the stream function is compiled on its first invocation
        while names != ["INSERT", "REMOVE"]:
            assert time.monotonic() < deadline, output()
            time.sleep(0.5)
            items = dynamodb.query(TableName="HistoryTable", KeyConditionExpression="userId = :u AND sequenceNumber < :marker",
                                   ExpressionAttributeValues={":u": {"S": user["id"]}, ":marker": {"S": "~"}},
                                   ConsistentRead=True)["Items"]
            names = [item["eventName"]["S"] for item in items]

        # AND the stream function forwards the new user to the welcome queue, whose mapping
        # invokes the welcome function under watch (the user is gone by then, or not yet)
        deadline = time.monotonic() + 300
        while (welcome := dynamodb.get_item(TableName="IdempotencyTable", Key={"key": {"S": f"welcome#{user['id']}"}},
                                            ConsistentRead=True).get("Item", {})).get("status", {}).get("S") != "DONE":
            assert time.monotonic() < deadline, output()
            time.sleep(0.5)
        assert welcome["outcome"]["S"] in ("sent", "user gone"), welcome

        # AND events/welcome.json, as `cargo lambda invoke --data-file` sends it: its users do
        # not exist here, so each message is handled as a user gone (none left on the queue)
        invoked = subprocess.run(
            ["cargo", "lambda", "invoke", "welcome-user", "--data-file", "events/welcome.json",
             "--invoke-address", "127.0.0.1", "--invoke-port", str(invoke_port), "--output-format", "json"],
            cwd=ROOT, capture_output=True, text=True, timeout=300,
            env={**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"},
        )
        assert invoked.returncode == 0, invoked.stderr
        assert json.loads(invoked.stdout) == {"batchItemFailures": []}, invoked.stdout
    finally:
        watch.send_signal(signal.SIGINT)
        code = watch.wait(timeout=60)
        log.close()
    assert code == 0, output()
    assert "Traceback" not in output()


def test_the_lessons_follow_up_events_carry_your_id_and_email():
    delete = event("delete", user_id="0f6d2b8e-3a57-4c1f-9e3a-6b1d2c4e5f60")
    assert json.loads(delete["body"]) == {"id": "0f6d2b8e-3a57-4c1f-9e3a-6b1d2c4e5f60"}
    assert delete["headers"]["content-length"] == str(len(delete["body"]))
    update = event("update", user_id="0f6d2b8e-3a57-4c1f-9e3a-6b1d2c4e5f60", email="new@test.com")
    assert update["rawPath"] == "/users/0f6d2b8e-3a57-4c1f-9e3a-6b1d2c4e5f60"
    assert update["pathParameters"] == {"id": "0f6d2b8e-3a57-4c1f-9e3a-6b1d2c4e5f60"}
    assert json.loads(update["body"]) == {"email": "new@test.com"}
    assert update["requestContext"]["http"]["method"] == "PATCH"

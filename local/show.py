"""Looks at the local tables and the users stream, as plain JSON, one item a line:

    .venv/bin/python -m local.show users                # every user
    .venv/bin/python -m local.show emails               # every email claim (email -> userId)
    .venv/bin/python -m local.show history USER_ID      # a user's recorded changes, oldest first
    .venv/bin/python -m local.show stream               # every record of the users table's stream
    .venv/bin/python -m local.show failures             # stream batches kept in StreamFailureBucket
    .venv/bin/python -m local.show sent-emails          # every email moto's SES sent (the welcomes)
    .venv/bin/python -m local.show welcomes             # the idempotency table: each welcome's state
    .venv/bin/python -m local.show dead-letters         # messages in WelcomeDeadLetterQueue

Reads the DynamoDB of `scripts/run` (http://127.0.0.1:8000) unless told another endpoint with
--endpoint (`python -m local.testenv` prints its own). Tables are named by their logical ids.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.request
from decimal import Decimal

import boto3
from boto3.dynamodb.types import TypeDeserializer

from .aws.stream_mapping import lambda_record, read_stream
from .aws.moto import REGION

_plain = TypeDeserializer()


def plain(item: dict) -> dict:
    """A DynamoDB item as plain JSON values (numbers as numbers)."""
    return {key: _plain.deserialize(value) for key, value in item.items()}


def _json(value) -> str:
    def default(v):
        if isinstance(v, Decimal):
            return int(v) if v == v.to_integral_value() else float(v)
        if isinstance(v, (set, frozenset)):
            return sorted(v)
        if isinstance(v, bytes):
            return v.decode("latin-1")
        raise TypeError(type(v))
    return json.dumps(value, default=default)


def scan(client, table: str) -> list[dict]:
    items: list[dict] = []
    for page in client.get_paginator("scan").paginate(TableName=table, ConsistentRead=True):
        items += [plain(item) for item in page["Items"]]
    return items


def kept_failures(s3, bucket: str) -> list[dict]:
    """One line per object of the on-failure bucket: what Lambda gave up on and why, with the
    records' event names, user ids and sequence numbers (never their emails)."""
    lines = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for entry in page.get("Contents", []):
            line: dict = {"key": entry["Key"], "size": entry["Size"]}
            try:
                failure = json.loads(s3.get_object(Bucket=bucket, Key=entry["Key"])["Body"].read())
                info = failure["DDBStreamBatchInfo"]
                payload = failure["payload"]
                records = (json.loads(payload) if isinstance(payload, str) else payload)["Records"]
                line.update({
                    "condition": failure["requestContext"]["condition"],
                    "batchSize": info["batchSize"],
                    "sequenceNumbers": f"{info['startSequenceNumber']}..{info['endSequenceNumber']}",
                    "records": [
                        {"eventName": r.get("eventName"), "sequenceNumber": r["dynamodb"].get("SequenceNumber"),
                         "userId": r["dynamodb"].get("Keys", {}).get("id", {}).get("S")}
                        for r in records
                    ],
                })
            except (ValueError, KeyError, TypeError) as error:
                line["unreadable"] = f"not a failure record: {error!r}"
            lines.append(line)
    return lines


def sent_emails(endpoint: str) -> list[dict]:
    """What moto's SES sent, oldest first: from, to, subject and body."""
    with urllib.request.urlopen(f"{endpoint}/_local/sent-emails", timeout=10) as answer:
        messages = json.load(answer)  # see local/aws/moto_app.py
    return [
        {"id": m.get("id"), "from": m.get("source"), "to": m.get("destinations", {}).get("ToAddresses", []),
         "subject": m.get("subject"), "body": m.get("body")}
        for m in messages
    ]


def dead_letters(sqs, queue: str) -> list[dict]:
    """The messages in a dead-letter queue, looked at without hiding them (visibility 0)."""
    url = sqs.get_queue_url(QueueName=queue)["QueueUrl"]
    seen: dict[str, dict] = {}
    for _ in range(10):
        answer = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0, AttributeNames=["All"])
        for message in answer.get("Messages", []):
            seen[message["MessageId"]] = {
                "messageId": message["MessageId"], "body": message["Body"],
                "receiveCount": message.get("Attributes", {}).get("ApproximateReceiveCount"),
            }
        if not answer.get("Messages"):
            break
    return list(seen.values())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.show", description=__doc__.split("\n\n")[0])
    parser.add_argument("--endpoint", default="http://127.0.0.1:8000", help="the local DynamoDB (default: scripts/run's)")
    parser.add_argument("what", choices=("users", "emails", "history", "stream", "failures", "sent-emails", "welcomes", "dead-letters"))
    parser.add_argument("user_id", nargs="?", help="for history: whose")
    args = parser.parse_args(argv)
    if args.what == "history" and not args.user_id:
        parser.error("history needs a USER_ID")

    session = boto3.session.Session(aws_access_key_id="local", aws_secret_access_key="local", region_name=REGION)
    dynamodb = session.client("dynamodb", endpoint_url=args.endpoint)
    try:
        if args.what == "users":
            lines = scan(dynamodb, "UsersTable")
        elif args.what == "emails":
            lines = scan(dynamodb, "EmailsTable")
        elif args.what == "history":
            pages = dynamodb.get_paginator("query").paginate(
                # Entries only: a deleted user's erasure marker (sort key "~erased") sorts after them.
                TableName="HistoryTable", KeyConditionExpression="userId = :u AND sequenceNumber < :marker",
                ExpressionAttributeValues={":u": {"S": args.user_id}, ":marker": {"S": "~"}}, ConsistentRead=True,
            )
            lines = [plain(item) for page in pages for item in page["Items"]]
        elif args.what == "sent-emails":
            lines = sent_emails(args.endpoint)
        elif args.what == "welcomes":
            lines = scan(dynamodb, "IdempotencyTable")
        elif args.what == "dead-letters":
            lines = dead_letters(session.client("sqs", endpoint_url=args.endpoint), "WelcomeDeadLetterQueue")
        elif args.what == "failures":
            lines = kept_failures(session.client("s3", endpoint_url=args.endpoint), "StreamFailureBucket")
        else:
            arn = dynamodb.describe_table(TableName="UsersTable")["Table"]["LatestStreamArn"]
            streams = session.client("dynamodbstreams", endpoint_url=args.endpoint)
            lines = []
            for record in read_stream(streams, arn):
                shaped = lambda_record(record, arn)
                change = shaped["dynamodb"]
                lines.append({
                    "eventName": shaped["eventName"],
                    "sequenceNumber": change["SequenceNumber"],
                    "approximateCreationDateTime": change.get("ApproximateCreationDateTime"),
                    "keys": plain(change.get("Keys", {})),
                    **({"oldImage": plain(change["OldImage"])} if "OldImage" in change else {}),
                    **({"newImage": plain(change["NewImage"])} if "NewImage" in change else {}),
                })
    except Exception as error:  # an unreachable endpoint or a missing table: one line, no traceback
        print(f"local.show: cannot read {args.what} at {args.endpoint}: {error}", file=sys.stderr)
        return 1
    for line in lines:
        print(_json(line))
    return 0


if __name__ == "__main__":
    sys.exit(main())

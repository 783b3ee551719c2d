"""A sample event from events/ with your own id or email, to hand to `cargo lambda invoke`:

    cargo lambda invoke delete-user --invoke-address 127.0.0.1 --invoke-port 9000 \\
        --data-ascii "$(.venv/bin/python -m local.event delete --id <id from create>)"

NAME is a file of events/ without `.json` (create, delete, get, update, history, welcome). --id
replaces the user id (the body's `id` for delete, the path's for the /users/{id} routes, every
message's `userId` for welcome); --email the body's `email` (create, update). The rest stays
exactly as API Gateway or Lambda's SQS mapping sends it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys

from .template import ROOT

EVENTS = ROOT / "events"


def event(name: str, user_id: str | None = None, email: str | None = None) -> dict:
    sample = json.loads((EVENTS / f"{name}.json").read_text())
    if "Records" in sample:
        return _queue_event(name, sample, user_id, email)
    body = json.loads(sample["body"]) if sample.get("body") and not sample.get("isBase64Encoded") else None
    if user_id is not None:
        if "pathParameters" in sample:
            old = sample["pathParameters"]["id"]
            sample["pathParameters"]["id"] = user_id
            sample["rawPath"] = sample["rawPath"].replace(old, user_id)
            sample["requestContext"]["http"]["path"] = sample["requestContext"]["http"]["path"].replace(old, user_id)
        elif body is not None and "id" in body:
            body["id"] = user_id
        else:
            raise SystemExit(f"events/{name}.json has no user id to replace")
    if email is not None:
        if body is None or "email" not in body:
            raise SystemExit(f"events/{name}.json has no email to replace")
        body["email"] = email
    if body is not None:
        sample["body"] = json.dumps(body)
        sample["headers"]["content-length"] = str(len(sample["body"]))
    return sample


def _queue_event(name: str, sample: dict, user_id: str | None, email: str | None) -> dict:
    """An SQS event: every message's body names `user_id`, with its md5OfBody to match."""
    if email is not None or any("body" not in record for record in sample["Records"]):
        raise SystemExit(f"events/{name}.json has no email to replace, only user ids")
    if user_id is not None:
        for record in sample["Records"]:
            record["body"] = json.dumps({"userId": user_id}, separators=(",", ":"))
            record["md5OfBody"] = hashlib.md5(record["body"].encode()).hexdigest()
    return sample


def main(argv: list[str] | None = None) -> int:
    names = sorted(path.stem for path in EVENTS.glob("*.json"))
    parser = argparse.ArgumentParser(prog="python -m local.event", description=__doc__.split("\n\n")[0])
    parser.add_argument("name", choices=names)
    parser.add_argument("--id", dest="user_id")
    parser.add_argument("--email")
    args = parser.parse_args(argv)
    print(json.dumps(event(args.name, args.user_id, args.email)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

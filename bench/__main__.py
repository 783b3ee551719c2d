"""The functions at Lambda's operating point, side by side with the floor and the seeds' Node stack:

    .venv/bin/python -m bench [--memory 128 [512 1024]] [--runs 5] [--warm 20] [--batches 100 1000]

Each cold start spawns a fresh process under a Lambda Runtime API: its init runs at full CPU,
then it is moved into a CPU group with the memory size's share of a core for its invocations.
DynamoDB is moto behind a TLS terminator (a local CA the functions trust). Prints one table per
memory size: medians over the runs, errors counted (a 5xx or an unexpected status, a stream
answer with batchItemFailures), and each target of bench/README.md next to its figure.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from local.aws.moto import CREDENTIALS, MotoServer
from local.template import ROOT, Template, target_dir

from .cgroup import CpuShare
from .runtime import MeasuredFunction
from .tls import TlsTerminator, make_ca_and_leaf

EVENTS = ROOT / "events"
NODE = ROOT / "bench" / "node"


def sample(name: str) -> dict:
    return json.loads((EVENTS / f"{name}.json").read_text())


def with_body(event: dict, body: dict) -> dict:
    event = json.loads(json.dumps(event))
    event["body"] = json.dumps(body)
    event["headers"]["content-length"] = str(len(event["body"]))
    return event


def with_id(event: dict, user_id: str) -> dict:
    event = json.loads(json.dumps(event))
    event["pathParameters"] = {"id": user_id}
    event["rawPath"] = event["rawPath"].replace("4cdc3c36-77d0-4ac5-a3f7-4f4b6d3b8f7e", user_id)
    event["requestContext"]["http"]["path"] = event["rawPath"]
    return event


class Data:
    """Users and history the events act on, written straight to moto."""

    def __init__(self, moto: MotoServer):
        self._dynamodb = moto.client("dynamodb")
        self._sequence = 10**20

    def user(self) -> str:
        user_id, email = str(uuid.uuid4()), f"{uuid.uuid4().hex[:12]}@bench.test"
        self._dynamodb.put_item(TableName="UsersTable", Item={
            "id": {"S": user_id}, "timestamp": {"N": "1795327200000"}, "email": {"S": email}})
        self._dynamodb.put_item(TableName="EmailsTable", Item={"email": {"S": email}, "userId": {"S": user_id}})
        return user_id

    def user_with_history(self, entries: int = 5) -> str:
        user_id = self.user()
        for n in range(entries):
            self._dynamodb.put_item(TableName="HistoryTable", Item={
                "userId": {"S": user_id}, "sequenceNumber": {"S": f"{n:040d}"}, "eventName": {"S": "INSERT"},
                "changedAt": {"N": "1795327200"},
                "newImage": {"M": {"id": {"S": user_id}, "timestamp": {"N": "1795327200000"}, "email": {"S": "a@bench.test"}}},
            })
        return user_id

    def welcome_batch(self, size: int) -> dict:
        """An SQS batch of `size` welcome messages for new users, as Lambda delivers it."""
        template = sample("welcome")["Records"][0]
        records = []
        for _ in range(size):
            record = json.loads(json.dumps(template))
            record["messageId"] = str(uuid.uuid4())
            record["body"] = json.dumps({"userId": self.user()}, separators=(",", ":"))
            records.append(record)
        return {"Records": records}

    def batch(self, size: int) -> dict:
        """A stream batch of `size` INSERTs of distinct users, as Lambda delivers it."""
        template = sample("stream")["Records"][0]
        records = []
        for _ in range(size):
            self._sequence += 1
            user_id = str(uuid.uuid4())
            text = json.dumps(template).replace("4cdc3c36-77d0-4ac5-a3f7-4f4b6d3b8f7e", user_id)
            record = json.loads(text)
            record["dynamodb"]["SequenceNumber"] = str(self._sequence)
            records.append(record)
        return {"Records": records}


@dataclass
class Subject:
    name: str
    command: list[str]
    env: dict[str, str]
    event: Callable[[], dict]
    expected_status: int | None  # None: not an HTTP function
    kind: str = "http"  # http | stream | floor


@dataclass
class Figures:
    init_ms: list[float] = field(default_factory=list)
    first_ms: list[float] = field(default_factory=list)
    init_cpu_ms: list[float] = field(default_factory=list)
    first_cpu_ms: list[float] = field(default_factory=list)
    warm_ms: list[float] = field(default_factory=list)
    rss_mb: list[float] = field(default_factory=list)
    requests: list[float] = field(default_factory=list)
    errors: int = 0

    @property
    def cold_ms(self) -> list[float]:
        return [i + f for i, f in zip(self.init_ms, self.first_ms)]


def failed(subject: Subject, invocation) -> bool:
    if invocation.error is not None:
        return True
    payload = invocation.payload
    if subject.kind in ("stream", "queue"):
        return not isinstance(payload, dict) or bool(payload.get("batchItemFailures"))
    if subject.kind == "http":
        return not isinstance(payload, dict) or payload.get("statusCode") != subject.expected_status
    return False


def measure(subject: Subject, share: CpuShare | None, runs: int, warm: int, terminator: TlsTerminator) -> Figures:
    figures = Figures()
    for _ in range(runs):
        function = MeasuredFunction(subject.command, subject.env, share)
        function.start()
        before = terminator.requests
        first = function.invoke(subject.event())
        figures.requests.append(terminator.requests - before)
        figures.errors += failed(subject, first)
        figures.init_ms.append(function.init_ms)
        figures.init_cpu_ms.append(function.init_cpu_ms)
        figures.first_ms.append(first.ms)
        figures.first_cpu_ms.append(first.cpu_ms)
        for _ in range(warm):
            before = terminator.requests
            invocation = function.invoke(subject.event())
            figures.requests.append(terminator.requests - before)
            figures.errors += failed(subject, invocation)
            figures.warm_ms.append(invocation.ms)
        figures.rss_mb.append(function.stop())
    return figures


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def p90(values: list[float]) -> float:
    return statistics.quantiles(values, n=10)[-1] if len(values) >= 2 else median(values)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--memory", type=int, nargs="+", default=[128], help="memory sizes in MB (default 128)")
    parser.add_argument("--runs", type=int, default=5, help="cold starts per subject (default 5)")
    parser.add_argument("--warm", type=int, default=20, help="warm invocations after each cold one (default 20)")
    parser.add_argument("--batches", type=int, nargs="+", default=[100, 1000], help="stream batch sizes (default 100 1000)")
    parser.add_argument("--binaries", type=Path, default=target_dir() / "release",
                        help="where the Rust binaries are (default target/release; built first unless --no-build)")
    parser.add_argument("--no-build", action="store_true", help="use the binaries as they are")
    parser.add_argument("--no-node", action="store_true", help="leave out the Node.js peer")
    args = parser.parse_args(argv)

    if not args.no_build:
        profile = ["--release"] if args.binaries.name == "release" else []
        print(f"bench: cargo build {' '.join(profile)} --bins", flush=True)
        subprocess.run(["cargo", "build", "--workspace", "--bins", "--locked", *profile], cwd=ROOT, check=True)
    node = shutil.which("node")
    with_node = not args.no_node and node is not None and (NODE / "node_modules").exists()
    if not args.no_node and not with_node:
        print("bench: the Node.js peer needs node and `npm ci --prefix bench/node` (scripts/bootstrap does it); leaving it out")

    workdir = Path(tempfile.mkdtemp(prefix="users-bench-"))
    ca, leaf, key = make_ca_and_leaf(workdir)
    template = Template.load()
    with MotoServer() as moto:
        moto.create_resources(template)  # tables, queues, and the welcome sender verified in SES
        welcome_queue = template.refs["WelcomeQueue"]
        terminator = TlsTerminator(moto.port, leaf, key)
        data = Data(moto)
        base = {
            "PATH": os.environ.get("PATH", ""), **CREDENTIALS,
            "AWS_ENDPOINT_URL_DYNAMODB": terminator.endpoint, "AWS_ENDPOINT_URL_SQS": terminator.endpoint,
            "AWS_ENDPOINT_URL_SESV2": terminator.endpoint, "SSL_CERT_FILE": str(ca), "NODE_EXTRA_CA_CERTS": str(ca),
            "USERS_TABLE": "UsersTable", "EMAILS_TABLE": "EmailsTable", "HISTORY_TABLE": "HistoryTable",
            "IDEMPOTENCY_TABLE": "IdempotencyTable", "SENDER_ADDRESS": template.parameters["WelcomeSender"],
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST", "AWS_LAMBDA_LOG_FORMAT": "JSON", "AWS_LAMBDA_LOG_LEVEL": "INFO",
        }
        email = lambda: {"email": f"{uuid.uuid4().hex[:12]}@bench.test"}
        history_user = data.user_with_history()

        def rust(name: str, binary: str, event, status, kind="http") -> Subject:
            return Subject(name, [str(args.binaries / binary)], {**base, "AWS_LAMBDA_FUNCTION_NAME": binary}, event, status, kind)

        def peer(name: str, handler: str, event, status, kind="http") -> Subject:
            return Subject(name, [node, str(NODE / "bootstrap.mjs")], {**base, "AWS_LAMBDA_FUNCTION_NAME": name, "_HANDLER": handler},
                           event, status, kind)

        subjects = [
            rust("floor: no-op Rust function", "bench-noop", lambda: {}, None, "floor"),
            rust("create-user", "create-user", lambda: with_body(sample("create"), email()), 201),
            rust("delete-user", "delete-user", lambda: with_body(sample("delete"), {"id": data.user()}), 200),
            rust("get-user", "get-user", lambda: with_id(sample("get"), data.user()), 200),
            rust("update-user", "update-user", lambda: with_body(with_id(sample("update"), data.user()), email()), 200),
            rust("user-history", "user-history", lambda: with_id(sample("history"), history_user), 200),
        ]
        if with_node:
            subjects += [
                peer("node peer: create", "create", lambda: with_body(sample("create"), email()), 201),
                peer("node peer: delete", "remove", lambda: with_body(sample("delete"), {"id": data.user()}), 200),
            ]
        stream_subjects = []
        for size in args.batches:
            stream_subjects.append(rust(f"user-stream, {size} records", "user-stream", lambda size=size: data.batch(size), None, "stream"))
            if with_node:
                stream_subjects.append(peer(f"node peer: stream, {size} records", "stream", lambda size=size: data.batch(size), None, "stream"))

        # The welcome side: a stream batch of new users forwarded to the welcome queue too, and
        # the welcome function on SQS batches of ten (its BatchSize).
        size = args.batches[0]
        forwarding = rust(f"user-stream + welcome queue, {size} INSERTs", "user-stream", lambda: data.batch(size), None, "stream")
        forwarding.env["WELCOME_QUEUE_URL"] = welcome_queue
        stream_subjects += [
            forwarding,
            rust("welcome-user, 10 messages", "welcome-user", lambda: data.welcome_batch(10), None, "queue"),
        ]

        errors = 0
        for memory in args.memory:
            share = CpuShare(memory)
            if share.error:
                print(f"bench: warning: {share.error}")
            for subject in subjects + stream_subjects:
                subject.env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] = str(memory)
            results = {s.name: measure(s, share, args.runs, args.warm, terminator) for s in subjects}
            stream_results = {s.name: measure(s, share, max(1, args.runs // 2), max(1, args.warm // 10), terminator)
                              for s in stream_subjects}
            share.remove()
            report(memory, share, results, stream_results, args)
            errors += sum(f.errors for f in [*results.values(), *stream_results.values()])
    sizes(args)
    shutil.rmtree(workdir, ignore_errors=True)
    if errors:
        print(f"\nbench: {errors} error answer(s): the figures above include failures")
        return 1
    return 0


def report(memory: int, share: CpuShare, results: dict[str, Figures], stream: dict[str, Figures], args) -> None:
    cpu = "full CPU (no quota)" if share.error else f"{share.fraction:.1%} of a core"
    print(f"\n## {memory} MB: invocations at {cpu}, init at full CPU; DynamoDB over TLS; "
          f"medians of {args.runs} cold starts, {args.warm} warm invocations after each\n")
    floor = results.get("floor: no-op Rust function")
    node_cold = median(results["node peer: create"].cold_ms) if "node peer: create" in results else None
    print("| subject | init ms | first request ms | cold total ms | warm p50 ms | warm p90 ms | "
          "init CPU ms | first request CPU ms | peak RSS MB | errors | targets (128 MB) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    at_target_size = memory == 128
    for name, f in results.items():
        targets = []
        if at_target_size and name in ("create-user", "delete-user", "get-user", "update-user", "user-history"):
            cold = median(f.cold_ms)
            targets.append(f"cold <= 25: {'met' if cold <= 25 else 'NOT met'}")
            if node_cold:
                targets.append(f"{node_cold / cold:.0f}x faster than Node (>= 25x: {'met' if node_cold / cold >= 25 else 'NOT met'})")
            targets.append(f"first CPU <= 3: {'met' if median(f.first_cpu_ms) <= 3 else 'NOT met'}")
            if floor:
                ratio = median(f.init_cpu_ms) / median(floor.init_cpu_ms)
                targets.append(f"init CPU {ratio:.1f}x floor (<= 3x: {'met' if ratio <= 3 else 'NOT met'})")
        print(f"| {name} | {median(f.init_ms):.1f} | {median(f.first_ms):.1f} | {median(f.cold_ms):.1f} | "
              f"{median(f.warm_ms):.1f} | {p90(f.warm_ms):.1f} | {median(f.init_cpu_ms):.1f} | {median(f.first_cpu_ms):.1f} | "
              f"{max(f.rss_mb):.1f} | {f.errors} | {'; '.join(targets)} |")
    if stream:
        print("\n| batch subject | cold batch ms | warm batch ms (median) | DynamoDB + SQS requests per batch | peak RSS MB | errors | targets (128 MB) |")
        print("|---|---|---|---|---|---|---|")
        for name, f in stream.items():
            targets = []
            if at_target_size and name.startswith("user-stream, 100 "):
                warm = median(f.warm_ms)
                targets.append(f"warm <= 100 ms: {'met' if warm <= 100 else 'NOT met'}")
                targets.append(f"requests <= 5: {'met' if median(f.requests) <= 5 else 'NOT met'}")
            if at_target_size and name.startswith("user-stream, 1000 "):
                targets.append(f"RSS <= 16 MB: {'met' if max(f.rss_mb) <= 16 else 'NOT met'}")
            print(f"| {name} | {median(f.cold_ms):.0f} | {median(f.warm_ms):.0f} | {median(f.requests):.0f} | "
                  f"{max(f.rss_mb):.1f} | {f.errors} | {'; '.join(targets)} |")


def sizes(args) -> None:
    built = sorted((ROOT / ".aws-sam" / "build").glob("*/bootstrap"))
    if not built:
        print("\narm64 bootstraps: none yet (`sam build` makes them)")
        return
    print("\n| arm64 bootstrap (sam build) | MB | target <= 4 MB |\n|---|---|---|")
    for bootstrap in built:
        mb = bootstrap.stat().st_size / 1e6
        print(f"| {bootstrap.parent.name} | {mb:.1f} | {'met' if mb <= 4 else 'NOT met'} |")


if __name__ == "__main__":
    sys.exit(main())

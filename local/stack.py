"""The whole system on this machine, from template.yaml:

    python -m local.stack [--port 3000] [--dynamodb-port 8000] [--binaries DIR] [--concurrency 4]

- moto's server as DynamoDB, DynamoDB Streams, SQS, S3 and SES, with the template's tables,
  queues and buckets, and the welcome sender verified;
- every function as its real binary under a local Lambda Runtime API, scaled out as Lambda does:
  up to --concurrency processes of each, so concurrent requests run concurrently (and race);
- the HTTP API's routes on http://127.0.0.1:PORT, as payload format 2.0 events;
- an event source mapping per DynamoDB stream event, with the template's settings; batches it
  gives up on go to the OnFailure destination as Lambda sends them (an S3 bucket gets the whole
  invocation record, records included, under Lambda's key layout);
- an event source mapping per SQS event (the welcome queue), with Lambda's batching and partial
  batch failures; the queue's redrive policy moves what keeps failing to its dead-letter queue.

Stops everything on Ctrl-C or SIGTERM. The binaries must be built first (scripts/run does it).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
import uuid
from pathlib import Path

from .aws.stream_mapping import BatchProcessor, Discarded, StreamPoller, StreamSettings, as_json
from .aws.queue_mapping import QueuePoller, QueueSettings
from .aws.http_api import HttpApi, routes_from
from .aws.jwt_authorizer import DEFAULT_ISSUER_PORT, LOCAL_AUDIENCE, JwtAuthorizer, LocalIssuer, route_scopes
from .aws.moto import REGION, MotoServer
from .processes import Log
from .aws.lambda_runtime import LocalFunction, Outcome
from .template import LOCAL_SENDER, ROOT, FunctionSpec, Template, functions, target_dir

STATE = ROOT / ".local"
# Stream event properties the local event source mapping does not model.
UNSUPPORTED_STREAM_PROPERTIES = {"ParallelizationFactor", "TumblingWindowInSeconds"}
# SQS event properties the local mapping does not model (it runs one batch at a time).
UNSUPPORTED_QUEUE_PROPERTIES = {"FilterCriteria", "ScalingConfig"}
# Execution environments per function: enough for the races two or three clients can cause, few
# enough for a laptop (each is a process of a few MB, started only when the others are busy).
DEFAULT_CONCURRENCY = 4


class Stack:
    def __init__(self, template: Template, port: int, dynamodb_port: int, binaries: Path, log: Log, log_format: str = "template",
                 concurrency: int = DEFAULT_CONCURRENCY, issuer_port: int | None = None,
                 queue_visibility_timeout: int | None = None):
        self.template = template
        self.log = log
        self.moto = MotoServer(port=dynamodb_port, log=STATE / "moto.log")
        self._port = port
        self.binaries = binaries
        self._log_format = log_format
        self._concurrency = concurrency
        # With an issuer port, the API requires tokens as the deployed one does with JwtIssuer.
        self.issuer = LocalIssuer(issuer_port) if issuer_port else None
        self.functions: dict[str, LocalFunction] = {}
        self.api: HttpApi | None = None
        self._queue_visibility_timeout = queue_visibility_timeout
        self.mappings = EventSourceMappings(self.moto, log)

    def start(self) -> None:
        self.moto.start()
        self.log.line("stack", self.moto.create_resources(self.template, self._queue_visibility_timeout))

        specs = functions(self.template)
        for spec in specs:
            binary = self.binaries / spec.binary
            if not binary.exists():
                raise SystemExit(f"{binary} is missing: build it first (cargo build --bins)")
            env = {
                "PATH": os.environ.get("PATH", ""),
                "RUST_LOG": os.environ.get("RUST_LOG", "info"),
                **self.moto.sdk_environment(),
                **spec.environment,
                **self._log_variables(spec),
            }
            function = LocalFunction(spec.name, binary, env, spec.timeout, spec.memory_mb, self.log, tag=spec.binary,
                                     concurrency=self._concurrency)
            function.start()
            self.functions[spec.name] = function

        authorizer = None
        if self.issuer:
            self.issuer.start()
            scopes = route_scopes(self.template.resources["UsersApi"]["Properties"].get("DefinitionBody", {}))
            authorizer = JwtAuthorizer(self.issuer.url, LOCAL_AUDIENCE, self.issuer.jwks_url, scopes)
            self.log.line("stack", f"JWT authorizer on: issuer {self.issuer.url}, audience {LOCAL_AUDIENCE}, "
                                   f"{len(scopes)} route(s) need a token")
        events = {self.functions[s.name]: s.events for s in specs}
        self.api = HttpApi(routes_from(events), "127.0.0.1", self._port, self.log, authorizer)
        self.api.start()

        for spec in specs:
            self.mappings.start_all(self.functions[spec.name], spec)

    def stop(self) -> None:
        self.mappings.stop()
        if self.api:
            self.api.stop()
        if self.issuer:
            self.issuer.stop()
        for function in self.functions.values():
            function.stop()
        self.moto.stop()

    def _log_variables(self, spec: FunctionSpec) -> dict[str, str]:
        """What Lambda sets from the template's LoggingConfig, unless told to use text or JSON."""
        if self._log_format == "text":
            return {}
        if self._log_format == "json":
            return {"AWS_LAMBDA_LOG_FORMAT": "JSON", "AWS_LAMBDA_LOG_LEVEL": spec.logging.get("ApplicationLogLevel", "INFO")}
        return spec.log_environment()

class EventSourceMappings:
    """The template's DynamoDB stream and SQS events as local event source mappings: each polls
    its table's stream or its queue and invokes its function (anything with `tag`, `arn` and
    `invoke(event)`: a function run here, or one that cargo lambda watch runs)."""

    def __init__(self, moto: MotoServer, log: Log):
        self.moto = moto
        self.log = log
        self.pollers: list[StreamPoller | QueuePoller] = []

    def start_all(self, function, spec: FunctionSpec) -> None:
        for event_name, event in spec.events.items():
            if event.get("Type") == "DynamoDB":
                self.start(function, event_name, event.get("Properties", {}))
            elif event.get("Type") == "SQS":
                self.start_queue(function, event_name, event.get("Properties", {}))

    def start_queue(self, function, event_name: str, props: dict) -> None:
        settings = QueueSettings.from_properties(props)
        tag = f"esm:{event_name}"
        for unsupported in sorted(set(props) & UNSUPPORTED_QUEUE_PROPERTIES):
            self.log.line(tag, f"warning: {unsupported} is not emulated locally; it applies only on AWS")
        if not settings.enabled:
            self.log.line(tag, "disabled in template.yaml")
            return
        sqs = self.moto.client("sqs")
        url = sqs.get_queue_url(QueueName=settings.queue)["QueueUrl"]
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]

        def invoke(event: dict):
            outcome = function.invoke(event)
            if outcome.ok and isinstance(outcome.payload, dict) and outcome.payload.get("batchItemFailures"):
                self.log.line(tag, f"batchItemFailures: {[f.get('itemIdentifier') for f in outcome.payload['batchItemFailures']]}")
            return outcome

        poller = QueuePoller(tag, sqs, url, attributes["QueueArn"], REGION, settings, invoke, self.log)
        poller.start()
        self.pollers.append(poller)
        redrive = attributes.get("RedrivePolicy")
        self.log.line(tag, f"{settings.queue} -> {function.tag} (batch {settings.batch_size}, window {settings.batching_window:g}s, "
                           f"visibility timeout {attributes.get('VisibilityTimeout')}s, "
                           f"report failures {settings.report_batch_item_failures}, redrive {redrive or 'none'})")

    def stop(self) -> None:
        for poller in self.pollers:
            poller.stop()

    def start(self, function, event_name: str, props: dict) -> None:
        settings = StreamSettings.from_properties(props)
        tag = f"esm:{event_name}"
        for unsupported in sorted(set(props) & UNSUPPORTED_STREAM_PROPERTIES):
            self.log.line(tag, f"warning: {unsupported} is not emulated locally; it applies only on AWS")
        if settings.on_failure and settings.on_failure_type not in ("S3", "SQS"):
            self.log.line(tag, f"warning: only S3 and SQS on-failure destinations are emulated, not {settings.on_failure_type}")
        if not settings.enabled:
            self.log.line(tag, "disabled in template.yaml")
            return
        table = props["Stream"]["Fn::GetAtt"][0]
        stream_arn = self.moto.client("dynamodb").describe_table(TableName=table)["Table"]["LatestStreamArn"]

        def invoke(event: dict) -> Outcome:
            records = event["Records"]
            self.log.line(tag, f"invoking {function.tag} with {len(records)} record(s) "
                               f"{records[0]['dynamodb']['SequenceNumber']}..{records[-1]['dynamodb']['SequenceNumber']}")
            outcome = function.invoke(event)
            failures = outcome.payload.get("batchItemFailures") if outcome.ok and isinstance(outcome.payload, dict) else None
            if not outcome.ok:
                self.log.line(tag, f"function error: {outcome.error}")
            elif failures:
                self.log.line(tag, f"batchItemFailures: {[f.get('itemIdentifier') for f in failures]}")
            return outcome

        # Lambda names the mapping by a UUID, which the S3 destination's keys start with.
        mapping_uuid = str(uuid.uuid4())

        def discard(discarded: Discarded) -> None:
            self._send_to_destination(tag, settings, discarded, function.arn, stream_arn, mapping_uuid)

        processor = BatchProcessor(settings, invoke, discard)
        poller = StreamPoller(tag, self.moto.client("dynamodbstreams"), stream_arn, settings, processor, self.log)
        poller.start()
        self.pollers.append(poller)
        self.log.line(tag, f"{table} stream -> {function.tag} (batch {settings.batch_size}, window {settings.batching_window:g}s, "
                           f"retries {settings.max_retry_attempts}, bisect {settings.bisect_on_error}, max age {settings.max_record_age}s, "
                           f"on failure {settings.on_failure_type + ' ' + settings.on_failure if settings.on_failure else 'dropped'})")

    def _send_to_destination(self, tag: str, settings: StreamSettings, discarded: Discarded, function_arn: str,
                             stream_arn: str, mapping_uuid: str) -> None:
        message = discarded.invocation_record(function_arn, stream_arn)
        info = message["DDBStreamBatchInfo"]
        summary = f"{message['requestContext']['condition']}: {info['batchSize']} record(s) {info['startSequenceNumber']}..{info['endSequenceNumber']}"
        destination = settings.on_failure
        if not destination:
            self.log.line(tag, f"{summary} dropped (no OnFailure destination)")
            return
        if settings.on_failure_type == "S3":
            key = discarded.s3_key(mapping_uuid)
            body = as_json(discarded.s3_object(function_arn, stream_arn))
            self.moto.client("s3").put_object(Bucket=destination, Key=key, Body=body.encode())
            self.log.line(tag, f"{summary} kept whole in s3://{destination}/{key}")
        else:
            sqs = self.moto.client("sqs")
            sqs.send_message(QueueUrl=sqs.get_queue_url(QueueName=destination)["QueueUrl"], MessageBody=as_json(message))
            self.log.line(tag, f"{summary} sent to {destination}")


def banner(stack: Stack) -> str:
    url = stack.api.url
    endpoint = "" if stack.moto.port == 8000 else f" --endpoint {stack.moto.endpoint}"
    routes = "\n".join(f"  {route.key:<24} -> {route.function.tag}" for route in stack.api.routes)
    auth, bearer = "", ""
    if stack.issuer:
        port = "" if stack.issuer.port == DEFAULT_ISSUER_PORT else f" --issuer-port {stack.issuer.port}"
        auth = f"""
Every route needs a token (reads users/read, writes users/write), as with the template's JwtIssuer:
  TOKEN=$(.venv/bin/python -m local.aws.jwt_authorizer token{port} --scope users/read users/write --sub alice)
"""
        bearer = ' -H "Authorization: Bearer $TOKEN"'
    queue_url = stack.template.refs.get("WelcomeQueue")
    replay = stack.binaries / "replay-failures"
    welcome_queue = f" \\\n      --welcome-queue-url {queue_url}" if queue_url else " --no-welcome"
    return f"""
Users API running at {url}
{routes}
{auth}
Try the lesson:
  curl -s -X POST -d '{{"email": "test@test.com"}}' -H "Content-Type: application/json"{bearer} {url}/create
  curl -s{bearer} {url}/users/<id from create>
  curl -s -X PATCH -d '{{"email": "renamed@test.com"}}' -H "Content-Type: application/json"{bearer} {url}/users/<id>
  curl -s -X POST -d '{{"id": "<id>"}}' -H "Content-Type: application/json"{bearer} {url}/delete
  curl -s{bearer} {url}/users/<id>/history

DynamoDB endpoint: {stack.moto.endpoint} (any credentials, region us-east-1). Look at the data:
  .venv/bin/python -m local.show{endpoint} users            (also: emails, stream, history <id>)
Welcome emails (moto's SES, from {stack.template.parameters.get("WelcomeSender") or "nobody: --welcome-sender is empty"}), each welcome's state, and the DLQ:
  .venv/bin/python -m local.show{endpoint} sent-emails      (also: welcomes, dead-letters)
Stream batches the stream function gave up on, and how to replay them:
  .venv/bin/python -m local.show{endpoint} failures
  {replay} --endpoint {stack.moto.endpoint} --bucket StreamFailureBucket --history-table HistoryTable{welcome_queue}
Press Ctrl-C to stop.
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.stack", description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=3000, help="HTTP API port (default 3000)")
    parser.add_argument("--dynamodb-port", type=int, default=8000, help="moto port (default 8000)")
    parser.add_argument("--binaries", type=Path, default=None,
                        help="where the function binaries are (default: cargo's debug directory, CARGO_TARGET_DIR honoured)")
    parser.add_argument(
        "--log-format", choices=("template", "text", "json"), default="template",
        help="function logs as the template's LoggingConfig says (default: JSON, as on AWS), or text to read in a terminal",
    )
    parser.add_argument(
        "--auth", action="store_true",
        help="require tokens as API Gateway's JWT authorizer does, from a local issuer (print one with: python -m local.aws.jwt_authorizer token)",
    )
    parser.add_argument("--issuer-port", type=int, default=DEFAULT_ISSUER_PORT, help=f"the local issuer's port, with --auth (default {DEFAULT_ISSUER_PORT})")
    parser.add_argument(
        "--concurrency", type=int, default=DEFAULT_CONCURRENCY,
        help=f"execution environments (processes) per function at most, as Lambda scales out (default {DEFAULT_CONCURRENCY}); 1 serialises every function",
    )
    parser.add_argument(
        "--welcome-sender", default=LOCAL_SENDER,
        help=f"the template's WelcomeSender, verified in moto's SES at start (default {LOCAL_SENDER}); empty: no welcome emails, as on AWS",
    )
    parser.add_argument(
        "--queue-visibility-timeout", type=int, default=None,
        help="every queue's visibility timeout in seconds instead of the template's (tests use a few seconds to see retries sooner)",
    )
    args = parser.parse_args(argv)
    if args.binaries is None:
        args.binaries = target_dir() / "debug"
    if args.concurrency < 1:
        parser.error("--concurrency must be at least 1")

    log = Log()
    # A plain list, not a threading.Event: Event.set() takes a lock, which a signal handler
    # can deadlock on when the signal lands while the main thread holds that lock.
    received: list[int] = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda signum, _frame: received.append(signum))

    template = Template.load(parameters={"WelcomeSender": args.welcome_sender})
    stack = Stack(template, args.port, args.dynamodb_port, args.binaries, log, args.log_format, args.concurrency,
                  args.issuer_port if args.auth else None, args.queue_visibility_timeout)
    try:
        try:
            stack.start()
        except (RuntimeError, OSError) as error:
            log.line("stack", f"cannot start: {error}")
            return 1
        print(banner(stack), flush=True)
        log.line("stack", "ready")
        while not received:
            time.sleep(0.1)
        log.line("stack", f"stopping ({signal.Signals(received[0]).name})")
    finally:
        stack.stop()
    log.line("stack", "stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The event source mapping's delivery rules, on synthetic batches and a scripted function."""

import json
import re

from local.aws.stream_mapping import BatchProcessor, Discarded, StreamSettings, lambda_record
from local.aws.lambda_runtime import Outcome

NOW = 1_800_000_000


def records(n, first_seq=100, created=NOW):
    return [
        {"eventName": "INSERT", "dynamodb": {"SequenceNumber": str(first_seq + i), "ApproximateCreationDateTime": created}}
        for i in range(n)
    ]


def seqs(batch):
    return [int(r["dynamodb"]["SequenceNumber"]) for r in batch]


class Function:
    """A stand-in for the stream function: records each batch it got and fails as told."""

    def __init__(self, poison=(), mode="partial"):
        self.poison = {str(p) for p in poison}
        self.mode = mode  # "partial": report failures; "error": fail the invocation
        self.batches = []
        self.done = []

    def __call__(self, event):
        batch = event["Records"]
        self.batches.append(seqs(batch))
        failed = [r["dynamodb"]["SequenceNumber"] for r in batch if r["dynamodb"]["SequenceNumber"] in self.poison]
        if failed and self.mode == "error":
            return Outcome(error={"errorType": "Boom", "errorMessage": "poison"})
        self.done += [s for s in seqs(batch) if str(s) not in self.poison]
        return Outcome(payload={"batchItemFailures": [{"itemIdentifier": s} for s in failed]})


def run(settings, function, batch, clock=lambda: NOW):
    discarded = []
    BatchProcessor(settings, function, discarded.append, clock=clock, wait=lambda _s: None).process(batch)
    return discarded


def test_a_successful_batch_is_delivered_once():
    function = Function()
    assert run(StreamSettings(report_batch_item_failures=True), function, records(5)) == []
    assert function.batches == [[100, 101, 102, 103, 104]]


def test_partial_failure_checkpoints_at_the_lowest_failed_record():
    # Record 102 fails twice, then succeeds: the retries start at 102, never before it.
    function = Function(poison=[102, 104])
    attempts = {"n": 0}

    def flaky(event):
        attempts["n"] += 1
        if attempts["n"] == 3:
            function.poison = set()
        return function(event)

    discarded = run(StreamSettings(report_batch_item_failures=True, max_retry_attempts=5), flaky, records(5))
    assert function.batches == [[100, 101, 102, 103, 104], [102, 103, 104], [102, 103, 104]]
    assert discarded == []


def test_retries_exhausted_discards_from_the_failed_record_and_goes_on():
    function = Function(poison=[102])
    discarded = run(StreamSettings(report_batch_item_failures=True, max_retry_attempts=2), function, records(4))
    # 1 attempt + 2 retries, each from the failed record on.
    assert function.batches == [[100, 101, 102, 103], [102, 103], [102, 103]]
    assert len(discarded) == 1
    assert (seqs(discarded[0].records), discarded[0].condition, discarded[0].invoke_count) == ([102, 103], "RetryAttemptsExhausted", 3)
    assert 101 in function.done and 103 in function.done


def test_zero_retries_discards_at_once():
    function = Function(poison=[100])
    discarded = run(StreamSettings(report_batch_item_failures=True, max_retry_attempts=0), function, records(2))
    assert function.batches == [[100, 101]]
    assert seqs(discarded[0].records) == [100, 101]


def test_without_report_batch_item_failures_a_response_is_success():
    function = Function(poison=[101])
    assert run(StreamSettings(report_batch_item_failures=False, max_retry_attempts=3), function, records(3)) == []
    assert function.batches == [[100, 101, 102]]


def test_unknown_item_identifier_fails_the_whole_batch():
    calls = []

    def bad_identifier(event):
        calls.append(seqs(event["Records"]))
        return Outcome(payload={"batchItemFailures": [{"itemIdentifier": "999"}]})

    discarded = run(StreamSettings(report_batch_item_failures=True, max_retry_attempts=1), bad_identifier, records(3))
    assert calls == [[100, 101, 102], [100, 101, 102]]
    assert seqs(discarded[0].records) == [100, 101, 102]


def test_bisection_isolates_a_record_that_fails_the_invocation():
    function = Function(poison=[105], mode="error")
    settings = StreamSettings(report_batch_item_failures=True, bisect_on_error=True, max_retry_attempts=3)
    discarded = run(settings, function, records(8))
    assert function.batches[:4] == [[100, 101, 102, 103, 104, 105, 106, 107], [100, 101, 102, 103], [104, 105, 106, 107], [104, 105]]
    # The halves without the poison are processed; the poison alone is discarded.
    assert set(function.done) == {100, 101, 102, 103, 104, 106, 107}
    assert [seqs(d.records) for d in discarded] == [[105]]
    assert discarded[0].outcome is not None and not discarded[0].outcome.ok


def test_without_bisection_a_failing_invocation_retries_the_whole_batch():
    function = Function(poison=[101], mode="error")
    discarded = run(StreamSettings(max_retry_attempts=1), function, records(3))
    assert function.batches == [[100, 101, 102], [100, 101, 102]]
    assert seqs(discarded[0].records) == [100, 101, 102]


def test_records_past_their_maximum_age_are_discarded_not_sent():
    function = Function()
    old = records(2, first_seq=100, created=NOW - 120)
    fresh = records(2, first_seq=102, created=NOW - 10)
    discarded = run(StreamSettings(report_batch_item_failures=True, max_record_age=60), function, old + fresh)
    assert function.batches == [[102, 103]]
    assert [(seqs(d.records), d.condition) for d in discarded] == [([100, 101], "RecordAgeExceeded")]


def test_a_retried_record_that_ages_out_is_discarded():
    clock = {"now": NOW}
    function = Function(poison=[100])

    def slow(event):
        clock["now"] += 40  # each attempt takes 40 s
        return function(event)

    settings = StreamSettings(report_batch_item_failures=True, max_record_age=60, max_retry_attempts=-1)
    discarded = run(settings, slow, records(1), clock=lambda: clock["now"])
    assert function.batches == [[100], [100]]
    assert [(seqs(d.records), d.condition) for d in discarded] == [([100], "RecordAgeExceeded")]


def test_on_failure_message_has_lambdas_shape():
    discarded = Discarded(records(3), "RetryAttemptsExhausted", 4, Outcome(payload={}), shard_id="shardId-1")
    message = discarded.invocation_record("arn:fn", "arn:stream")
    assert message["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert message["requestContext"]["approximateInvokeCount"] == 4
    assert message["requestContext"]["functionArn"] == "arn:fn"
    assert message["version"] == "1.0"
    info = message["DDBStreamBatchInfo"]
    assert (info["startSequenceNumber"], info["endSequenceNumber"], info["batchSize"]) == ("100", "102", 3)
    assert (info["shardId"], info["streamArn"]) == ("shardId-1", "arn:stream")
    assert info["approximateArrivalOfFirstRecord"].endswith("Z")
    assert message["responseContext"] == {"statusCode": 200, "executedVersion": "$LATEST"}


def test_an_s3_destination_gets_the_whole_invocation_under_lambdas_key_layout():
    invoked = records(4)
    discarded = Discarded(invoked[1:], "RetryAttemptsExhausted", 4, Outcome(payload={}), shard_id="shardId-1", invoked=invoked)
    kept = discarded.s3_object("arn:fn", "arn:stream")
    # The invocation record, plus the event the function got, records included, as a string.
    assert kept["DDBStreamBatchInfo"]["startSequenceNumber"] == "101"
    assert json.loads(kept["payload"]) == {"Records": invoked}
    key = discarded.s3_key("esm-uuid", now=1795327200.75)
    assert re.fullmatch(r"aws/lambda/esm-uuid/shardId-1/2026/11/22/2026-11-22T06\.00\.00-[0-9a-f-]{36}", key), key
    # Records discarded for their age were never invoked: the payload is the event they would be.
    aged = Discarded(invoked[:2], "RecordAgeExceeded", 0, None, shard_id="shardId-1")
    assert json.loads(aged.s3_object("arn:fn", "arn:stream")["payload"]) == {"Records": invoked[:2]}


def test_settings_come_from_the_template_properties():
    props = {
        "Stream": {"Fn::GetAtt": ["UsersTable", "StreamArn"]},
        "StartingPosition": "LATEST",
        "BatchSize": 10,
        "MaximumBatchingWindowInSeconds": 2,
        "MaximumRetryAttempts": 3,
        "BisectBatchOnFunctionError": True,
        "MaximumRecordAgeInSeconds": 3600,
        "FunctionResponseTypes": ["ReportBatchItemFailures"],
        "FilterCriteria": {"Filters": [{"Pattern": '{"eventName": ["INSERT"]}'}]},
        "DestinationConfig": {"OnFailure": {"Type": "S3", "Destination": {"Fn::GetAtt": ["Kept", "Arn"]}}},
    }
    settings = StreamSettings.from_properties(props)
    assert settings == StreamSettings("LATEST", 10, 2.0, 3, True, 3600, True, [{"eventName": ["INSERT"]}], "Kept", "S3", True)
    defaults = StreamSettings.from_properties({"StartingPosition": "TRIM_HORIZON"})
    assert (defaults.batch_size, defaults.max_retry_attempts, defaults.max_record_age, defaults.report_batch_item_failures) == (100, -1, -1, False)


def test_lambda_record_shape_from_the_streams_api():
    import datetime as dt

    raw = {
        "eventID": "e1", "eventName": "INSERT", "eventVersion": "1.0", "eventSource": "aws:dynamodb", "awsRegion": "us-east-1",
        "dynamodb": {
            "ApproximateCreationDateTime": dt.datetime(2026, 11, 22, 6, 0, 0, 750000, tzinfo=dt.timezone.utc),
            "Keys": {"id": {"S": "u1"}}, "NewImage": {"id": {"S": "u1"}, "blob": {"B": b"\x00\x01"}},
            "SequenceNumber": "1", "SizeBytes": 10, "StreamViewType": "NEW_AND_OLD_IMAGES",
        },
    }
    record = lambda_record(raw, "arn:stream")
    assert record["dynamodb"]["ApproximateCreationDateTime"] == 1795327200  # whole seconds
    assert record["dynamodb"]["NewImage"]["blob"] == {"B": "AAE="}
    assert (record["eventSourceARN"], record["eventVersion"]) == ("arn:stream", "1.1")

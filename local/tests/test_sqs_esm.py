"""The local SQS event source mapping's rules: which messages of a handled batch Lambda deletes,
the event's shape, and the settings read from the template."""

from local.aws.lambda_runtime import Outcome
from local.aws.queue_mapping import QueueSettings, lambda_message, messages_to_delete
from local.template import Template

BATCH = [{"messageId": f"m{n}", "receiptHandle": f"r{n}"} for n in range(3)]


def ids(messages: list[dict]) -> list[str]:
    return [m["messageId"] for m in messages]


def test_reported_failures_stay_and_the_rest_is_deleted():
    outcome = Outcome(payload={"batchItemFailures": [{"itemIdentifier": "m1"}]})
    assert ids(messages_to_delete(BATCH, outcome, True)) == ["m0", "m2"]
    assert ids(messages_to_delete(BATCH, Outcome(payload={"batchItemFailures": []}), True)) == ["m0", "m1", "m2"]
    assert ids(messages_to_delete(BATCH, Outcome(payload=None), True)) == ["m0", "m1", "m2"]


def test_a_function_error_or_an_invalid_response_fails_the_whole_batch():
    assert messages_to_delete(BATCH, Outcome(error={"errorType": "Panic"}), True) == []
    for payload in ({"batchItemFailures": [{"itemIdentifier": "unknown"}]},
                    {"batchItemFailures": [{"itemIdentifier": ""}]},
                    {"batchItemFailures": [{}]},
                    {"batchItemFailures": "m1"},
                    "not a batch response", ["m1"]):
        assert messages_to_delete(BATCH, Outcome(payload=payload), True) == [], payload


def test_without_report_batch_item_failures_a_success_deletes_everything():
    outcome = Outcome(payload={"batchItemFailures": [{"itemIdentifier": "m1"}]})
    assert ids(messages_to_delete(BATCH, outcome, False)) == ["m0", "m1", "m2"]


def test_a_received_message_becomes_lambdas_record():
    record = lambda_message({"MessageId": "id", "ReceiptHandle": "rh", "Body": '{"userId":"u"}',
                             "Attributes": {"ApproximateReceiveCount": "2", "SentTimestamp": "1", "Other": "x"}},
                            "arn:aws:sqs:us-east-1:123456789012:WelcomeQueue", "us-east-1")
    assert record == {
        "messageId": "id", "receiptHandle": "rh", "body": '{"userId":"u"}',
        "attributes": {"ApproximateReceiveCount": "2", "SentTimestamp": "1"}, "messageAttributes": {},
        "md5OfBody": "ef4ada76475b8a3a5889e5556e331d9b", "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:WelcomeQueue", "awsRegion": "us-east-1",
    }


def test_the_settings_come_from_the_template():
    props = Template.load().resources["WelcomeUserFunction"]["Properties"]["Events"]["WelcomeQueue"]["Properties"]
    settings = QueueSettings.from_properties(props)
    assert (settings.queue, settings.batch_size, settings.batching_window, settings.report_batch_item_failures,
            settings.enabled) == ("WelcomeQueue", 10, 1.0, True, True)
    assert not QueueSettings.from_properties({**props, "Enabled": "false"}).enabled

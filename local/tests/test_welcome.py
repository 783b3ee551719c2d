"""End to end through scripts/run's stack (python -m local.stack): every new user gets exactly
one welcome email, across duplicates, retries, refusals and deletes; a malformed message ends in
the dead-letter queue while the rest of its batch is handled.

One stack for the module, with a 2 s visibility timeout (the template's is 60 s) so retries come
back within the test. SES's faults are moto's own: an unverified sender (MessageRejected naming
it, retried) and a malformed address (refused for good). Needs the debug binaries.
"""

from __future__ import annotations

import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from local.harness import RunningStack
from local.aws.moto import free_port
from local.template import LOCAL_SENDER, Template

VISIBILITY_TIMEOUT = 2
MAX_RECEIVE_COUNT = int(Template.load().resources["WelcomeQueue"]["Properties"]["RedrivePolicy"]["maxReceiveCount"])


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    running = RunningStack(tmp_path_factory.mktemp("welcome") / "stack.log", free_port(), free_port(),
                           extra_args=("--queue-visibility-timeout", str(VISIBILITY_TIMEOUT)))
    yield running
    assert running.stop() == 0


def address(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}@example.org"


def create(stack: RunningStack, email: str) -> str:
    status, body = stack.post("/create", {"email": email})
    assert status == 201, body
    return body["id"]


def wait_until(condition, timeout: float = 30, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"{what} not met within {timeout}s")


def one_email_to(stack: RunningStack, email: str, user_id: str) -> dict:
    """Waits for the welcome to `email`, then checks over two more visibility timeouts that it
    stays the only one."""
    wait_until(lambda: stack.sent_emails(to=email), what=f"an email to {email}")
    time.sleep(2 * VISIBILITY_TIMEOUT + 1)
    [sent] = stack.sent_emails(to=email)
    assert sent["from"] == LOCAL_SENDER
    assert user_id in sent["body"], sent
    return sent


def welcome_state(stack: RunningStack, user_id: str) -> dict | None:
    item = stack.aws("dynamodb").get_item(TableName="IdempotencyTable", Key={"key": {"S": f"welcome#{user_id}"}},
                                          ConsistentRead=True).get("Item")
    return {k: next(iter(v.values())) for k, v in item.items()} if item else None


def queue_url(stack: RunningStack, name: str) -> str:
    return stack.aws("sqs").get_queue_url(QueueName=name)["QueueUrl"]


def test_a_new_user_gets_exactly_one_email_naming_its_id(stack):
    email = address("one")
    user_id = create(stack, email)
    sent = one_email_to(stack, email, user_id)
    assert sent["subject"] == "Welcome"
    assert welcome_state(stack, user_id)["outcome"] == "sent"
    # The queue carried the id, never the address: the stream function's log says so too.
    assert email not in stack.output()


def test_twenty_users_created_at_once_get_twenty_emails(stack):
    emails = [address(f"crowd{n}") for n in range(20)]
    with ThreadPoolExecutor(max_workers=20) as pool:
        ids = list(pool.map(lambda email: create(stack, email), emails))
    wait_until(lambda: all(stack.sent_emails(to=email) for email in emails), timeout=60, what="20 emails")
    time.sleep(2 * VISIBILITY_TIMEOUT + 1)
    for email, user_id in zip(emails, ids):
        [sent] = stack.sent_emails(to=email)
        assert user_id in sent["body"]


def test_the_same_message_delivered_again_and_at_once_sends_one_email(stack):
    sqs = stack.aws("sqs")
    url = queue_url(stack, "WelcomeQueue")
    # GIVEN a user whose INSERT is forwarded by the stream function, and three more copies of
    # its message sent at the same moment (one batch: they race for the claim)
    email = address("twice")
    user_id = str(uuid.uuid4())
    stack.aws("dynamodb").put_item(TableName="UsersTable", Item={
        "id": {"S": user_id}, "email": {"S": email}, "timestamp": {"N": str(int(time.time() * 1000))}})
    body = json.dumps({"userId": user_id})
    sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": str(n), "MessageBody": body} for n in range(3)])
    # THEN one email; and a copy delivered after it is done is skipped
    one_email_to(stack, email, user_id)
    offset = len(stack.output())
    sqs.send_message(QueueUrl=url, MessageBody=body)
    stack.wait_for_output('outcome="already handled"', after=offset)
    time.sleep(VISIBILITY_TIMEOUT)
    assert len(stack.sent_emails(to=email)) == 1


def failures_of(stack: RunningStack, user_id: str, after: int) -> int:
    """How many times the welcome function left this user's message on the queue."""
    return sum(1 for line in stack.output()[after:].splitlines()
               if "welcome message left on the queue" in line and f'user_id="{user_id}"' in line)


def test_ses_failing_for_a_while_is_retried_and_sends_once_and_a_deleted_user_gets_nothing(stack):
    sesv2 = stack.aws("sesv2")
    # GIVEN SES refusing the sender (its identity not verified: SES names the sender, so the
    # welcome function retries instead of recording a refusal)
    sesv2.delete_email_identity(EmailIdentity=LOCAL_SENDER)
    try:
        kept, gone = address("kept"), address("gone")
        offset = len(stack.output())
        kept_id, gone_id = create(stack, kept), create(stack, gone)
        # WHEN each welcome fails on two receives, one user is deleted meanwhile, and SES comes back
        wait_until(lambda: failures_of(stack, kept_id, offset) >= 2 and failures_of(stack, gone_id, offset) >= 2,
                   what="two failed receives of each message")
        assert (welcome_state(stack, kept_id) or {}).get("status") != "DONE"
        assert stack.post("/delete", {"id": gone_id})[0] == 200
    finally:
        sesv2.create_email_identity(EmailIdentity=LOCAL_SENDER)
    # THEN the kept user gets one email, the deleted one none
    one_email_to(stack, kept, kept_id)
    wait_until(lambda: (welcome_state(stack, gone_id) or {}).get("outcome") == "user gone", what="the deleted user skipped")
    assert stack.sent_emails(to=gone) == []
    assert welcome_state(stack, kept_id)["outcome"] == "sent"


def test_a_permanent_refusal_is_recorded_and_not_retried(stack):
    # GIVEN a stored user whose address is no address (old or foreign data): refused for good
    # without asking SES (the SES sandbox's refusal of an unverified recipient, recorded the
    # same way, is in tests/tests/welcome.rs)
    user_id = str(uuid.uuid4())
    offset = len(stack.output())
    stack.aws("dynamodb").put_item(TableName="UsersTable", Item={
        "id": {"S": user_id}, "email": {"S": "no-domain"}, "timestamp": {"N": "1"}})
    # THEN the refusal is recorded, the message is done (not retried, not in the DLQ)
    wait_until(lambda: (welcome_state(stack, user_id) or {}).get("outcome", "").startswith("refused"), what="the refusal")
    assert welcome_state(stack, user_id)["outcome"] == "refused: InvalidAddress"
    # The message was deleted, not left to come back: after three visibility timeouts it has
    # been handled once and the queue holds nothing, visible or in flight.
    time.sleep(3 * VISIBILITY_TIMEOUT)
    assert stack.output().count('outcome="refused"', offset) == 1
    attributes = stack.aws("sqs").get_queue_attributes(
        QueueUrl=queue_url(stack, "WelcomeQueue"),
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    assert attributes == {"ApproximateNumberOfMessages": "0", "ApproximateNumberOfMessagesNotVisible": "0"}
    assert stack.sent_emails(to="no-domain") == []


def peek(stack: RunningStack, queue: str) -> list[dict]:
    answer = stack.aws("sqs").receive_message(QueueUrl=queue_url(stack, queue), MaxNumberOfMessages=10,
                                              VisibilityTimeout=0, AttributeNames=["All"])
    return answer.get("Messages", [])


def test_a_malformed_message_goes_to_the_dlq_while_the_rest_of_its_batch_is_handled(stack):
    first, second = address("batch1"), address("batch2")
    ids = [create(stack, first), create(stack, second)]
    one_email_to(stack, first, ids[0])
    one_email_to(stack, second, ids[1])
    sqs = stack.aws("sqs")
    offset = len(stack.output())
    # GIVEN one batch: a malformed message between two good ones (already welcomed users)
    sent = sqs.send_message_batch(QueueUrl=queue_url(stack, "WelcomeQueue"), Entries=[
        {"Id": "0", "MessageBody": json.dumps({"userId": ids[0]})},
        {"Id": "1", "MessageBody": "not a welcome message"},
        {"Id": "2", "MessageBody": json.dumps({"userId": ids[1]})},
    ])
    bad_id = next(entry["MessageId"] for entry in sent["Successful"] if entry["Id"] == "1")
    # THEN the good ones are handled once, the malformed one alone is failed, and after
    # maxReceiveCount receives SQS moves it to the dead-letter queue
    stack.wait_for_output(f"batchItemFailures: ['{bad_id}']", after=offset)
    dead = wait_until(lambda: [m for m in peek(stack, "WelcomeDeadLetterQueue") if m["MessageId"] == bad_id],
                      timeout=(MAX_RECEIVE_COUNT + 3) * VISIBILITY_TIMEOUT + 10, what="the malformed message in the DLQ")
    assert dead[0]["Body"] == "not a welcome message"
    assert int(dead[0]["Attributes"]["ApproximateReceiveCount"]) >= MAX_RECEIVE_COUNT
    assert stack.output().count('outcome="already handled"', offset) >= 2
    assert len(stack.sent_emails(to=first)) == 1 and len(stack.sent_emails(to=second)) == 1

//! The stream function forwarding new users to the welcome queue: only INSERTs, only the id, ten
//! to a SendMessageBatch, and a record reported failed unless SQS acknowledged its message.

use aws_sdk_sqs::operation::send_message_batch::SendMessageBatchOutput;
use aws_sdk_sqs::types::{BatchResultErrorEntry, SendMessageBatchResultEntry};
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use integration_tests::{Local, consumer_failures, registered_user, unique_email};
use serde_json::{Value, json};
use user_stream::{StreamConsumer, WelcomeQueue};
use users_core::{Email, UserId};

fn sequence_number(record: &Value) -> String {
    record["dynamodb"]["SequenceNumber"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn only_new_users_are_forwarded_and_only_by_id() {
    let local = Local::connect().await;
    let users = local.users();
    let (first, second) = (unique_email("fwd1"), unique_email("fwd2"));
    let renamed = registered_user(&users, &first).await;
    users
        .change_email(renamed.id, Email::parse(&unique_email("fwd3")).unwrap())
        .await
        .unwrap();
    users.delete(renamed.id).await.unwrap();
    let created = registered_user(&users, &second).await;
    let records = local.stream_records_of(&[renamed.id, created.id]).await;
    assert_eq!(records.len(), 4);

    let queue = local.new_queue("forwarding").await;
    let consumer = StreamConsumer::new(local.history())
        .with_welcome(WelcomeQueue::new(local.sqs.clone(), queue.clone()));
    assert!(consumer_failures(&consumer, records).await.is_empty());

    let mut bodies = local.drain(&queue).await;
    bodies.sort();
    let mut expected = vec![
        json!({"userId": renamed.id}).to_string(),
        json!({"userId": created.id}).to_string(),
    ];
    expected.sort();
    assert_eq!(bodies, expected, "one message per INSERT, the id alone");
}

#[tokio::test]
async fn a_queue_that_cannot_be_reached_fails_the_inserts_and_nothing_else() {
    let local = Local::connect().await;
    let users = local.users();
    let user = registered_user(&users, &unique_email("noqueue")).await;
    users.delete(user.id).await.unwrap();
    let records = local.stream_records_of(&[user.id]).await;
    let [insert, remove] = [&records[0], &records[1]];
    assert_eq!(
        (insert["eventName"].as_str(), remove["eventName"].as_str()),
        (Some("INSERT"), Some("REMOVE"))
    );

    let missing = format!("{}-gone", local.new_queue("deleted").await);
    let consumer = StreamConsumer::new(local.history())
        .with_welcome(WelcomeQueue::new(local.sqs.clone(), missing));
    assert_eq!(
        consumer_failures(&consumer, records.clone()).await,
        [sequence_number(insert)]
    );
    // The history has both all the same: a retry writes the same items again.
    assert_eq!(local.history().entries_for(user.id).await.unwrap().len(), 2);
}

#[tokio::test]
async fn a_message_sqs_failed_or_did_not_mention_fails_its_record_across_requests_of_ten() {
    // GIVEN 12 new users (two SendMessageBatch requests: 10 and 2) and an SQS that fails each
    // request's entry "0" and leaves out entry "1"
    let local = Local::connect().await;
    let users = local.users();
    let mut ids: Vec<UserId> = Vec::new();
    for n in 0..12 {
        ids.push(
            registered_user(&users, &unique_email(&format!("batch{n}")))
                .await
                .id,
        );
    }
    let records = local.stream_records_of(&ids).await;
    let half_acknowledged =
        mock!(aws_sdk_sqs::Client::send_message_batch).then_compute_output(|input| {
            let mut output = SendMessageBatchOutput::builder()
                .set_successful(Some(Vec::new()))
                .set_failed(Some(Vec::new()));
            for entry in input.entries() {
                match entry.id() {
                    "0" => {
                        output = output.failed(
                            BatchResultErrorEntry::builder()
                                .id("0")
                                .code("InternalError")
                                .sender_fault(false)
                                .build()
                                .unwrap(),
                        )
                    }
                    "1" => {}
                    id => {
                        output = output.successful(
                            SendMessageBatchResultEntry::builder()
                                .id(id)
                                .message_id(format!("m-{id}"))
                                .md5_of_message_body("x")
                                .build()
                                .unwrap(),
                        )
                    }
                }
            }
            output.build().unwrap()
        });
    let sqs = mock_client!(aws_sdk_sqs, RuleMode::MatchAny, &[&half_acknowledged]);
    let consumer =
        StreamConsumer::new(local.history()).with_welcome(WelcomeQueue::new(sqs, "queue-url"));

    // THEN the records of users 0, 1, 10 and 11 are reported, in stream order
    let failed = consumer_failures(&consumer, records.clone()).await;
    assert_eq!(half_acknowledged.num_calls(), 2);
    let expected: Vec<String> = [0, 1, 10, 11]
        .into_iter()
        .map(|n| sequence_number(&records[n]))
        .collect();
    assert_eq!(failed, expected);
}

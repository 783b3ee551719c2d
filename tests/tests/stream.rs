//! The stream consumer on records read from the users table's real stream (DynamoDB Streams
//! API), turned into the batch Lambda delivers, and on the sample batch in `events/`.

use aws_lambda_events::event::streams::DynamoDbEventResponse;
use aws_sdk_dynamodb::types::AttributeValue;
use integration_tests::{Local, event_path, http_request, registered_user, unique_email};
use lambda_runtime::{Context, LambdaEvent};
use serde_json::{Value, json};
use user_stream::StreamBatch;
use user_stream::StreamConsumer;
use users_core::{EpochSeconds, HistoryImage, HistoryRepository, UserId, sortable_sequence_number};

async fn run_stream(
    history: &HistoryRepository,
    records: Vec<Value>,
) -> Result<Vec<String>, String> {
    let event = LambdaEvent::new(StreamBatch { records }, Context::default());
    let response: DynamoDbEventResponse =
        user_stream::handle(&StreamConsumer::new(history.clone()), event)
            .await
            .map_err(|e| e.to_string())?;
    Ok(response
        .batch_item_failures
        .into_iter()
        .map(|failure| failure.item_identifier.unwrap_or_default())
        .collect())
}

fn sequence_number(record: &Value) -> String {
    record["dynamodb"]["SequenceNumber"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn user_id_of(record: &Value) -> String {
    record["dynamodb"]["Keys"]["id"]["S"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn the_lesson_on_the_real_stream_is_recorded_and_a_poison_record_is_reported() {
    let local = Local::connect().await;
    let history = local.history();

    // GIVEN: alice created and deleted, bob created, through the real handlers ...
    let alice = registered_user(&local.users(), &unique_email("alice")).await;
    let bob = registered_user(&local.users(), &unique_email("bob")).await;
    let request = http_request(
        "POST",
        "/delete",
        &json!({"id": alice.id.to_string()}).to_string(),
    );
    assert_eq!(
        delete_user::handle(&local.users(), request)
            .await
            .unwrap()
            .status(),
        200
    );
    // ... and an item written behind the API's back that is no valid user (no timestamp).
    let poison_id = UserId::random();
    local
        .dynamodb
        .put_item()
        .table_name(&local.tables.users)
        .item("id", AttributeValue::S(poison_id.to_string()))
        .item("email", AttributeValue::S("poison@test.com".into()))
        .send()
        .await
        .unwrap();

    // The stream holds every test's records: keep this test's, in stream order.
    let ours = [
        alice.id.to_string(),
        bob.id.to_string(),
        poison_id.to_string(),
    ];
    let batch: Vec<Value> = local
        .users_stream_records()
        .await
        .into_iter()
        .filter(|record| ours.contains(&user_id_of(record)))
        .collect();
    let names: Vec<&str> = batch
        .iter()
        .map(|r| r["eventName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["INSERT", "INSERT", "REMOVE", "INSERT"]);
    let poison_sequence = sequence_number(&batch[3]);

    // WHEN the stream function gets the batch
    let failures = run_stream(&history, batch.clone()).await.unwrap();

    // THEN only the poison record is reported, and the records around it are recorded
    assert_eq!(failures, std::slice::from_ref(&poison_sequence));
    let alice_history = history.entries_for(alice.id).await.unwrap();
    let summary: Vec<(&str, Option<&HistoryImage>, Option<&HistoryImage>)> = alice_history
        .iter()
        .map(|e| {
            (
                e.event_name.as_str(),
                e.old_image.as_ref(),
                e.new_image.as_ref(),
            )
        })
        .collect();
    // Alice was deleted in this batch: her history keeps what changed and when, not her email.
    let erased = HistoryImage {
        email: None,
        ..HistoryImage::from(&alice)
    };
    assert_eq!(
        summary,
        [
            ("INSERT", None, Some(&erased)),
            ("REMOVE", Some(&erased), None)
        ]
    );
    assert_eq!(
        alice_history[0].sequence_number,
        sortable_sequence_number(&sequence_number(&batch[0]))
    );
    let bob_history = history.entries_for(bob.id).await.unwrap();
    assert_eq!(bob_history.len(), 1);
    assert_eq!(
        bob_history[0].new_image.as_ref(),
        Some(&HistoryImage::from(&bob))
    );
    assert!(history.entries_for(poison_id).await.unwrap().is_empty());

    // WHEN Lambda retries the same batch THEN the history is unchanged
    let again = run_stream(&history, batch).await.unwrap();
    assert_eq!(again, [poison_sequence]);
    assert_eq!(history.entries_for(alice.id).await.unwrap(), alice_history);
    assert_eq!(history.entries_for(bob.id).await.unwrap(), bob_history);
}

#[tokio::test]
async fn a_dynamodb_failure_reports_every_affected_record() {
    let local = Local::connect().await;
    let sample: Value =
        serde_json::from_str(&std::fs::read_to_string(event_path("stream.json")).unwrap()).unwrap();
    let records = sample["Records"].as_array().unwrap().clone();
    let expected: Vec<String> = records.iter().map(sequence_number).collect();

    // GIVEN a history table that does not exist
    let broken = HistoryRepository::new(local.dynamodb.clone(), "NoSuchHistoryTable");
    // THEN no record is reported as done
    assert_eq!(run_stream(&broken, records).await.unwrap(), expected);
}

#[tokio::test]
async fn a_malformed_record_fails_alone() {
    let local = Local::connect().await;
    let sample: Value =
        serde_json::from_str(&std::fs::read_to_string(event_path("stream.json")).unwrap()).unwrap();
    let mut records = sample["Records"].as_array().unwrap().clone();
    let id = UserId::random().to_string();
    for record in records.iter_mut() {
        // A fresh user id, so this test's history is its own (history is keyed by user id).
        let text = record
            .to_string()
            .replace("4cdc3c36-77d0-4ac5-a3f7-4f4b6d3b8f7e", &id);
        *record = serde_json::from_str(&text).unwrap();
    }
    // The middle record lacks SizeBytes, which aws_lambda_events cannot deserialise.
    records[1]["dynamodb"]
        .as_object_mut()
        .unwrap()
        .remove("SizeBytes");
    let broken_sequence = sequence_number(&records[1]);

    let failures = run_stream(&local.history(), records).await.unwrap();

    assert_eq!(failures, [broken_sequence]);
    let entries = local
        .history()
        .entries_for(UserId::parse(&id).unwrap())
        .await
        .unwrap();
    let names: Vec<&str> = entries.iter().map(|e| e.event_name.as_str()).collect();
    assert_eq!(names, ["INSERT", "REMOVE"]);
}

#[tokio::test]
async fn a_failed_record_without_a_sequence_number_fails_the_batch() {
    let local = Local::connect().await;
    let record = json!({"eventName": "INSERT", "dynamodb": {"Keys": {}}});
    let result = run_stream(&local.history(), vec![record]).await;
    assert!(result.unwrap_err().contains("no SequenceNumber"));
}

#[tokio::test]
async fn the_sample_stream_event_is_handled() {
    let local = Local::connect().await;
    let json = std::fs::read_to_string(event_path("stream.json")).unwrap();
    // Parsed exactly as the runtime parses the payload Lambda sends.
    let batch: StreamBatch = serde_json::from_str(&json).unwrap();
    assert_eq!(batch.records.len(), 3);

    let failures = run_stream(&local.history(), batch.records).await.unwrap();

    assert!(failures.is_empty(), "{failures:?}");
    let id = UserId::parse("4cdc3c36-77d0-4ac5-a3f7-4f4b6d3b8f7e").unwrap();
    let entries = local.history().entries_for(id).await.unwrap();
    let names: Vec<&str> = entries.iter().map(|e| e.event_name.as_str()).collect();
    assert_eq!(names, ["INSERT", "MODIFY", "REMOVE"]);
    // The user is deleted in this very batch: none of its emails is kept.
    assert!(
        entries.iter().all(|entry| !entry.holds_email()),
        "{entries:?}"
    );
    assert_eq!(
        entries[1].old_image.as_ref().unwrap().timestamp.0,
        1_520_547_428_623
    );
    assert_eq!(entries[2].changed_at, EpochSeconds(1_795_327_203));
}

/// Every file in `events/` is exercised by a test; a new file needs a test too.
#[test]
fn every_sample_event_has_a_test() {
    let mut files: Vec<String> = std::fs::read_dir(event_path(""))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    files.sort();
    assert_eq!(
        files,
        [
            "create-base64.json",
            "create.json",
            "delete.json",
            "get.json",
            "history.json",
            "stream.json",
            "update.json",
            "welcome.json"
        ]
    );
}

#[tokio::test]
async fn a_large_batch_is_recorded_in_several_batch_writes_and_a_replay_changes_nothing() {
    let local = Local::connect().await;
    let sample: Value =
        serde_json::from_str(&std::fs::read_to_string(event_path("stream.json")).unwrap()).unwrap();
    // 60 INSERTs of distinct users: three BatchWriteItem requests (25 + 25 + 10).
    let ids: Vec<UserId> = (0..60).map(|_| UserId::random()).collect();
    let records: Vec<Value> = ids
        .iter()
        .enumerate()
        .map(|(n, id)| {
            let text = sample["Records"][0]
                .to_string()
                .replace("4cdc3c36-77d0-4ac5-a3f7-4f4b6d3b8f7e", &id.to_string());
            let mut record: Value = serde_json::from_str(&text).unwrap();
            record["dynamodb"]["SequenceNumber"] = json!(format!("{}", 5_000_000 + n));
            record
        })
        .collect();

    assert_eq!(
        run_stream(&local.history(), records.clone()).await.unwrap(),
        Vec::<String>::new()
    );
    let mut recorded = Vec::new();
    for id in &ids {
        let entries = local.history().entries_for(*id).await.unwrap();
        assert_eq!(entries.len(), 1, "{id}");
        recorded.push(entries);
    }

    // Lambda retries a batch from a failed record: the same records again change nothing.
    assert_eq!(
        run_stream(&local.history(), records).await.unwrap(),
        Vec::<String>::new()
    );
    for (id, before) in ids.iter().zip(recorded) {
        assert_eq!(local.history().entries_for(*id).await.unwrap(), before);
    }
}

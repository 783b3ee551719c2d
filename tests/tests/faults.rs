//! DynamoDB answers moto never gives, scripted with the SDK's own mocking crate
//! (`aws-smithy-mocks`): transactions cancelled for throttling, conflicts or a mix, and batch
//! writes that leave puts unprocessed. The real handlers and repositories run on a mocked client.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::batch_write_item::BatchWriteItemOutput;
use aws_sdk_dynamodb::operation::get_item::GetItemOutput;
use aws_sdk_dynamodb::operation::transact_write_items::{
    TransactWriteItemsError, TransactWriteItemsOutput,
};
use aws_sdk_dynamodb::types::error::TransactionCanceledException;
use aws_sdk_dynamodb::types::{AttributeValue, CancellationReason, WriteRequest};
use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};
use integration_tests::{
    create, delete, event_path, status_and_json, stream_failures, user_route_request,
};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use user_stream::StreamBatch;
use users_core::{HistoryRepository, TableNames, UserRepository};

const ID: &str = "4cdc3c36-77d0-4ac5-a3f7-4f4b6d3b8f7e";
const HISTORY_TABLE: &str = "History";

fn retry_later() -> Value {
    json!({"message": "service temporarily unavailable, please retry"})
}

fn internal_error() -> Value {
    json!({"message": "internal error"})
}

fn users_on(rules: &[&Rule]) -> UserRepository {
    let client: Client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, rules);
    UserRepository::new(
        client,
        TableNames {
            users: "Users".into(),
            emails: "Emails".into(),
        },
    )
}

/// A transaction cancelled with these per-item reason codes.
fn cancelled(codes: &[&str]) -> TransactWriteItemsError {
    let reasons = codes
        .iter()
        .map(|code| CancellationReason::builder().code(*code).build())
        .collect();
    TransactWriteItemsError::TransactionCanceledException(
        TransactionCanceledException::builder()
            .message(format!("Transaction cancelled, please refer cancellation reasons for specific reasons [{}]", codes.join(", ")))
            .set_cancellation_reasons(Some(reasons))
            .build(),
    )
}

/// Every transaction cancelled with these reasons.
fn always_cancelled(codes: &'static [&'static str]) -> Rule {
    mock!(Client::transact_write_items).then_error(move || cancelled(codes))
}

/// Cancelled with these reasons `times` times, then committed.
fn cancelled_then_committed(codes: &'static [&'static str], times: usize) -> Rule {
    mock!(Client::transact_write_items)
        .sequence()
        .error(move || cancelled(codes))
        .times(times)
        .output(|| TransactWriteItemsOutput::builder().build())
        .repeatedly()
        .build()
}

/// Reads of the users table find the user of the sample events.
fn stored_user() -> Rule {
    mock!(Client::get_item).then_output(|| {
        GetItemOutput::builder()
            .item("id", AttributeValue::S(ID.into()))
            .item("timestamp", AttributeValue::N("1520547428623".into()))
            .item("email", AttributeValue::S("test@test.com".into()))
            .build()
    })
}

async fn patch(users: &UserRepository) -> (u16, Value) {
    let body = json!({"email": "new@test.com"}).to_string();
    let request = user_route_request("PATCH", "/users/{id}", ID, &[], Some(&body));
    status_and_json(&update_user::handle(users, request).await.unwrap())
}

async fn delete_sample(users: &UserRepository) -> (u16, Value) {
    delete(users, &json!({"id": ID}).to_string()).await
}

const CREATE: &str = r#"{"email": "test@test.com"}"#;

#[tokio::test]
async fn a_create_throttled_inside_its_transaction_is_retried_then_answers_503() {
    let transaction = always_cancelled(&["None", "ThrottlingError"]);
    let users = users_on(&[&transaction]);
    assert_eq!(create(&users, CREATE).await, (503, retry_later()));
    // Sent again with backoff, not given up on at the first cancellation.
    assert_eq!(transaction.num_calls(), 4);
}

#[tokio::test]
async fn a_create_throttled_once_succeeds_on_its_retry() {
    let transaction = cancelled_then_committed(&["ProvisionedThroughputExceeded", "None"], 1);
    let users = users_on(&[&transaction]);
    let (status, body) = create(&users, CREATE).await;
    assert_eq!((status, &body["email"]), (201, &json!("test@test.com")));
    assert_eq!(transaction.num_calls(), 2);
}

#[tokio::test]
async fn every_throttling_reason_of_a_patch_or_delete_answers_503() {
    for reason in [
        "ThrottlingError",
        "ProvisionedThroughputExceeded",
        "RequestLimitExceeded",
    ] {
        let codes: &'static [&'static str] = Box::leak(Box::new(["None", reason, "None"]));
        let (read, transaction) = (stored_user(), always_cancelled(codes));
        let users = users_on(&[&read, &transaction]);
        assert_eq!(patch(&users).await, (503, retry_later()), "{reason}");
        let codes: &'static [&'static str] = Box::leak(Box::new([reason, "None"]));
        let (read, transaction) = (stored_user(), always_cancelled(codes));
        let users = users_on(&[&read, &transaction]);
        assert_eq!(
            delete_sample(&users).await,
            (503, retry_later()),
            "{reason}"
        );
    }
}

#[tokio::test]
async fn conflicting_and_mixed_cancellations_are_retried_then_answer_503() {
    // A conflict, then a throttle, then it goes through.
    let transaction = mock!(Client::transact_write_items)
        .sequence()
        .error(|| cancelled(&["TransactionConflict", "None"]))
        .error(|| cancelled(&["None", "ThrottlingError"]))
        .output(|| TransactWriteItemsOutput::builder().build())
        .build();
    let users = users_on(&[&transaction]);
    assert_eq!(create(&users, CREATE).await.0, 201);
    assert_eq!(transaction.num_calls(), 3);

    // Conflicts, or conflicts mixed with throttles, every time: retried, then "please retry".
    let (read, transaction) = (
        stored_user(),
        always_cancelled(&["TransactionConflict", "None", "None"]),
    );
    let users = users_on(&[&read, &transaction]);
    assert_eq!(patch(&users).await, (503, retry_later()));
    assert_eq!(transaction.num_calls(), 4);

    let (read, transaction) = (
        stored_user(),
        always_cancelled(&["TransactionConflict", "ThrottlingError"]),
    );
    let users = users_on(&[&read, &transaction]);
    assert_eq!(delete_sample(&users).await, (503, retry_later()));
    assert_eq!(transaction.num_calls(), 4);
}

#[tokio::test]
async fn a_failed_condition_is_decided_again_after_reading_again() {
    // The user changed between the delete's read and its write (the read returns it as it now
    // is): the delete reads again and deletes it, instead of answering 404.
    let (read, transaction) = (
        stored_user(),
        cancelled_then_committed(&["ConditionalCheckFailed", "None"], 1),
    );
    let users = users_on(&[&read, &transaction]);
    let (status, body) = delete_sample(&users).await;
    assert_eq!((status, &body["id"]), (200, &json!(ID)));
    assert_eq!((read.num_calls(), transaction.num_calls()), (2, 2));
}

#[tokio::test]
async fn a_failed_condition_beside_an_unchecked_item_is_sent_again_not_decided_on() {
    // The release's condition failed while the user's own item conflicted: that is no proof the
    // emails table gives the email to someone else, so the transaction is sent again as it was
    // (with the release), not rebuilt to leave the claim alone.
    let sent: Arc<Mutex<Vec<Vec<bool>>>> = Arc::default();
    let log = Arc::clone(&sent);
    let transaction = mock!(Client::transact_write_items)
        .match_requests(move |input| {
            let releases = input
                .transact_items()
                .iter()
                .map(|item| item.delete().is_some());
            log.lock().unwrap().push(releases.collect());
            true
        })
        .sequence()
        .error(|| cancelled(&["TransactionConflict", "ConditionalCheckFailed"]))
        .output(|| TransactWriteItemsOutput::builder().build())
        .build();
    let read = stored_user();
    let users = users_on(&[&read, &transaction]);
    assert_eq!(delete_sample(&users).await.0, 200);
    assert_eq!(*sent.lock().unwrap(), [[true, true], [true, true]]);
}

#[tokio::test]
async fn a_transaction_still_in_progress_is_a_503() {
    // The SDK's retry of a transaction whose first attempt DynamoDB is still running.
    let transaction = mock!(Client::transact_write_items).then_error(|| {
        TransactWriteItemsError::TransactionInProgressException(
            aws_sdk_dynamodb::types::error::TransactionInProgressException::builder()
                .message("Transaction is in progress")
                .build(),
        )
    });
    let users = users_on(&[&transaction]);
    assert_eq!(create(&users, CREATE).await, (503, retry_later()));
}

#[tokio::test]
async fn a_cancellation_for_any_other_reason_is_a_500() {
    let transaction = always_cancelled(&["ValidationError", "None"]);
    let users = users_on(&[&transaction]);
    assert_eq!(create(&users, CREATE).await, (500, internal_error()));
    assert_eq!(transaction.num_calls(), 1);
    let (read, transaction) = (
        stored_user(),
        always_cancelled(&[
            "ConditionalCheckFailed",
            "ItemCollectionSizeLimitExceeded",
            "None",
        ]),
    );
    let users = users_on(&[&read, &transaction]);
    assert_eq!(patch(&users).await, (500, internal_error()));
}

// --- The history writer: BatchWriteItem's UnprocessedItems. ---

/// The keys (userId, sequenceNumber) of the puts of every BatchWriteItem sent, in order.
type SentKeys = Arc<Mutex<Vec<Vec<String>>>>;

fn key_of(request: &WriteRequest) -> String {
    let item = request.put_request().expect("a put").item();
    format!(
        "{}/{}",
        item["userId"].as_s().unwrap(),
        item["sequenceNumber"]
            .as_s()
            .unwrap()
            .trim_start_matches('0')
    )
}

/// A history repository whose BatchWriteItem answers with `unprocessed(sent puts, call number)`
/// as UnprocessedItems, recording what each call sent.
fn history_on(
    unprocessed: impl Fn(&[WriteRequest], usize) -> HashMap<String, Vec<WriteRequest>>
    + Send
    + Sync
    + 'static,
) -> (HistoryRepository, SentKeys, Rule) {
    let sent: SentKeys = Arc::default();
    let log = Arc::clone(&sent);
    let rule = mock!(Client::batch_write_item).then_compute_output(move |input| {
        let puts = input.request_items().unwrap()[HISTORY_TABLE].clone();
        let call = {
            let mut log = log.lock().unwrap();
            log.push(puts.iter().map(key_of).collect());
            log.len()
        };
        BatchWriteItemOutput::builder()
            .set_unprocessed_items(Some(unprocessed(&puts, call)))
            .build()
    });
    // The erasure check after the writes: nobody in the batch was deleted before.
    let no_markers = mock!(Client::batch_get_item).then_output(|| {
        aws_sdk_dynamodb::operation::batch_get_item::BatchGetItemOutput::builder().build()
    });
    let client: Client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&rule, &no_markers]);
    (HistoryRepository::new(client, HISTORY_TABLE), sent, rule)
}

/// events/stream.json's user created and changed twice (its INSERT, its MODIFY, and that
/// MODIFY again as the third record): changes of a user who still exists, so that only
/// BatchWriteItem (and the erasure check) is asked.
async fn run_sample_batch(history: &HistoryRepository) -> Vec<String> {
    let json = std::fs::read_to_string(event_path("stream.json")).unwrap();
    let mut batch: StreamBatch = serde_json::from_str(&json).unwrap();
    let mut third = batch.records[1].clone();
    third["dynamodb"]["SequenceNumber"] = json!(SEQUENCE_NUMBERS[2]);
    third["eventID"] = json!("00000000000000000000000000000003");
    batch.records[2] = third;
    stream_failures(history, batch.records).await
}

const SEQUENCE_NUMBERS: [&str; 3] = [
    "100000000000000000000000001",
    "100000000000000000000000002",
    "100000000000000000000000003",
];

fn keys(sequence_numbers: &[&str]) -> Vec<String> {
    sequence_numbers
        .iter()
        .map(|n| format!("{ID}/{n}"))
        .collect()
}

#[tokio::test]
async fn puts_left_unprocessed_are_sent_again_and_only_they() {
    // The first answer leaves the MODIFY unprocessed; the second processes everything.
    let (history, sent, _rule) = history_on(|puts, call| match call {
        1 => HashMap::from([(HISTORY_TABLE.to_owned(), vec![puts[1].clone()])]),
        _ => HashMap::new(),
    });
    assert_eq!(run_sample_batch(&history).await, Vec::<String>::new());
    assert_eq!(
        *sent.lock().unwrap(),
        [keys(&SEQUENCE_NUMBERS), keys(&SEQUENCE_NUMBERS[1..2])]
    );
}

#[tokio::test]
async fn puts_that_stay_unprocessed_are_reported_and_the_rest_recorded() {
    // The third is left unprocessed every time; the other two are written at the first try.
    let (history, sent, _rule) = history_on(|puts, _| {
        let third = puts.iter().find(|put| key_of(put).ends_with("3")).cloned();
        HashMap::from([(HISTORY_TABLE.to_owned(), third.into_iter().collect())])
    });
    assert_eq!(run_sample_batch(&history).await, [SEQUENCE_NUMBERS[2]]);
    assert_eq!(sent.lock().unwrap().len(), 4, "sent four times in all");

    // Everything unprocessed every time: every record is reported.
    let (history, _, _rule) =
        history_on(|puts, _| HashMap::from([(HISTORY_TABLE.to_owned(), puts.to_vec())]));
    assert_eq!(run_sample_batch(&history).await, SEQUENCE_NUMBERS);
}

#[tokio::test]
async fn an_unprocessed_put_that_differs_from_what_was_sent_is_still_matched_by_its_key() {
    // DynamoDB hands back the INSERT's put with an attribute changed (as a number comes back
    // in another notation, say): the same key, so the same record, and it was not written.
    let (history, sent, _rule) = history_on(|puts, _| {
        let mut altered = puts[0].put_request().unwrap().item().clone();
        altered.insert(
            "changedAt".into(),
            AttributeValue::N("1795327201.000".into()),
        );
        let put = aws_sdk_dynamodb::types::PutRequest::builder()
            .set_item(Some(altered))
            .build()
            .unwrap();
        HashMap::from([(
            HISTORY_TABLE.to_owned(),
            vec![WriteRequest::builder().put_request(put).build()],
        )])
    });
    assert_eq!(run_sample_batch(&history).await, [SEQUENCE_NUMBERS[0]]);
    assert_eq!(sent.lock().unwrap()[1], keys(&SEQUENCE_NUMBERS[..1]));
}

#[tokio::test]
async fn unprocessed_writes_that_match_none_of_ours_fail_closed() {
    // An answer naming another table (or a request without our key) cannot be matched to a
    // record: nothing is known written, so the whole chunk is sent again, then reported.
    let (history, sent, _rule) =
        history_on(|puts, _| HashMap::from([("SomeOtherTable".to_owned(), vec![puts[0].clone()])]));
    assert_eq!(run_sample_batch(&history).await, SEQUENCE_NUMBERS);
    let sent = sent.lock().unwrap();
    assert_eq!(sent.len(), 4);
    assert!(sent.iter().all(|keys_sent| keys_sent.len() == 3));
}

#[tokio::test]
async fn an_unprocessed_put_with_a_key_we_did_not_send_fails_closed() {
    // A well-formed key that is none of ours (here: the sequence number without its padding)
    // says nothing about which of ours were written.
    let (history, sent, _rule) = history_on(|puts, _| {
        let mut foreign = puts[0].put_request().unwrap().item().clone();
        foreign.insert(
            "sequenceNumber".into(),
            AttributeValue::S(SEQUENCE_NUMBERS[0].into()),
        );
        let put = aws_sdk_dynamodb::types::PutRequest::builder()
            .set_item(Some(foreign))
            .build()
            .unwrap();
        HashMap::from([(
            HISTORY_TABLE.to_owned(),
            vec![WriteRequest::builder().put_request(put).build()],
        )])
    });
    assert_eq!(run_sample_batch(&history).await, SEQUENCE_NUMBERS);
    assert_eq!(sent.lock().unwrap().len(), 4);
}

#[tokio::test]
async fn a_batch_write_that_fails_outright_reports_every_record_of_its_chunk() {
    let rule = mock!(Client::batch_write_item).then_error(|| {
        aws_sdk_dynamodb::operation::batch_write_item::BatchWriteItemError::ResourceNotFoundException(
            aws_sdk_dynamodb::types::error::ResourceNotFoundException::builder()
                .message("Requested resource not found")
                .build(),
        )
    });
    // The markers are still checked: a write that failed on the way back may have been applied.
    let no_markers = mock!(Client::batch_get_item).then_output(|| {
        aws_sdk_dynamodb::operation::batch_get_item::BatchGetItemOutput::builder().build()
    });
    let client: Client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&rule, &no_markers]);
    let history = HistoryRepository::new(client, HISTORY_TABLE);
    assert_eq!(run_sample_batch(&history).await, SEQUENCE_NUMBERS);
}

#[tokio::test]
async fn records_whose_erasure_check_fails_are_reported_not_counted() {
    // The puts succeed, but the markers cannot be read: whether a user was deleted meanwhile
    // (and an address must not stay) is unknown, so no record counts as recorded.
    let written =
        mock!(Client::batch_write_item).then_output(|| BatchWriteItemOutput::builder().build());
    let unreadable = mock!(Client::batch_get_item).then_error(|| {
        aws_sdk_dynamodb::operation::batch_get_item::BatchGetItemError::ResourceNotFoundException(
            aws_sdk_dynamodb::types::error::ResourceNotFoundException::builder()
                .message("Requested resource not found")
                .build(),
        )
    });
    let client: Client = mock_client!(
        aws_sdk_dynamodb,
        RuleMode::MatchAny,
        [&written, &unreadable]
    );
    let history = HistoryRepository::new(client, HISTORY_TABLE);
    assert_eq!(run_sample_batch(&history).await, SEQUENCE_NUMBERS);
    assert_eq!(unreadable.num_calls(), 1);
    // And what was written is written again without emails: forgetting is the safe side.
    assert_eq!(written.num_calls(), 2);
}

/// A client whose history calls are logged in order: `write <sort keys>`, `query`, `check`.
fn logged_history(fail_writes: bool) -> (HistoryRepository, Arc<Mutex<Vec<String>>>) {
    let log: Arc<Mutex<Vec<String>>> = Arc::default();
    let (writes, queries, checks) = (Arc::clone(&log), Arc::clone(&log), Arc::clone(&log));
    let write = mock!(Client::batch_write_item).then_compute_response(move |input| {
        let keys: Vec<String> = input.request_items().unwrap()[HISTORY_TABLE]
            .iter()
            .map(|put| {
                let key = put.put_request().unwrap().item()["sequenceNumber"].as_s().unwrap();
                key.trim_start_matches('0').to_owned()
            })
            .collect();
        writes.lock().unwrap().push(format!("write {}", keys.join(" ")));
        if fail_writes {
            aws_smithy_mocks::MockResponse::Error(
                aws_sdk_dynamodb::operation::batch_write_item::BatchWriteItemError::ResourceNotFoundException(
                    aws_sdk_dynamodb::types::error::ResourceNotFoundException::builder().build(),
                ),
            )
        } else {
            aws_smithy_mocks::MockResponse::Output(BatchWriteItemOutput::builder().build())
        }
    });
    let query = mock!(Client::query).then_compute_output(move |_| {
        queries.lock().unwrap().push("query".into());
        aws_sdk_dynamodb::operation::query::QueryOutput::builder().build()
    });
    let check = mock!(Client::batch_get_item).then_compute_output(move |_| {
        checks.lock().unwrap().push("check".into());
        aws_sdk_dynamodb::operation::batch_get_item::BatchGetItemOutput::builder().build()
    });
    let client: Client = mock_client!(
        aws_sdk_dynamodb,
        RuleMode::MatchAny,
        [&write, &query, &check]
    );
    (HistoryRepository::new(client, HISTORY_TABLE), log)
}

/// events/stream.json as it is: INSERT, MODIFY and REMOVE of one user.
async fn run_deleting_batch(history: &HistoryRepository) -> Vec<String> {
    let json = std::fs::read_to_string(event_path("stream.json")).unwrap();
    let batch: StreamBatch = serde_json::from_str(&json).unwrap();
    stream_failures(history, batch.records).await
}

#[tokio::test]
async fn a_deleted_users_marker_is_written_before_its_entries_are_read_and_its_records_after() {
    // The order the erasure's correctness rests on: marker, then the read of what to erase,
    // then this batch's entries (written without emails, so no check is needed).
    let (history, log) = logged_history(false);
    assert_eq!(run_deleting_batch(&history).await, Vec::<String>::new());
    let numbers: Vec<String> = SEQUENCE_NUMBERS.iter().map(|n| n.to_string()).collect();
    assert_eq!(
        *log.lock().unwrap(),
        [
            "write ~erased".to_owned(),
            "query".into(),
            format!("write {}", numbers.join(" "))
        ]
    );
}

#[tokio::test]
async fn a_remove_whose_erasure_fails_reports_every_record_of_its_user_and_writes_none() {
    let (history, log) = logged_history(true);
    assert_eq!(run_deleting_batch(&history).await, SEQUENCE_NUMBERS);
    // Only the marker was tried: none of the user's entries was written.
    assert_eq!(*log.lock().unwrap(), ["write ~erased"]);
}

//! A DynamoDB that accepts connections and never answers (a hung endpoint, a black-holed path):
//! every function still answers before its invocation's deadline. The HTTP functions answer 503
//! JSON; the stream function reports every record it could not record.

use aws_lambda_events::event::streams::DynamoDbEventResponse;
use integration_tests::{Local, http_request, local_aws_config, status_and_json};
use lambda_http::RequestExt;
use lambda_runtime::{Context, LambdaEvent};
use serde_json::{Value, json};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::net::TcpListener;
use user_stream::StreamBatch;
use user_stream::StreamConsumer;
use users_core::{HistoryRepository, UserId, UserRepository, dynamodb_timeouts};

/// How long each invocation has. Shorter than the template's Timeout to keep the tests quick;
/// the functions work from whatever deadline Lambda gives them.
const TIME_LEFT: Duration = Duration::from_secs(4);

/// A TCP server that accepts every connection and never reads or writes a byte.
async fn hung_endpoint() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    format!("http://{address}")
}

/// An SDK client with the functions' own timeouts, for an endpoint.
async fn client_for(endpoint: &str) -> aws_sdk_dynamodb::Client {
    let aws = local_aws_config(endpoint).await;
    let config = aws_sdk_dynamodb::config::Builder::from(&aws)
        .timeout_config(dynamodb_timeouts())
        .build();
    aws_sdk_dynamodb::Client::from_conf(config)
}

/// A Lambda context whose deadline is `TIME_LEFT` from now, and that deadline.
fn context_with_deadline() -> (Context, Instant) {
    let deadline = SystemTime::now() + TIME_LEFT;
    let mut context = Context::default();
    context.deadline = deadline.duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
    (context, Instant::now() + TIME_LEFT)
}

#[tokio::test]
async fn create_and_delete_answer_503_before_the_deadline() {
    let local = Local::connect().await;
    let users = UserRepository::new(
        client_for(&hung_endpoint().await).await,
        local.tables.clone(),
    );
    let unavailable = json!({"message": "service temporarily unavailable, please retry"});

    // WHEN /create meets a DynamoDB that never answers
    let (context, deadline) = context_with_deadline();
    let request = http_request("POST", "/create", r#"{"email": "hung@test.com"}"#)
        .with_lambda_context(context);
    let response = create_user::handle(&users, integration_tests::fixed_clock, request)
        .await
        .unwrap();
    // THEN it answers 503 JSON before the deadline
    assert!(
        Instant::now() < deadline,
        "create answered after the deadline"
    );
    assert_eq!(status_and_json(&response), (503, unavailable.clone()));

    let (context, deadline) = context_with_deadline();
    let body = json!({"id": UserId::random().to_string()}).to_string();
    let request = http_request("POST", "/delete", &body).with_lambda_context(context);
    let response = delete_user::handle(&users, request).await.unwrap();
    assert!(
        Instant::now() < deadline,
        "delete answered after the deadline"
    );
    assert_eq!(status_and_json(&response), (503, unavailable));
}

#[tokio::test]
async fn the_stream_function_reports_every_record_before_the_deadline() {
    let history = HistoryRepository::new(client_for(&hung_endpoint().await).await, "HistoryTable");
    let sample: Value = serde_json::from_str(
        &std::fs::read_to_string(integration_tests::event_path("stream.json")).unwrap(),
    )
    .unwrap();
    // 120 records of a user who is not deleted (its INSERT and MODIFY, again and again): five
    // BatchWriteItem requests, more than the function sends at once (four), so one waits for a
    // free slot, and the writes themselves (not an erasure) meet the hung endpoint.
    let records: Vec<Value> = (0..120)
        .map(|n| {
            let mut record = sample["Records"][n % 2].clone();
            record["dynamodb"]["SequenceNumber"] = json!(format!("{}", 1000 + n));
            record
        })
        .collect();
    let expected: Vec<String> = (0..120).map(|n| format!("{}", 1000 + n)).collect();

    let (context, deadline) = context_with_deadline();
    let event = LambdaEvent::new(StreamBatch { records }, context);
    let response: DynamoDbEventResponse =
        user_stream::handle(&StreamConsumer::new(history.clone()), event)
            .await
            .unwrap();

    assert!(
        Instant::now() < deadline,
        "the batch was answered after the deadline"
    );
    let mut reported: Vec<String> = response
        .batch_item_failures
        .into_iter()
        .map(|failure| failure.item_identifier.unwrap_or_default())
        .collect();
    reported.sort();
    assert_eq!(reported, expected);
}

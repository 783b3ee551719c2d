//! Fixtures for the integration tests: SDK clients for the local DynamoDB that
//! `python -m local.testenv` starts (moto's server, with the tables of template.yaml), Lambda
//! events built from the files in `events/`, and the conversion of records read through the
//! DynamoDB Streams API into the batch shape Lambda delivers.

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodbstreams::types::{Record, ShardIteratorType};
use lambda_http::{Body, Request, Response};
use serde_json::{Value, json};
use std::path::PathBuf;
use users_core::table::{self, required_env};
use users_core::{HistoryRepository, TableNames, UserId, UserRepository};

/// Everything a test needs to talk to the local DynamoDB.
pub struct Local {
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub streams: aws_sdk_dynamodbstreams::Client,
    pub tables: TableNames,
    pub history_table: String,
}

impl Local {
    /// Connects to the endpoint in `AWS_ENDPOINT_URL_DYNAMODB`.
    ///
    /// # Panics
    /// When the tests were not started through `scripts/test` (or `python -m local.testenv`).
    pub async fn connect() -> Self {
        assert!(
            std::env::var_os("AWS_ENDPOINT_URL_DYNAMODB").is_some(),
            "integration tests need the local DynamoDB: run scripts/test, or \
             `.venv/bin/python -m local.testenv -- cargo test`"
        );
        let aws = aws_config::load_from_env().await;
        Self {
            dynamodb: aws_sdk_dynamodb::Client::new(&aws),
            streams: aws_sdk_dynamodbstreams::Client::new(&aws),
            tables: TableNames::from_env(),
            history_table: required_env("HISTORY_TABLE"),
        }
    }

    pub fn users(&self) -> UserRepository {
        UserRepository::new(self.dynamodb.clone(), self.tables.clone())
    }

    /// The id of the user who owns `email` in the emails table, if any.
    pub async fn email_owner(&self, email: &str) -> Option<UserId> {
        let item = self
            .dynamodb
            .get_item()
            .table_name(&self.tables.emails)
            .key(table::EMAIL, AttributeValue::S(email.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .expect("read the emails table")
            .item?;
        let owner = item.get(table::EMAIL_OWNER)?.as_s().ok()?;
        Some(UserId::parse(owner).expect("a user id"))
    }

    pub fn history(&self) -> HistoryRepository {
        HistoryRepository::new(self.dynamodb.clone(), self.history_table.clone())
    }

    /// Every record of the users table's stream so far, read through the Streams API from
    /// TRIM_HORIZON, as Lambda-shaped JSON records.
    pub async fn users_stream_records(&self) -> Vec<Value> {
        let table = self
            .dynamodb
            .describe_table()
            .table_name(&self.tables.users)
            .send()
            .await
            .expect("describe users table");
        let stream_arn = table
            .table()
            .and_then(|t| t.latest_stream_arn())
            .expect("the users table has a stream")
            .to_owned();
        let stream = self
            .streams
            .describe_stream()
            .stream_arn(&stream_arn)
            .send()
            .await
            .expect("describe stream");
        let shards = stream
            .stream_description()
            .map(|d| d.shards().to_vec())
            .unwrap_or_default();
        let mut records = Vec::new();
        for shard in shards {
            // A fresh iterator per page, after the last record read: moto undoes a cancelled
            // transaction (another test's 409) by swapping in a copy of the table, which
            // strands older iterators on a dead copy of the shard.
            let mut last: Option<String> = None;
            loop {
                let position = match &last {
                    None => self
                        .streams
                        .get_shard_iterator()
                        .shard_iterator_type(ShardIteratorType::TrimHorizon),
                    Some(sequence_number) => self
                        .streams
                        .get_shard_iterator()
                        .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                        .sequence_number(sequence_number),
                };
                let iterator = position
                    .stream_arn(&stream_arn)
                    .shard_id(shard.shard_id().unwrap_or_default())
                    .send()
                    .await
                    .expect("shard iterator")
                    .shard_iterator;
                let page = self
                    .streams
                    .get_records()
                    .set_shard_iterator(iterator)
                    .send()
                    .await
                    .expect("get records");
                let Some(newest) = page.records().last() else {
                    break;
                };
                last = newest
                    .dynamodb()
                    .and_then(|d| d.sequence_number())
                    .map(str::to_owned);
                records.extend(page.records().iter().map(|r| lambda_record(r, &stream_arn)));
            }
        }
        records
    }
}

/// A record from the Streams API in the shape Lambda delivers it. Lambda sends whole seconds
/// for ApproximateCreationDateTime (moto has fractions) and always adds eventSourceARN.
pub fn lambda_record(record: &Record, stream_arn: &str) -> Value {
    let change = record.dynamodb().expect("stream record has a body");
    let item = |image: Option<&std::collections::HashMap<String, _>>| {
        image.map(|image| {
            serde_json::to_value(serde_dynamo::Item::from(image.clone())).expect("image as JSON")
        })
    };
    let mut dynamodb = json!({
        "ApproximateCreationDateTime": change.approximate_creation_date_time().map(|t| t.secs()),
        "Keys": item(change.keys()),
        "SequenceNumber": change.sequence_number(),
        "SizeBytes": change.size_bytes(),
        "StreamViewType": change.stream_view_type().map(|t| t.as_str()),
    });
    if let Some(new) = item(change.new_image()) {
        dynamodb["NewImage"] = new;
    }
    if let Some(old) = item(change.old_image()) {
        dynamodb["OldImage"] = old;
    }
    json!({
        "eventID": record.event_id(),
        "eventName": record.event_name().map(|n| n.as_str()),
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": record.aws_region(),
        "dynamodb": dynamodb,
        "eventSourceARN": stream_arn,
    })
}

/// The path of a file under `events/`.
pub fn event_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../events")
        .join(name)
}

/// An HTTP API event file as lambda_http hands it to a handler.
pub fn http_event_file(name: &str) -> Request {
    let json = std::fs::read_to_string(event_path(name)).expect("read event file");
    lambda_http::request::from_str(&json).expect("an API Gateway event")
}

/// `events/create.json` (a real HTTP API v2 request) with another method, path and body.
pub fn http_request(method: &str, path: &str, body: &str) -> Request {
    let mut event: Value =
        serde_json::from_str(&std::fs::read_to_string(event_path("create.json")).expect("read"))
            .expect("JSON");
    event["routeKey"] = json!(format!("{method} {path}"));
    event["rawPath"] = json!(path);
    event["requestContext"]["http"]["method"] = json!(method);
    event["requestContext"]["http"]["path"] = json!(path);
    event["headers"]["content-length"] = json!(body.len().to_string());
    event["body"] = json!(body);
    lambda_http::request::from_str(&event.to_string()).expect("an API Gateway event")
}

/// A response's status and JSON body, checking that the body is declared as JSON.
pub fn status_and_json(response: &Response<Body>) -> (u16, Value) {
    assert_eq!(
        response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap_or_default()),
        Some("application/json"),
        "every response is JSON"
    );
    let body = serde_json::from_slice(response.body().as_ref()).expect("a JSON body");
    (response.status().as_u16(), body)
}

/// An email no other test uses.
pub fn unique_email(label: &str) -> String {
    format!("{label}-{}@test.com", UserId::random())
}

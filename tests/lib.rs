//! Fixtures for the integration tests: SDK clients for a local DynamoDB (moto's server, with
//! the tables of template.yaml), the handlers called as API Gateway would call them, Lambda
//! events built from the files in `events/`, and the conversion of records read through the
//! DynamoDB Streams API into the batch shape Lambda delivers.
//!
//! The local DynamoDB is the one `python -m local.testenv -- cargo test` (scripts/test) starts;
//! under a bare `cargo test`, the first test starts one itself through `local.testenv --serve`,
//! for the life of the test process.

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_dynamodb::config::Credentials;
use aws_sdk_dynamodbstreams::types::{Record, ShardIteratorType};
use lambda_http::{Body, Request, Response};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use users_core::{
    HistoryRepository, IdempotencyStore, TableNames, Timestamp, User, UserId, UserRepository,
};

/// The time the fixed clock of these tests reads.
pub const NOW: Timestamp = Timestamp(1_795_327_200_123);

pub fn fixed_clock() -> Timestamp {
    NOW
}

/// Where the local DynamoDB listens and what the template's variables name its tables.
struct LocalDynamoDb {
    endpoint: String,
    variables: HashMap<String, String>,
    /// The `local.testenv --serve` process, if this test process started it. Its standard input
    /// stays open while the test process lives; it stops moto when that pipe closes.
    _server: Option<Child>,
}

impl LocalDynamoDb {
    fn get() -> &'static Self {
        static LOCAL: OnceLock<LocalDynamoDb> = OnceLock::new();
        LOCAL.get_or_init(|| Self::from_env().unwrap_or_else(Self::start))
    }

    /// The one `python -m local.testenv -- cargo test` started, as its variables describe it.
    fn from_env() -> Option<Self> {
        let endpoint = std::env::var("AWS_ENDPOINT_URL_DYNAMODB").ok()?;
        let variables = [
            "USERS_TABLE",
            "EMAILS_TABLE",
            "HISTORY_TABLE",
            "STREAM_FAILURE_BUCKET",
            "IDEMPOTENCY_TABLE",
            "SENDER_ADDRESS",
        ]
        .into_iter()
        .filter_map(|name| Some((name.to_owned(), std::env::var(name).ok()?)))
        .collect();
        Some(Self {
            endpoint,
            variables,
            _server: None,
        })
    }

    /// Starts one for this test process with `local.testenv --serve`, which prints the
    /// endpoint and table variables as one JSON line.
    fn start() -> Self {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let python = root.join(".venv/bin/python");
        assert!(
            python.exists(),
            "integration tests need the local DynamoDB from the project's Python environment: \
             run scripts/bootstrap once (or scripts/test, which runs everything)"
        );
        let mut child = Command::new(python)
            .args(["-m", "local.testenv", "--serve"])
            .current_dir(&root)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start python -m local.testenv --serve");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().expect("piped stdout"))
            .read_line(&mut line)
            .expect("read the local DynamoDB's address");
        let described: Value = serde_json::from_str(&line)
            .unwrap_or_else(|_| panic!("local.testenv --serve printed {line:?}"));
        let variables: HashMap<String, String> =
            serde_json::from_value(described["variables"].clone()).expect("table variables");
        Self {
            endpoint: variables["AWS_ENDPOINT_URL_DYNAMODB"].clone(),
            variables,
            _server: Some(child),
        }
    }

    fn variable(&self, name: &str) -> String {
        self.variables
            .get(name)
            .cloned()
            .unwrap_or_else(|| panic!("the local environment has no {name}"))
    }
}

/// A plain HTTP/1.0 GET of a local URL (moto's own API), its body.
fn http_get(url: &str) -> String {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").expect("a local http URL");
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let mut stream = std::net::TcpStream::connect(host).expect("connect to moto");
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").expect("send a request");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read the answer");
    let (head, body) = answer.split_once("\r\n\r\n").expect("an HTTP answer");
    assert!(
        head.starts_with("HTTP/1.") && head.contains(" 200 "),
        "{head}"
    );
    body.to_owned()
}

/// An SDK configuration for a local endpoint: moto takes any credentials.
pub async fn local_aws_config(endpoint: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("local", "local", None, None, "tests"))
        .load()
        .await
}

/// Everything a test needs to talk to the local DynamoDB.
pub struct Local {
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub streams: aws_sdk_dynamodbstreams::Client,
    /// Path-style, as a local endpoint needs.
    pub s3: aws_sdk_s3::Client,
    pub tables: TableNames,
    pub history_table: String,
    /// The bucket the stream mapping keeps the batches it gave up on in.
    pub failure_bucket: String,
    pub sqs: aws_sdk_sqs::Client,
    pub sesv2: aws_sdk_sesv2::Client,
    pub idempotency_table: String,
    /// The welcome emails' sender, verified in moto's SES.
    pub sender: String,
    endpoint: String,
}

impl Local {
    /// Connects to the local DynamoDB, starting it first if this process has none yet.
    pub async fn connect() -> Self {
        let local = LocalDynamoDb::get();
        let aws = local_aws_config(&local.endpoint).await;
        Self {
            dynamodb: aws_sdk_dynamodb::Client::new(&aws),
            streams: aws_sdk_dynamodbstreams::Client::new(&aws),
            s3: aws_sdk_s3::Client::from_conf(
                aws_sdk_s3::config::Builder::from(&aws)
                    .force_path_style(true)
                    .build(),
            ),
            tables: TableNames {
                users: local.variable("USERS_TABLE"),
                emails: local.variable("EMAILS_TABLE"),
            },
            history_table: local.variable("HISTORY_TABLE"),
            failure_bucket: local.variable("STREAM_FAILURE_BUCKET"),
            sqs: aws_sdk_sqs::Client::new(&aws),
            sesv2: aws_sdk_sesv2::Client::new(&aws),
            idempotency_table: local.variable("IDEMPOTENCY_TABLE"),
            sender: local.variable("SENDER_ADDRESS"),
            endpoint: local.endpoint.clone(),
        }
    }

    /// The idempotency store as the welcome function builds it.
    pub fn idempotency(&self) -> IdempotencyStore {
        IdempotencyStore::new(self.dynamodb.clone(), self.idempotency_table.clone())
    }

    /// A queue of its own for one test (the template's queues are shared by every test).
    pub async fn new_queue(&self, label: &str) -> String {
        let name = format!("{label}-{}", UserId::random());
        self.sqs
            .create_queue()
            .queue_name(name)
            .send()
            .await
            .expect("create a queue")
            .queue_url
            .expect("a queue URL")
    }

    /// The bodies of every message on a queue, taken off it.
    pub async fn drain(&self, queue_url: &str) -> Vec<String> {
        let mut bodies = Vec::new();
        loop {
            let answer = self
                .sqs
                .receive_message()
                .queue_url(queue_url)
                .max_number_of_messages(10)
                .send()
                .await
                .expect("receive messages");
            if answer.messages().is_empty() {
                return bodies;
            }
            for message in answer.messages() {
                bodies.push(message.body().unwrap_or_default().to_owned());
                self.sqs
                    .delete_message()
                    .queue_url(queue_url)
                    .set_receipt_handle(message.receipt_handle().map(str::to_owned))
                    .send()
                    .await
                    .expect("delete a message");
            }
        }
    }

    /// The emails moto's SES has sent to `address` (its body each).
    pub fn emails_sent_to(&self, address: &str) -> Vec<String> {
        // local/aws/moto_app.py reads them from moto's SES.
        let data = http_get(&format!("{}/_local/sent-emails", self.endpoint));
        let sent: Value = serde_json::from_str(&data).expect("the sent emails as JSON");
        sent.as_array()
            .into_iter()
            .flatten()
            .filter(|message| {
                message["destinations"]["ToAddresses"]
                    .as_array()
                    .is_some_and(|to| to.iter().any(|a| a == address))
            })
            .map(|message| message["body"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    /// The users repository as the functions build it (deletes leave the erasure marker).
    pub fn users(&self) -> UserRepository {
        UserRepository::new(self.dynamodb.clone(), self.tables.clone())
            .with_erasure_markers(self.history_table.clone())
    }

    /// The id of the user who owns `email` in the emails table, if any.
    pub async fn email_owner(&self, email: &str) -> Option<UserId> {
        let email = users_core::Email::parse(email).expect("a valid email");
        self.users()
            .email_owner(&email)
            .await
            .expect("read the emails table")
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

impl Local {
    /// The users stream's records of these users so far, in stream order, as Lambda delivers them.
    pub async fn stream_records_of(&self, ids: &[UserId]) -> Vec<Value> {
        let ids: Vec<String> = ids.iter().map(UserId::to_string).collect();
        self.users_stream_records()
            .await
            .into_iter()
            .filter(|record| {
                record["dynamodb"]["Keys"]["id"]["S"]
                    .as_str()
                    .is_some_and(|id| ids.iter().any(|ours| ours == id))
            })
            .collect()
    }
}

/// Runs the stream function on a batch as Lambda delivers it (no deadline); the sequence
/// numbers it reports in `batchItemFailures`.
pub async fn stream_failures(history: &HistoryRepository, records: Vec<Value>) -> Vec<String> {
    consumer_failures(&user_stream::StreamConsumer::new(history.clone()), records).await
}

/// Runs the stream function, as this consumer (a welcome queue, say), on a batch as Lambda
/// delivers it (no deadline); the sequence numbers it reports in `batchItemFailures`.
pub async fn consumer_failures(
    consumer: &user_stream::StreamConsumer,
    records: Vec<Value>,
) -> Vec<String> {
    let event = lambda_runtime::LambdaEvent::new(
        user_stream::StreamBatch { records },
        lambda_runtime::Context::default(),
    );
    user_stream::handle(consumer, event)
        .await
        .expect("the stream function answers")
        .batch_item_failures
        .into_iter()
        .map(|failure| failure.item_identifier.unwrap_or_default())
        .collect()
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

/// A request to a route with a path parameter `id` (`/users/{id}`, `/users/{id}/history`), as
/// API Gateway sends it: `route` is the template's path, `query` the query string's parameters.
pub fn user_route_request(
    method: &str,
    route: &str,
    id: &str,
    query: &[(&str, &str)],
    body: Option<&str>,
) -> Request {
    let path = route.replace("{id}", id);
    let mut event: Value =
        serde_json::from_str(&std::fs::read_to_string(event_path("create.json")).expect("read"))
            .expect("JSON");
    event["routeKey"] = json!(format!("{method} {route}"));
    event["rawPath"] = json!(path);
    event["requestContext"]["routeKey"] = json!(format!("{method} {route}"));
    event["requestContext"]["http"]["method"] = json!(method);
    event["requestContext"]["http"]["path"] = json!(path);
    event["pathParameters"] = json!({ "id": id });
    if !query.is_empty() {
        let parameters: serde_json::Map<String, Value> = query
            .iter()
            .map(|(name, value)| ((*name).to_owned(), json!(value)))
            .collect();
        event["queryStringParameters"] = Value::Object(parameters);
        event["rawQueryString"] = json!(
            query
                .iter()
                .map(|(name, value)| format!("{name}={value}"))
                .collect::<Vec<_>>()
                .join("&")
        );
    }
    match body {
        Some(body) => {
            event["headers"]["content-length"] = json!(body.len().to_string());
            event["body"] = json!(body);
        }
        None => {
            let headers = event["headers"].as_object_mut().expect("headers");
            headers.remove("content-length");
            headers.remove("content-type");
            event.as_object_mut().expect("event").remove("body");
        }
    }
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

/// `POST /create` with a body, through the real handler and the fixed clock.
pub async fn create(users: &UserRepository, body: &str) -> (u16, Value) {
    let request = http_request("POST", "/create", body);
    let response = create_user::handle(users, fixed_clock, request)
        .await
        .expect("the handler never fails");
    status_and_json(&response)
}

/// `POST /delete` with a body, through the real handler.
pub async fn delete(users: &UserRepository, body: &str) -> (u16, Value) {
    let request = http_request("POST", "/delete", body);
    let response = delete_user::handle(users, request)
        .await
        .expect("the handler never fails");
    status_and_json(&response)
}

/// A user registered through `POST /create`.
pub async fn registered_user(users: &UserRepository, email: &str) -> User {
    let (status, body) = create(users, &json!({"email": email}).to_string()).await;
    assert_eq!(status, 201, "{body}");
    serde_json::from_value(body).expect("a user")
}

/// An email no other test uses.
pub fn unique_email(label: &str) -> String {
    format!("{label}-{}@test.com", UserId::random())
}

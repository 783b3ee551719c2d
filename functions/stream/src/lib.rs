//! The users table's stream consumer: records every user change in the history table and, when
//! the stack sends welcome emails, puts each new user on the welcome queue.
//!
//! Failures are per record: a record that cannot be decoded or recorded is reported in
//! `batchItemFailures` (ReportBatchItemFailures), and the rest of the batch is still processed.
//! Lambda then retries from the lowest failed sequence number, so records after it may arrive
//! again; recording writes the same item for the same record, so that changes nothing, and a
//! new user forwarded twice is welcomed once (the welcome function claims each welcome).

mod welcome_queue;

pub use welcome_queue::{ForwardError, WelcomeQueue};

use aws_lambda_events::event::dynamodb::EventRecord;
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use lambda_runtime::{Error, LambdaEvent};
use serde::Deserialize;
use serde_json::Value;
use std::sync::Arc;
use users_core::{
    ChangeEvent, Deadline, EventName, HistoryRepository, InvalidRecord, Metrics, UserId,
};

/// Why one record of a batch failed; either way it goes into `batchItemFailures`.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// Not a user change (or not even a stream record): retrying cannot help, but Lambda's
    /// retries and then the on-failure destination keep it from being lost silently.
    #[error(transparent)]
    Invalid(#[from] InvalidRecord),
    /// The history table could not be written (one failure may cover a whole write request).
    #[error("could not record the change: {0}")]
    History(#[source] Arc<users_core::Error>),
    /// A new user's welcome message is not known to be on the welcome queue.
    #[error("could not forward the new user to the welcome queue: {0}")]
    Welcome(#[source] ForwardError),
}

/// What the stream function works with: the history table, and the welcome queue if the stack
/// has one (it has none when no sender address is configured).
#[derive(Debug, Clone)]
pub struct StreamConsumer {
    pub history: HistoryRepository,
    pub welcome: Option<WelcomeQueue>,
    /// Each batch's size and how many of its records succeeded and failed (EMF).
    pub metrics: Metrics,
}

impl StreamConsumer {
    pub fn new(history: HistoryRepository) -> Self {
        Self {
            history,
            welcome: None,
            metrics: Metrics::from_env("user-stream"),
        }
    }

    /// New users are also forwarded to this welcome queue.
    pub fn with_welcome(mut self, welcome: WelcomeQueue) -> Self {
        self.welcome = Some(welcome);
        self
    }
}

/// A batch as Lambda delivers it. Records stay raw JSON until each is decoded on its own, so one
/// malformed record fails alone instead of failing the whole batch's deserialisation.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct StreamBatch {
    #[serde(rename = "Records")]
    pub records: Vec<Value>,
}

/// What became of one record of a batch: the change it carried, recorded, or why not.
#[derive(Debug)]
pub struct RecordOutcome {
    /// The record's sequence number, if it has one (Lambda always sends one).
    pub sequence_number: Option<String>,
    pub result: Result<ChangeEvent, RecordError>,
}

/// Decodes every record, records the changes in the history table (25 to a BatchWriteItem) and
/// forwards new users to the welcome queue (10 to a SendMessageBatch), the two concurrently and
/// each request bounded by `deadline`; one outcome per record, in the order given. A record
/// succeeds only when everything it calls for is known done. The stream function and
/// `replay-failures` both go through this, so a replayed record ends exactly as if it had
/// succeeded the first time.
pub async fn record_batch(
    consumer: &StreamConsumer,
    records: Vec<Value>,
    deadline: Deadline,
) -> Vec<RecordOutcome> {
    let sequence_numbers: Vec<Option<String>> = records.iter().map(sequence_number_of).collect();

    // Every record decoded on its own; the changes, in record order, go to the history together.
    let mut changes: Vec<ChangeEvent> = Vec::with_capacity(records.len());
    let decoded: Vec<Result<(), RecordError>> = records
        .into_iter()
        .map(|record| decode(record).map(|change| changes.push(change)))
        .collect();
    let new_users: Vec<UserId> = match consumer.welcome {
        Some(_) => changes
            .iter()
            .filter(|change| change.change.event_name() == EventName::Insert)
            .map(|change| change.user_id)
            .collect(),
        None => Vec::new(),
    };
    let forwarding = async {
        match &consumer.welcome {
            Some(queue) if !new_users.is_empty() => queue.forward(&new_users, deadline).await,
            _ => Vec::new(),
        }
    };
    let (recorded, forwarded) =
        futures::join!(consumer.history.record_all(&changes, deadline), forwarding);

    // The n-th decoded record is the n-th change, whose outcome is the n-th of `recorded`; the
    // n-th INSERT among them has the n-th outcome of `forwarded`.
    let mut forwarded = forwarded.into_iter();
    let mut recorded_changes = changes.into_iter().zip(recorded);
    let mut next_change = move || {
        let (change, recorded) = recorded_changes.next()?;
        let forwarded = if change.change.event_name() == EventName::Insert {
            forwarded.next()
        } else {
            None
        };
        Some((change, recorded, forwarded))
    };
    let welcomes = consumer.welcome.is_some();
    sequence_numbers
        .into_iter()
        .zip(decoded)
        .map(|(sequence_number, decoded)| {
            let result = decoded.and_then(|()| match next_change() {
                Some((_, Err(error), _)) => Err(RecordError::History(error)),
                Some((_, Ok(()), Some(Err(error)))) => Err(RecordError::Welcome(error)),
                Some((change, Ok(()), None))
                    if welcomes && change.change.event_name() == EventName::Insert =>
                {
                    Err(RecordError::Welcome(ForwardError::NotAcknowledged))
                }
                Some((change, Ok(()), _)) => Ok(change),
                None => Err(RecordError::Invalid(InvalidRecord::new(
                    "no outcome for a decoded record",
                ))),
            });
            RecordOutcome {
                sequence_number,
                result,
            }
        })
        .collect()
}

/// The Lambda handler: handles the batch ([`record_batch`], so every record gets an outcome
/// before Lambda's timeout), and reports the records that failed, in stream order.
///
/// Returns an error (failing the whole batch, which Lambda retries) only for a failed record
/// without a sequence number, since such a record cannot be reported on its own. Lambda always
/// sends one, so this happens only with hand-made events.
pub async fn handle(
    consumer: &StreamConsumer,
    event: LambdaEvent<StreamBatch>,
) -> Result<DynamoDbEventResponse, Error> {
    let deadline = Deadline::from_lambda(event.context.deadline);
    let outcomes = record_batch(consumer, event.payload.records, deadline).await;
    let failed = outcomes.iter().filter(|o| o.result.is_err()).count() as u64;
    let size = outcomes.len() as u64;
    consumer.metrics.count("StreamBatchSize", size, &[]);
    consumer.metrics.count("RecordsHandled", size - failed, &[]);
    consumer.metrics.count("RecordsFailed", failed, &[]);

    let mut response = DynamoDbEventResponse::default();
    for outcome in outcomes {
        let error = match outcome.result {
            Ok(change) => {
                // The email is personal data: log who changed and how, never the address itself.
                tracing::info!(
                    event_name = change.change.event_name().as_str(),
                    user_id = %change.user_id,
                    sequence_number = %change.sequence_number,
                    outcome = if consumer.welcome.is_some()
                        && change.change.event_name() == EventName::Insert
                    {
                        "recorded and forwarded"
                    } else {
                        "recorded"
                    },
                    "user change"
                );
                continue;
            }
            Err(error) => error,
        };
        tracing::error!(
            sequence_number = outcome.sequence_number.as_deref().unwrap_or("none"),
            error = %error,
            details = ?error,
            "stream record failed"
        );
        let Some(sequence_number) = outcome.sequence_number else {
            return Err("a failed record has no SequenceNumber; failing the batch".into());
        };
        let mut failure = DynamoDbBatchItemFailure::default();
        failure.item_identifier = Some(sequence_number);
        response.batch_item_failures.push(failure);
    }
    Ok(response)
}

fn sequence_number_of(record: &Value) -> Option<String> {
    record
        .pointer("/dynamodb/SequenceNumber")
        .and_then(Value::as_str)
        .filter(|number| !number.is_empty())
        .map(str::to_owned)
}

/// Decodes one record as Lambda delivers it into a typed change.
pub fn decode(record: Value) -> Result<ChangeEvent, RecordError> {
    let record: EventRecord =
        serde_json::from_value(record).map_err(|err| InvalidRecord::new(err.to_string()))?;
    Ok(ChangeEvent::decode(&record)?)
}

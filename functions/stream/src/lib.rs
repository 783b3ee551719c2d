//! The users table's stream consumer: records every user change in the history table.
//!
//! Failures are per record: a record that cannot be decoded or recorded is reported in
//! `batchItemFailures` (ReportBatchItemFailures), and the rest of the batch is still processed.
//! Lambda then retries from the lowest failed sequence number, so records after it may arrive
//! again; recording is idempotent, so that changes nothing.

use aws_lambda_events::event::dynamodb::EventRecord;
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use futures::stream::{self, StreamExt};
use lambda_runtime::{Error, LambdaEvent};
use serde::Deserialize;
use serde_json::Value;
use users_core::{ChangeEvent, Deadline, HistoryRepository, InvalidRecord, Recorded};

/// Why one record of a batch failed; either way it goes into `batchItemFailures`.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// Not a user change (or not even a stream record): retrying cannot help, but Lambda's
    /// retries and then the on-failure destination keep it from being lost silently.
    #[error(transparent)]
    Invalid(#[from] InvalidRecord),
    /// The history table could not be written.
    #[error("could not record the change")]
    History(#[from] users_core::Error),
}

/// A batch as Lambda delivers it. Records stay raw JSON until each is decoded on its own, so one
/// malformed record fails alone instead of failing the whole batch's deserialisation.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct StreamBatch {
    #[serde(rename = "Records")]
    pub records: Vec<Value>,
}

/// How many records of a batch are recorded at once. Each record is an independent write (the
/// history is keyed by user and sequence number), so their order does not matter; the bound
/// keeps a batch of 100 from opening 100 connections.
const CONCURRENT_RECORDS: usize = 16;

/// The Lambda handler: processes every record and reports those that failed.
///
/// Returns an error (failing the whole batch, which Lambda retries) only for a failed record
/// without a sequence number, since such a record cannot be reported on its own. Lambda always
/// sends one, so this happens only with hand-made events.
pub async fn handle(
    history: &HistoryRepository,
    event: LambdaEvent<StreamBatch>,
) -> Result<DynamoDbEventResponse, Error> {
    let deadline = Deadline::from_lambda(event.context.deadline);
    // Records are written concurrently, but `buffered` yields their outcomes in batch order, so
    // they are logged and reported in stream order. Every write is bounded by what the
    // invocation has left: each record gets an outcome before Lambda's timeout, whatever
    // DynamoDB does.
    let outcomes: Vec<(Option<String>, Result<Handled, RecordError>)> =
        stream::iter(event.payload.records)
            .map(|record| async move {
                let sequence_number = record
                    .pointer("/dynamodb/SequenceNumber")
                    .and_then(Value::as_str)
                    .filter(|number| !number.is_empty())
                    .map(str::to_owned);
                (sequence_number, process(history, record, deadline).await)
            })
            .buffered(CONCURRENT_RECORDS)
            .collect()
            .await;

    let mut response = DynamoDbEventResponse::default();
    for (sequence_number, outcome) in outcomes {
        let error = match outcome {
            Ok(handled) => {
                // The email is personal data: log who changed and how, never the address itself.
                tracing::info!(
                    event_name = handled.event.change.event_name().as_str(),
                    user_id = %handled.event.user_id,
                    sequence_number = %handled.event.sequence_number,
                    outcome = match handled.recorded {
                        Recorded::Written => "recorded",
                        Recorded::AlreadyPresent => "already recorded",
                    },
                    "user change"
                );
                continue;
            }
            Err(error) => error,
        };
        tracing::error!(
            sequence_number = sequence_number.as_deref().unwrap_or("none"),
            error = %error,
            details = ?error,
            "stream record failed"
        );
        let Some(sequence_number) = sequence_number else {
            return Err("a failed record has no SequenceNumber; failing the batch".into());
        };
        let mut failure = DynamoDbBatchItemFailure::default();
        failure.item_identifier = Some(sequence_number);
        response.batch_item_failures.push(failure);
    }
    Ok(response)
}

/// A record decoded and recorded.
struct Handled {
    event: ChangeEvent,
    recorded: Recorded,
}

async fn process(
    history: &HistoryRepository,
    record: Value,
    deadline: Deadline,
) -> Result<Handled, RecordError> {
    let record: EventRecord =
        serde_json::from_value(record).map_err(|err| InvalidRecord::new(err.to_string()))?;
    let event = ChangeEvent::decode(&record)?;
    let recorded = deadline.bound(history.record(&event)).await?;
    Ok(Handled { event, recorded })
}

//! The users table's stream consumer: records every user change in the history table.
//!
//! Failures are per record: a record that cannot be decoded or recorded is reported in
//! `batchItemFailures` (ReportBatchItemFailures), and the rest of the batch is still processed.
//! Lambda then retries from the lowest failed sequence number, so records after it may arrive
//! again; recording writes the same item for the same record, so that changes nothing.

use aws_lambda_events::event::dynamodb::EventRecord;
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use lambda_runtime::{Error, LambdaEvent};
use serde::Deserialize;
use serde_json::Value;
use std::sync::Arc;
use users_core::{ChangeEvent, Deadline, HistoryRepository, InvalidRecord};

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

/// Decodes every record and records the changes in the history table (25 to a BatchWriteItem,
/// each request bounded by `deadline`); one outcome per record, in the order given. The stream
/// function and `replay-failures` both record through this, so a replayed record ends in the
/// history exactly as if it had succeeded the first time.
pub async fn record_batch(
    history: &HistoryRepository,
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
    let recorded = history.record_all(&changes, deadline).await;

    // The n-th decoded record is the n-th change, whose outcome is the n-th of `recorded`.
    let mut recorded_changes = changes.into_iter().zip(recorded);
    sequence_numbers
        .into_iter()
        .zip(decoded)
        .map(|(sequence_number, decoded)| {
            let result = decoded.and_then(|()| match recorded_changes.next() {
                Some((change, Ok(()))) => Ok(change),
                Some((_, Err(error))) => Err(RecordError::History(error)),
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

/// The Lambda handler: records the batch ([`record_batch`], so every record gets an outcome
/// before Lambda's timeout), and reports the records that failed, in stream order.
///
/// Returns an error (failing the whole batch, which Lambda retries) only for a failed record
/// without a sequence number, since such a record cannot be reported on its own. Lambda always
/// sends one, so this happens only with hand-made events.
pub async fn handle(
    history: &HistoryRepository,
    event: LambdaEvent<StreamBatch>,
) -> Result<DynamoDbEventResponse, Error> {
    let deadline = Deadline::from_lambda(event.context.deadline);
    let outcomes = record_batch(history, event.payload.records, deadline).await;

    let mut response = DynamoDbEventResponse::default();
    for outcome in outcomes {
        let error = match outcome.result {
            Ok(change) => {
                // The email is personal data: log who changed and how, never the address itself.
                tracing::info!(
                    event_name = change.change.event_name().as_str(),
                    user_id = %change.user_id,
                    sequence_number = %change.sequence_number,
                    outcome = "recorded",
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

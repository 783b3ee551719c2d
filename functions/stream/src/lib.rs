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

/// The Lambda handler: decodes every record, records the changes in the history table (25 to a
/// BatchWriteItem, each request bounded by what the invocation has left, so every record gets
/// an outcome before Lambda's timeout), and reports the records that failed, in stream order.
///
/// Returns an error (failing the whole batch, which Lambda retries) only for a failed record
/// without a sequence number, since such a record cannot be reported on its own. Lambda always
/// sends one, so this happens only with hand-made events.
pub async fn handle(
    history: &HistoryRepository,
    event: LambdaEvent<StreamBatch>,
) -> Result<DynamoDbEventResponse, Error> {
    let deadline = Deadline::from_lambda(event.context.deadline);
    let records = event.payload.records;
    let sequence_numbers: Vec<Option<String>> = records.iter().map(sequence_number_of).collect();

    // Each record's place among the decoded changes, or why it could not be decoded.
    let mut changes: Vec<ChangeEvent> = Vec::with_capacity(records.len());
    let slots: Vec<Result<usize, RecordError>> = records
        .into_iter()
        .map(|record| {
            let change = decode(record)?;
            changes.push(change);
            Ok(changes.len() - 1)
        })
        .collect();
    let recorded = history.record_all(&changes, deadline).await;

    let mut response = DynamoDbEventResponse::default();
    for (sequence_number, slot) in sequence_numbers.into_iter().zip(slots) {
        let outcome = slot.and_then(|index| match &recorded[index] {
            Ok(()) => Ok(&changes[index]),
            Err(error) => Err(RecordError::History(Arc::clone(error))),
        });
        let error = match outcome {
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

fn sequence_number_of(record: &Value) -> Option<String> {
    record
        .pointer("/dynamodb/SequenceNumber")
        .and_then(Value::as_str)
        .filter(|number| !number.is_empty())
        .map(str::to_owned)
}

fn decode(record: Value) -> Result<ChangeEvent, RecordError> {
    let record: EventRecord =
        serde_json::from_value(record).map_err(|err| InvalidRecord::new(err.to_string()))?;
    Ok(ChangeEvent::decode(&record)?)
}

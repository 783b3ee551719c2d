//! Replays the stream batches Lambda gave up on. The stream mapping's S3 on-failure destination
//! keeps each one whole: an invocation record whose `payload` is the event the stream function
//! got, records included. Each record is run through the stream function's own decoding and
//! recording code ([`user_stream::record_batch`]), so the history ends as if it had succeeded
//! the first time, and replaying again changes nothing. An object is deleted only when every
//! one of its records is recorded; anything else (a record that still fails, an object that is
//! not a failure record or is cut short) is reported and left in place.

use aws_sdk_s3::Client as S3;
use serde::Deserialize;
use serde_json::Value;
use std::fmt;
use user_stream::{RecordError, StreamConsumer};
use users_core::Deadline;

/// Where Lambda's S3 destination writes: `aws/lambda/<mapping UUID>/<shard>/YYYY/MM/DD/...`.
pub const DEFAULT_PREFIX: &str = "aws/lambda/";

/// A failure of the replay itself (listing the bucket, reading or deleting an object), as
/// opposed to the outcome of one object's records.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("cannot list s3://{bucket}/{prefix}: {source}")]
    List {
        bucket: String,
        prefix: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// What the on-failure destination writes, as far as the replay needs it.
#[derive(Debug, Deserialize)]
struct FailureRecord {
    #[serde(rename = "requestContext")]
    request_context: RequestContext,
    #[serde(rename = "DDBStreamBatchInfo")]
    batch: BatchInfo,
    /// The invocation's event, `{"Records": [...]}`: a JSON string as Lambda's S3 destination
    /// writes it, or the object itself, as some emulators write it. Absent, the object cannot
    /// be replayed (it stays, and says so).
    payload: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct RequestContext {
    condition: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct BatchInfo {
    start_sequence_number: String,
    end_sequence_number: String,
    batch_size: usize,
}

#[derive(Debug, Deserialize)]
struct Payload {
    #[serde(rename = "Records")]
    records: Vec<Value>,
}

/// A failure record read from an object: why Lambda gave up, and the records.
#[derive(Debug)]
pub struct KeptBatch {
    pub condition: String,
    pub first_sequence_number: String,
    pub last_sequence_number: String,
    pub records: Vec<Value>,
}

/// Reads an object's bytes as a failure record. Anything else is refused with the reason: not
/// JSON (or cut short), not an invocation record, no payload or one that is not the event, or
/// records that do not hold, in one run, exactly the batch the record describes (its first and
/// last sequence numbers, `batchSize` records from one to the other). Records that appear twice
/// are kept once: one BatchWriteItem may not name an item twice.
pub fn read_kept_batch(bytes: &[u8]) -> Result<KeptBatch, String> {
    let failure: FailureRecord = serde_json::from_slice(bytes)
        .map_err(|err| format!("not a stream failure record: {err}"))?;
    let payload: Payload = match failure.payload {
        Some(Value::String(text)) => serde_json::from_str(&text),
        Some(object) => serde_json::from_value(object),
        None => return Err("it holds no payload (records given up on before any invocation?): read them from the stream within 24 hours".into()),
    }
    .map_err(|err| format!("its payload is not a stream event: {err}"))?;
    let mut seen = std::collections::HashSet::new();
    let records: Vec<Value> = payload
        .records
        .into_iter()
        .filter(|record| {
            match record
                .pointer("/dynamodb/SequenceNumber")
                .and_then(Value::as_str)
            {
                Some(number) => seen.insert(number.to_owned()),
                None => true, // no sequence number: kept, and reported as failing by the stream code
            }
        })
        .collect();
    let position = |wanted: &str| {
        records.iter().position(|record| {
            record
                .pointer("/dynamodb/SequenceNumber")
                .and_then(Value::as_str)
                == Some(wanted)
        })
    };
    let batch = &failure.batch;
    let (Some(first), Some(last)) = (
        position(&batch.start_sequence_number),
        position(&batch.end_sequence_number),
    ) else {
        return Err(format!(
            "its payload lacks record {} or {} of the batch it describes (cut short?)",
            batch.start_sequence_number, batch.end_sequence_number
        ));
    };
    if last < first || last - first + 1 != batch.batch_size {
        return Err(format!(
            "its payload does not hold the {} record(s) of the batch it describes in one run (cut short?)",
            batch.batch_size
        ));
    }
    Ok(KeptBatch {
        condition: failure.request_context.condition,
        first_sequence_number: batch.start_sequence_number.clone(),
        last_sequence_number: batch.end_sequence_number.clone(),
        records,
    })
}

/// What the replay did with one object.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Every record recorded, and the object deleted (or, in a dry run, every record decodes).
    Replayed { records: usize, deleted: bool },
    /// Some records still fail: the object stays.
    Partial {
        recorded: usize,
        failing: Vec<(String, String)>,
    },
    /// Not a failure record, unreadable, or cut short: the object stays.
    Unreadable(String),
    /// Every record recorded but the delete failed: the object stays (replaying it again is
    /// harmless).
    NotDeleted { records: usize, reason: String },
}

/// One object's key and verdict.
#[derive(Debug)]
pub struct ObjectReport {
    pub key: String,
    pub verdict: Verdict,
}

impl fmt::Display for ObjectReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.verdict {
            Verdict::Replayed {
                records,
                deleted: true,
            } => {
                write!(f, "{}: {records} record(s) recorded; deleted", self.key)
            }
            Verdict::Replayed {
                records,
                deleted: false,
            } => write!(
                f,
                "{}: {records} record(s) would be recorded (dry run; nothing written)",
                self.key
            ),
            Verdict::Partial { recorded, failing } => {
                write!(
                    f,
                    "{}: {recorded} record(s) recorded, {} still failing; kept:",
                    self.key,
                    failing.len()
                )?;
                for (sequence_number, reason) in failing {
                    write!(f, "\n    {sequence_number}: {reason}")?;
                }
                Ok(())
            }
            Verdict::Unreadable(reason) => write!(f, "{}: {reason}; kept", self.key),
            Verdict::NotDeleted { records, reason } => write!(
                f,
                "{}: {records} record(s) recorded, but the delete failed ({reason}); kept",
                self.key
            ),
        }
    }
}

/// The replay's settings and clients.
pub struct Replay {
    pub s3: S3,
    pub bucket: String,
    pub prefix: String,
    /// The stream function's work: the history table, and the welcome queue if the stack has one.
    pub consumer: StreamConsumer,
    pub dry_run: bool,
}

impl Replay {
    /// Every object under the prefix, oldest first (the keys hold the time).
    pub async fn keys(&self) -> Result<Vec<String>, ReplayError> {
        let mut keys = Vec::new();
        let mut pages = self
            .s3
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(&self.prefix)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|err| ReplayError::List {
                bucket: self.bucket.clone(),
                prefix: self.prefix.clone(),
                source: Box::new(err),
            })?;
            keys.extend(
                page.contents()
                    .iter()
                    .filter_map(|o| o.key().map(str::to_owned)),
            );
        }
        keys.sort_unstable();
        Ok(keys)
    }

    /// Replays one object: reads it, records its records (unless a dry run), deletes it if all
    /// of them are recorded.
    pub async fn replay_object(&self, key: &str) -> ObjectReport {
        let verdict = self.verdict_for(key).await;
        ObjectReport {
            key: key.to_owned(),
            verdict,
        }
    }

    async fn verdict_for(&self, key: &str) -> Verdict {
        let bytes = match self
            .s3
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(object) => match object.body.collect().await {
                Ok(body) => body.into_bytes(),
                Err(err) => return Verdict::Unreadable(format!("cannot read it: {err}")),
            },
            Err(err) => return Verdict::Unreadable(format!("cannot read it: {err}")),
        };
        let batch = match read_kept_batch(&bytes) {
            Ok(batch) => batch,
            Err(reason) => return Verdict::Unreadable(reason),
        };
        let total = batch.records.len();
        if self.dry_run {
            let failing: Vec<(String, String)> = batch
                .records
                .into_iter()
                .filter_map(|record| {
                    let sequence_number = sequence_number_of(&record);
                    user_stream::decode(record)
                        .err()
                        .map(|err| (sequence_number, err.to_string()))
                })
                .collect();
            return if failing.is_empty() {
                Verdict::Replayed {
                    records: total,
                    deleted: false,
                }
            } else {
                Verdict::Partial {
                    recorded: 0,
                    failing,
                }
            };
        }
        // No Lambda deadline here: an operator's command may take the time it needs.
        let outcomes =
            user_stream::record_batch(&self.consumer, batch.records, Deadline::none()).await;
        let failing: Vec<(String, String)> = outcomes
            .iter()
            .filter_map(|outcome| {
                let error: &RecordError = outcome.result.as_ref().err()?;
                let sequence_number = outcome
                    .sequence_number
                    .clone()
                    .unwrap_or_else(|| "?".into());
                Some((sequence_number, error.to_string()))
            })
            .collect();
        if !failing.is_empty() {
            return Verdict::Partial {
                recorded: total - failing.len(),
                failing,
            };
        }
        match self
            .s3
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(_) => Verdict::Replayed {
                records: total,
                deleted: true,
            },
            Err(err) => Verdict::NotDeleted {
                records: total,
                reason: err.to_string(),
            },
        }
    }
}

fn sequence_number_of(record: &Value) -> String {
    record
        .pointer("/dynamodb/SequenceNumber")
        .and_then(Value::as_str)
        .unwrap_or("?")
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record(sequence_number: &str) -> Value {
        json!({"eventName": "INSERT", "dynamodb": {"SequenceNumber": sequence_number}})
    }

    fn failure(payload: &Value, start: &str, end: &str) -> Vec<u8> {
        failure_of(payload.to_string().into(), start, end, 2)
    }

    fn failure_of(payload: Value, start: &str, end: &str, batch_size: usize) -> Vec<u8> {
        json!({
            "requestContext": {"requestId": "r", "functionArn": "arn", "condition": "RetryAttemptsExhausted", "approximateInvokeCount": 4},
            "responseContext": {"statusCode": 200, "executedVersion": "$LATEST"},
            "version": "1.0",
            "timestamp": "2026-11-27T21:00:00.000Z",
            "DDBStreamBatchInfo": {"shardId": "s", "startSequenceNumber": start, "endSequenceNumber": end, "batchSize": batch_size, "streamArn": "arn"},
            "payload": payload,
        })
        .to_string()
        .into_bytes()
    }

    #[test]
    fn a_failure_record_is_read_with_its_records() {
        let payload = json!({"Records": [record("1"), record("2")]});
        let batch = read_kept_batch(&failure(&payload, "1", "2")).unwrap();
        assert_eq!(batch.condition, "RetryAttemptsExhausted");
        assert_eq!(batch.records.len(), 2);
        assert_eq!(
            (
                batch.first_sequence_number.as_str(),
                batch.last_sequence_number.as_str()
            ),
            ("1", "2")
        );
    }

    #[test]
    fn a_payload_written_as_an_object_and_records_sent_before_the_batch_are_read_too() {
        // The last invocation may hold records before the batch given up on (they succeeded
        // and are recorded again, harmlessly); a record sent twice is kept once.
        let payload = json!({"Records": [record("0"), record("1"), record("2"), record("2")]});
        let batch = read_kept_batch(&failure_of(payload, "1", "2", 2)).unwrap();
        let numbers: Vec<&str> = batch
            .records
            .iter()
            .map(|r| r["dynamodb"]["SequenceNumber"].as_str().unwrap())
            .collect();
        assert_eq!(numbers, ["0", "1", "2"]);
    }

    #[test]
    fn anything_else_is_refused_with_its_reason() {
        let whole = failure(&json!({"Records": [record("1"), record("2")]}), "1", "2");
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (b"not json".to_vec(), "not a stream failure record"),
            (
                whole[..whole.len() / 2].to_vec(),
                "not a stream failure record",
            ),
            (
                br#"{"Records": []}"#.to_vec(),
                "not a stream failure record",
            ),
            (
                failure(&json!("just a string"), "1", "2"),
                "its payload is not a stream event",
            ),
            (
                failure(&json!({"Records": [record("1")]}), "1", "2"),
                "lacks record 1 or 2",
            ),
            (
                failure_of(json!({"Records": [record("1"), record("3")]}), "1", "3", 3),
                "does not hold the 3 record(s)",
            ),
            (
                failure_of(json!({"Records": [record("3"), record("1")]}), "1", "3", 2),
                "in one run",
            ),
            (failure_of(Value::Null, "1", "2", 2), "holds no payload"),
        ];
        for (bytes, reason) in cases {
            let refused = read_kept_batch(&bytes).unwrap_err();
            assert!(
                refused.contains(reason),
                "{refused:?} should say {reason:?}"
            );
        }
    }
}

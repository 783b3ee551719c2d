//! The history table: one item per handled stream record, so every change to a user, the last
//! state of a deleted user included, can be read back.

use crate::deadline::Deadline;
use crate::error::Error;
use crate::model::{EpochSeconds, User, UserId};
use crate::stream::{ChangeEvent, EventName};
use crate::table;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use futures::stream::{self, StreamExt};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// The most puts one BatchWriteItem takes.
const BATCH_WRITE_LIMIT: usize = 25;
/// BatchWriteItem requests in flight at once: a 1,000-record batch is 40 requests.
const CONCURRENT_BATCH_WRITES: usize = 4;
/// How often puts that DynamoDB left unprocessed (throttling) are sent again, with backoff.
const UNPROCESSED_ATTEMPTS: u32 = 4;

/// DynamoDB stream sequence numbers are decimal strings of up to 40 digits. Padded to this
/// width they sort as strings in the same order as numbers, which the sort key needs.
const SEQUENCE_NUMBER_WIDTH: usize = 40;

/// One item of the history table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEntry {
    pub user_id: UserId,
    /// The stream sequence number, zero-padded to 40 digits (the sort key).
    pub sequence_number: String,
    pub event_name: EventName,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_image: Option<User>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_image: Option<User>,
    /// When DynamoDB recorded the change (whole seconds, as the stream gives it).
    pub changed_at: EpochSeconds,
}

impl From<&ChangeEvent> for HistoryEntry {
    fn from(event: &ChangeEvent) -> Self {
        Self {
            user_id: event.user_id,
            sequence_number: sortable_sequence_number(&event.sequence_number),
            event_name: event.change.event_name(),
            old_image: event.change.before().cloned(),
            new_image: event.change.after().cloned(),
            changed_at: event.changed_at,
        }
    }
}

/// The indices of one BatchWriteItem's changes, and the indices it left unprocessed (or why it
/// failed as a whole).
type ChunkOutcome = (Vec<usize>, Result<Vec<usize>, Error>);

fn put_request(item: HashMap<String, AttributeValue>) -> Result<WriteRequest, Error> {
    let put = PutRequest::builder().set_item(Some(item)).build()?;
    Ok(WriteRequest::builder().put_request(put).build())
}

/// Left-pads a decimal sequence number with zeros so string order is numeric order.
pub fn sortable_sequence_number(sequence_number: &str) -> String {
    format!("{sequence_number:0>SEQUENCE_NUMBER_WIDTH$}")
}

/// A position in one user's history: the sort key of the last entry a page held. Clients get it
/// as an opaque token and hand it back for the next page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryCursor(String);

impl HistoryCursor {
    /// A cursor from a token, if it has the shape of one (a padded sequence number).
    pub fn parse(token: &str) -> Option<Self> {
        let well_formed =
            token.len() == SEQUENCE_NUMBER_WIDTH && token.bytes().all(|b| b.is_ascii_digit());
        well_formed.then(|| Self(token.to_owned()))
    }

    /// The token to hand to a client.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One page of a user's history, oldest first, and where the next page starts if there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryPage {
    pub entries: Vec<HistoryEntry>,
    pub next: Option<HistoryCursor>,
}

/// The history table, through one SDK client built at start-up.
#[derive(Debug, Clone)]
pub struct HistoryRepository {
    client: Client,
    table: String,
}

impl HistoryRepository {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// Records changes with BatchWriteItem, 25 to a request, a few requests at once; returns
    /// each change's outcome in the order given. The item written for a record is the same
    /// each time, so a replayed batch changes nothing. Puts DynamoDB leaves unprocessed are sent
    /// again with backoff; every request is bounded by `deadline`.
    pub async fn record_all(
        &self,
        events: &[ChangeEvent],
        deadline: Deadline,
    ) -> Vec<Result<(), Arc<Error>>> {
        let mut outcomes: Vec<Result<(), Arc<Error>>> = vec![Ok(()); events.len()];
        let mut requests = Vec::with_capacity(events.len());
        for (index, event) in events.iter().enumerate() {
            let request = serde_dynamo::to_item(HistoryEntry::from(event))
                .map_err(Error::CorruptItem)
                .and_then(put_request);
            match request {
                Ok(request) => requests.push((index, request)),
                Err(error) => outcomes[index] = Err(Arc::new(error)),
            }
        }
        let chunks: Vec<Vec<(usize, WriteRequest)>> = requests
            .chunks(BATCH_WRITE_LIMIT)
            .map(<[_]>::to_vec)
            .collect();
        let results: Vec<ChunkOutcome> = stream::iter(chunks)
            .map(|chunk| async move {
                let indices = chunk.iter().map(|(index, _)| *index).collect();
                (indices, deadline.bound(self.write_chunk(chunk)).await)
            })
            .buffer_unordered(CONCURRENT_BATCH_WRITES)
            .collect()
            .await;
        for (indices, result) in results {
            match result {
                Ok(unprocessed) if unprocessed.is_empty() => {}
                Ok(unprocessed) => {
                    let error = Arc::new(Error::Unprocessed);
                    for index in unprocessed {
                        outcomes[index] = Err(error.clone());
                    }
                }
                Err(error) => {
                    let error = Arc::new(error);
                    for index in indices {
                        outcomes[index] = Err(error.clone());
                    }
                }
            }
        }
        outcomes
    }

    /// One BatchWriteItem of up to 25 puts, sending again what DynamoDB left unprocessed;
    /// returns the indices still unprocessed after the last attempt.
    async fn write_chunk(
        &self,
        mut pending: Vec<(usize, WriteRequest)>,
    ) -> Result<Vec<usize>, Error> {
        let mut attempt = 0;
        loop {
            let output = self
                .client
                .batch_write_item()
                .request_items(
                    &self.table,
                    pending.iter().map(|(_, request)| request.clone()).collect(),
                )
                .send()
                .await
                .map_err(Error::from_sdk)?;
            let unprocessed: Vec<WriteRequest> = output
                .unprocessed_items
                .and_then(|mut tables| tables.remove(&self.table))
                .unwrap_or_default();
            // DynamoDB returns the unprocessed requests themselves: find them by their key.
            pending.retain(|(_, request)| unprocessed.contains(request));
            attempt += 1;
            if pending.is_empty() || attempt == UNPROCESSED_ATTEMPTS {
                return Ok(pending.into_iter().map(|(index, _)| index).collect());
            }
            tracing::warn!(
                attempt,
                unprocessed = pending.len(),
                "history writes left unprocessed; retrying"
            );
            tokio::time::sleep(Duration::from_millis(50 << attempt)).await;
        }
    }

    /// Up to `limit` recorded changes of one user, oldest first, after `after` (from the start
    /// when `None`). Strongly consistent, so a change the stream function has recorded is seen.
    pub async fn page(
        &self,
        user_id: UserId,
        limit: usize,
        after: Option<&HistoryCursor>,
    ) -> Result<HistoryPage, Error> {
        // One more than asked for, so that `next` is set only when another page really exists.
        let fetch = i32::try_from(limit.saturating_add(1)).unwrap_or(i32::MAX);
        let mut query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("#user = :user")
            .expression_attribute_names("#user", table::HISTORY_USER_ID)
            .expression_attribute_values(":user", AttributeValue::S(user_id.to_string()))
            .consistent_read(true)
            .limit(fetch);
        if let Some(after) = after {
            query = query
                .exclusive_start_key(
                    table::HISTORY_USER_ID,
                    AttributeValue::S(user_id.to_string()),
                )
                .exclusive_start_key(
                    table::HISTORY_SEQUENCE_NUMBER,
                    AttributeValue::S(after.as_str().to_owned()),
                );
        }
        let output = query.send().await.map_err(Error::from_sdk)?;
        // DynamoDB also stops a page at 1 MB, with a LastEvaluatedKey: more may follow then too.
        let cut_short = output.last_evaluated_key.is_some();
        let mut entries: Vec<HistoryEntry> =
            serde_dynamo::from_items(output.items.unwrap_or_default())
                .map_err(Error::CorruptItem)?;
        let more = entries.len() > limit || cut_short;
        entries.truncate(limit);
        let next = match entries.last() {
            Some(last) if more => Some(HistoryCursor(last.sequence_number.clone())),
            _ => None,
        };
        Ok(HistoryPage { entries, next })
    }

    /// Every recorded change of one user, oldest first.
    pub async fn entries_for(&self, user_id: UserId) -> Result<Vec<HistoryEntry>, Error> {
        let mut entries = Vec::new();
        let mut after = None;
        loop {
            let page = self.page(user_id, 100, after.as_ref()).await?;
            entries.extend(page.entries);
            match page.next {
                Some(next) => after = Some(next),
                None => return Ok(entries),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padded_sequence_numbers_sort_numerically() {
        let mut numbers = ["900", "1000", "3633500000000062125042319", "99"]
            .map(sortable_sequence_number)
            .to_vec();
        numbers.sort();
        let unpadded: Vec<String> = numbers
            .iter()
            .map(|n| n.trim_start_matches('0').to_owned())
            .collect();
        assert_eq!(unpadded, ["99", "900", "1000", "3633500000000062125042319"]);
        assert_eq!(numbers[0].len(), SEQUENCE_NUMBER_WIDTH);
    }

    #[test]
    fn a_cursor_is_a_padded_sequence_number() {
        let padded = sortable_sequence_number("1100000000017454423009");
        assert_eq!(HistoryCursor::parse(&padded).unwrap().as_str(), padded);
        for bad in [
            "",
            "123",
            "x".repeat(40).as_str(),
            &format!("{padded}0"),
            &padded.replace('0', "a"),
        ] {
            assert_eq!(HistoryCursor::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn entry_keys_use_the_declared_attribute_names() {
        let user = User::register(crate::Email::parse("a@b.co").unwrap(), crate::Timestamp(1));
        let entry = HistoryEntry {
            user_id: user.id,
            sequence_number: sortable_sequence_number("1"),
            event_name: EventName::Insert,
            old_image: None,
            new_image: Some(user),
            changed_at: EpochSeconds(1),
        };
        let json = serde_json::to_value(&entry).unwrap();
        assert!(json.get(table::HISTORY_USER_ID).is_some());
        assert!(json.get(table::HISTORY_SEQUENCE_NUMBER).is_some());
        assert!(json.get("oldImage").is_none());
        assert_eq!(json["eventName"], "INSERT");
    }
}

//! The history table: one item per handled stream record, so every change to a user, the last
//! state of a deleted user included, can be read back.
//!
//! What is forgotten: when a user is deleted, the stream function erases its email (old and
//! current) from every entry of its history, and leaves a marker so that no late retry or replay
//! of its older records can write an address back. The history keeps what changed and when.

use crate::backoff::Backoff;
use crate::deadline::Deadline;
use crate::error::Error;
use crate::model::{Email, EpochSeconds, Timestamp, User, UserId};
use crate::stream::{ChangeEvent, EventName};
use crate::table;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use futures::stream::{self, StreamExt};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

/// The most puts one BatchWriteItem takes.
const BATCH_WRITE_LIMIT: usize = 25;
/// BatchWriteItem requests in flight at once: a 1,000-record batch is 40 requests.
const CONCURRENT_BATCH_WRITES: usize = 4;
/// How often a chunk is sent in all while DynamoDB leaves some of its puts unprocessed.
const UNPROCESSED_ATTEMPTS: u32 = 4;
/// Waits between those attempts (the SDK's guidance: back off, as the table is throttling).
const UNPROCESSED_BACKOFF: Backoff = Backoff {
    first: Duration::from_millis(50),
    cap: Duration::from_millis(1000),
};

/// DynamoDB stream sequence numbers are decimal strings of up to 40 digits. Padded to this
/// width they sort as strings in the same order as numbers, which the sort key needs.
const SEQUENCE_NUMBER_WIDTH: usize = 40;
/// The sort key of a deleted user's erasure marker. `~` sorts after every digit, so the marker
/// comes after all of the user's entries and a page of entries never reaches it.
const ERASED_MARKER: &str = "~erased";
/// The most keys one BatchGetItem takes.
const BATCH_GET_LIMIT: usize = 100;

/// A user as the history keeps it: as it was, except that its email is erased once the user
/// is deleted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryImage {
    pub id: UserId,
    pub timestamp: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<Email>,
}

impl From<&User> for HistoryImage {
    fn from(user: &User) -> Self {
        Self {
            id: user.id,
            timestamp: user.timestamp,
            email: Some(user.email.clone()),
        }
    }
}

/// One item of the history table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEntry {
    pub user_id: UserId,
    /// The stream sequence number, zero-padded to 40 digits (the sort key).
    pub sequence_number: String,
    pub event_name: EventName,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_image: Option<HistoryImage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_image: Option<HistoryImage>,
    /// When DynamoDB recorded the change (whole seconds, as the stream gives it).
    pub changed_at: EpochSeconds,
}

impl From<&ChangeEvent> for HistoryEntry {
    fn from(event: &ChangeEvent) -> Self {
        Self {
            user_id: event.user_id,
            sequence_number: sortable_sequence_number(&event.sequence_number),
            event_name: event.change.event_name(),
            old_image: event.change.before().map(HistoryImage::from),
            new_image: event.change.after().map(HistoryImage::from),
            changed_at: event.changed_at,
        }
    }
}

impl HistoryEntry {
    /// Whether an email is still in this entry.
    pub fn holds_email(&self) -> bool {
        [&self.old_image, &self.new_image]
            .into_iter()
            .flatten()
            .any(|image| image.email.is_some())
    }

    /// The entry without any email: what the history keeps of a deleted user.
    pub fn erased(mut self) -> Self {
        for image in [&mut self.old_image, &mut self.new_image]
            .into_iter()
            .flatten()
        {
            image.email = None;
        }
        self
    }
}

/// The key of a user's erasure marker (also the whole marker item).
pub(crate) fn marker_key(user_id: UserId) -> HashMap<String, AttributeValue> {
    HashMap::from([
        (
            table::HISTORY_USER_ID.to_owned(),
            AttributeValue::S(user_id.to_string()),
        ),
        (
            table::HISTORY_SEQUENCE_NUMBER.to_owned(),
            AttributeValue::S(ERASED_MARKER.to_owned()),
        ),
    ])
}

/// The key of a history item: which record a put is for.
type HistoryKey = (String, String);

/// One put of a batch: the index of its change, its key and the request itself.
#[derive(Debug, Clone)]
struct PendingPut {
    index: usize,
    key: HistoryKey,
    request: WriteRequest,
}

/// The outcome of one chunk of puts: the indices known written, and the rest (still
/// unprocessed after the last attempt, or cut short by a failed request or the deadline) with
/// why. A put in neither list stays "not recorded".
#[derive(Debug)]
struct ChunkOutcome {
    written: Vec<usize>,
    failed: Vec<usize>,
    error: Option<Error>,
}

fn put_request(item: HashMap<String, AttributeValue>) -> Result<WriteRequest, Error> {
    let put = PutRequest::builder().set_item(Some(item)).build()?;
    Ok(WriteRequest::builder().put_request(put).build())
}

/// The history key a write request names, if it is a put with both key attributes as strings.
fn key_of(request: &WriteRequest) -> Option<HistoryKey> {
    let item = request.put_request()?.item();
    let string = |name: &str| match item.get(name) {
        Some(AttributeValue::S(value)) => Some(value.clone()),
        _ => None,
    };
    Some((
        string(table::HISTORY_USER_ID)?,
        string(table::HISTORY_SEQUENCE_NUMBER)?,
    ))
}

/// The distinct values, in first-seen order.
fn distinct(ids: impl Iterator<Item = UserId>) -> Vec<UserId> {
    let mut seen = HashSet::new();
    ids.filter(|id| seen.insert(*id)).collect()
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
    /// again with jittered backoff; every request is bounded by `deadline`.
    ///
    /// Fails closed: a change counts as recorded only when its put is known to have succeeded.
    ///
    /// Erases as it goes. For a user deleted in this batch, an erasure marker is written and
    /// every entry of its history rewritten without emails first, and only then are this
    /// batch's entries of that user written, without emails too: once a REMOVE can be read, the
    /// history holds none of that user's addresses. Entries of users not deleted in this batch
    /// are checked against the markers after they are written, and erased if their user was
    /// deleted meanwhile, so a late retry or a replay can never leave an address behind: an
    /// eraser writes its marker before it reads the entries to erase, and a writer reads the
    /// markers after it writes, so one of the two always sees the other.
    pub async fn record_all(
        &self,
        events: &[ChangeEvent],
        deadline: Deadline,
    ) -> Vec<Result<(), Arc<Error>>> {
        let deleted = distinct(
            events
                .iter()
                .filter(|event| event.change.event_name() == EventName::Remove)
                .map(|event| event.user_id),
        );
        // Users deleted in this batch: marker and erasure first; if that fails, none of the
        // user's records counts as recorded (they are retried, and the erasure with them).
        let not_erased: HashMap<UserId, Arc<Error>> = stream::iter(deleted.iter().copied())
            .map(|user_id| async move {
                let erased = deadline.bound(self.erase(user_id, deadline)).await;
                (user_id, erased)
            })
            .buffer_unordered(CONCURRENT_BATCH_WRITES)
            .filter_map(|(user_id, erased)| async move {
                erased.err().map(|error| (user_id, Arc::new(error)))
            })
            .collect()
            .await;
        let entries: Vec<HistoryEntry> = events
            .iter()
            .map(|event| {
                let entry = HistoryEntry::from(event);
                if deleted.contains(&event.user_id) {
                    entry.erased()
                } else {
                    entry
                }
            })
            .collect();
        let writable: Vec<usize> = (0..entries.len())
            .filter(|&i| !not_erased.contains_key(&entries[i].user_id))
            .collect();
        let to_write: Vec<HistoryEntry> = writable.iter().map(|&i| entries[i].clone()).collect();
        let mut outcomes: Vec<Result<(), Arc<Error>>> = entries
            .iter()
            .map(|entry| match not_erased.get(&entry.user_id) {
                Some(error) => Err(Arc::clone(error)),
                None => Err(Arc::new(Error::Unprocessed)),
            })
            .collect();
        for (i, outcome) in writable
            .into_iter()
            .zip(self.write_entries(&to_write, deadline).await)
        {
            outcomes[i] = outcome;
        }

        // Late or replayed records of users erased already: erase what was just written. Every
        // entry attempted counts, written or not: a write DynamoDB applied but did not confirm
        // must not keep an address either.
        let attempted: Vec<UserId> = distinct(
            entries
                .iter()
                .filter(|entry| entry.holds_email() && !not_erased.contains_key(&entry.user_id))
                .map(|entry| entry.user_id),
        );
        let check = deadline.bound(self.erased_among(&attempted)).await;
        let (again, check_error): (Vec<usize>, Option<Arc<Error>>) = match check {
            Ok(erased) => (
                (0..entries.len())
                    .filter(|&i| entries[i].holds_email() && erased.contains(&entries[i].user_id))
                    .collect(),
                None,
            ),
            // Unknown whether a user was deleted meanwhile: write the entries without emails
            // (forgetting is the safe side; the records are reported, and their retry writes
            // them whole again once the check works), and count none as recorded.
            Err(error) => (
                (0..entries.len())
                    .filter(|&i| {
                        entries[i].holds_email() && attempted.contains(&entries[i].user_id)
                    })
                    .collect(),
                Some(Arc::new(error)),
            ),
        };
        if !again.is_empty() {
            let stripped: Vec<HistoryEntry> =
                again.iter().map(|&i| entries[i].clone().erased()).collect();
            let rewritten = self.write_entries(&stripped, deadline).await;
            for (&i, outcome) in again.iter().zip(rewritten) {
                outcomes[i] = match (&check_error, outcome) {
                    (Some(error), _) => Err(Arc::clone(error)),
                    (None, outcome) => outcome,
                };
            }
        }
        if let Some(error) = check_error {
            for (entry, outcome) in entries.iter().zip(outcomes.iter_mut()) {
                if attempted.contains(&entry.user_id) {
                    *outcome = Err(Arc::clone(&error));
                }
            }
        }
        outcomes
    }

    /// Writes a deleted user's erasure marker, then rewrites every entry of its history that
    /// still holds an email without it.
    async fn erase(&self, user_id: UserId, deadline: Deadline) -> Result<(), Error> {
        let marker = PutRequest::builder()
            .set_item(Some(marker_key(user_id)))
            .build()?;
        let mut written = Vec::new();
        let marker = vec![PendingPut {
            index: 0,
            key: (user_id.to_string(), ERASED_MARKER.to_owned()),
            request: WriteRequest::builder().put_request(marker).build(),
        }];
        self.write_chunk(marker, &mut written).await?;
        let holding: Vec<HistoryEntry> = self
            .all_entries(user_id, true)
            .await?
            .into_iter()
            .filter(HistoryEntry::holds_email)
            .map(HistoryEntry::erased)
            .collect();
        let outcomes = self.write_entries(&holding, deadline).await;
        match outcomes.into_iter().find_map(Result::err) {
            None => {
                tracing::info!(user_id = %user_id, erased_entries = holding.len(), "history erased");
                Ok(())
            }
            Some(error) => Err(Arc::try_unwrap(error).unwrap_or(Error::Unprocessed)),
        }
    }

    /// Which of these users have an erasure marker (strongly consistent, so a marker written
    /// before this read is seen). Keys DynamoDB leaves unprocessed are asked again; if some
    /// still are, nothing is known and this fails.
    async fn erased_among(&self, users: &[UserId]) -> Result<HashSet<UserId>, Error> {
        let mut erased = HashSet::new();
        for chunk in users.chunks(BATCH_GET_LIMIT) {
            let mut keys: Vec<HashMap<String, AttributeValue>> =
                chunk.iter().map(|id| marker_key(*id)).collect();
            let mut attempt = 1;
            while !keys.is_empty() {
                let request = aws_sdk_dynamodb::types::KeysAndAttributes::builder()
                    .set_keys(Some(keys))
                    .consistent_read(true)
                    .build()?;
                let output = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, request)
                    .send()
                    .await
                    .map_err(Error::from_sdk)?;
                for item in output
                    .responses
                    .and_then(|mut tables| tables.remove(&self.table))
                    .unwrap_or_default()
                {
                    if let Some(AttributeValue::S(id)) = item.get(table::HISTORY_USER_ID)
                        && let Ok(id) = UserId::parse(id)
                    {
                        erased.insert(id);
                    }
                }
                keys = output
                    .unprocessed_keys
                    .and_then(|mut tables| tables.remove(&self.table))
                    .map(|left| left.keys)
                    .unwrap_or_default();
                if keys.is_empty() {
                    break;
                }
                if attempt == UNPROCESSED_ATTEMPTS {
                    return Err(Error::Unprocessed);
                }
                UNPROCESSED_BACKOFF.wait(attempt).await;
                attempt += 1;
            }
        }
        Ok(erased)
    }

    /// Writes history entries, 25 to a BatchWriteItem, a few requests at once; one outcome per
    /// entry, in order. Fails closed (see [`Self::write_chunk`]).
    async fn write_entries(
        &self,
        entries: &[HistoryEntry],
        deadline: Deadline,
    ) -> Vec<Result<(), Arc<Error>>> {
        let not_recorded = Arc::new(Error::Unprocessed);
        let mut outcomes: Vec<Result<(), Arc<Error>>> = vec![Err(not_recorded); entries.len()];
        let mut puts = Vec::with_capacity(entries.len());
        for (index, entry) in entries.iter().enumerate() {
            let key = (entry.user_id.to_string(), entry.sequence_number.clone());
            let request = serde_dynamo::to_item(entry)
                .map_err(Error::CorruptItem)
                .and_then(put_request);
            match request {
                Ok(request) => puts.push(PendingPut {
                    index,
                    key,
                    request,
                }),
                Err(error) => outcomes[index] = Err(Arc::new(error)),
            }
        }
        let chunks: Vec<Vec<PendingPut>> =
            puts.chunks(BATCH_WRITE_LIMIT).map(<[_]>::to_vec).collect();
        let results: Vec<ChunkOutcome> = stream::iter(chunks)
            .map(|chunk| async move {
                let indices: Vec<usize> = chunk.iter().map(|put| put.index).collect();
                let mut written = Vec::new();
                let result = deadline.bound(self.write_chunk(chunk, &mut written)).await;
                // Cut short or failed: what was confirmed before still counts.
                ChunkOutcome {
                    failed: indices
                        .into_iter()
                        .filter(|i| !written.contains(i))
                        .collect(),
                    written,
                    error: result.err(),
                }
            })
            .buffer_unordered(CONCURRENT_BATCH_WRITES)
            .collect()
            .await;
        for outcome in results {
            for index in outcome.written {
                outcomes[index] = Ok(());
            }
            if let Some(error) = outcome.error {
                let error = Arc::new(error);
                for index in outcome.failed {
                    outcomes[index] = Err(Arc::clone(&error));
                }
            }
        }
        outcomes
    }

    /// One BatchWriteItem of up to 25 puts, sending again what DynamoDB left unprocessed;
    /// pushes onto `written` the index of every put known to be written, as soon as it is known
    /// (so a deadline that cuts the retries short keeps what was confirmed).
    ///
    /// DynamoDB returns unprocessed puts themselves; they are matched to ours by their key
    /// (`userId`, `sequenceNumber`), never by comparing whole items. An answer that cannot be
    /// matched (an unprocessed request without a key, with a key we did not send, or under
    /// another table's name) proves nothing was written, so the whole chunk is sent again.
    async fn write_chunk(
        &self,
        mut pending: Vec<PendingPut>,
        written: &mut Vec<usize>,
    ) -> Result<(), Error> {
        let mut attempt = 1;
        loop {
            let output = self
                .client
                .batch_write_item()
                .request_items(
                    &self.table,
                    pending.iter().map(|put| put.request.clone()).collect(),
                )
                .send()
                .await
                .map_err(Error::from_sdk)?;
            let sent: HashSet<&HistoryKey> = pending.iter().map(|put| &put.key).collect();
            let mut left: HashSet<HistoryKey> = HashSet::new();
            let mut unmatched = 0;
            for (table, requests) in output.unprocessed_items.unwrap_or_default() {
                for request in requests {
                    match key_of(&request) {
                        Some(key) if table == self.table && sent.contains(&key) => {
                            left.insert(key);
                        }
                        _ => unmatched += 1,
                    }
                }
            }
            if unmatched > 0 {
                tracing::warn!(
                    unmatched,
                    "BatchWriteItem returned unprocessed writes that match none of ours; sending the whole chunk again"
                );
            } else {
                let (done, still): (Vec<PendingPut>, Vec<PendingPut>) = pending
                    .into_iter()
                    .partition(|put| !left.contains(&put.key));
                written.extend(done.iter().map(|put| put.index));
                pending = still;
            }
            if pending.is_empty() {
                return Ok(());
            }
            if attempt == UNPROCESSED_ATTEMPTS {
                return Err(Error::Unprocessed);
            }
            tracing::warn!(
                attempt,
                unprocessed = pending.len(),
                "history writes left unprocessed; retrying"
            );
            UNPROCESSED_BACKOFF.wait(attempt).await;
            attempt += 1;
        }
    }

    /// Up to `limit` recorded changes of one user, oldest first, after `after` (from the start
    /// when `None`). Strongly consistent, so a change the stream function has recorded is seen.
    /// Once the user is deleted (its erasure marker exists, which the delete itself writes),
    /// the entries come without emails, even before the stream function has erased them.
    pub async fn page(
        &self,
        user_id: UserId,
        limit: usize,
        after: Option<&HistoryCursor>,
    ) -> Result<HistoryPage, Error> {
        let mut page = self.stored_page(user_id, limit, after).await?;
        if page.entries.iter().any(HistoryEntry::holds_email) && self.is_erased(user_id).await? {
            page.entries = page.entries.into_iter().map(HistoryEntry::erased).collect();
        }
        Ok(page)
    }

    /// Whether a user's erasure marker exists (strongly consistent).
    async fn is_erased(&self, user_id: UserId) -> Result<bool, Error> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(marker_key(user_id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(Error::from_sdk)?;
        Ok(output.item.is_some())
    }

    /// A page as stored, emails and all.
    async fn stored_page(
        &self,
        user_id: UserId,
        limit: usize,
        after: Option<&HistoryCursor>,
    ) -> Result<HistoryPage, Error> {
        // One more than asked for, so that `next` is set only when another page really exists.
        let fetch = i32::try_from(limit.saturating_add(1)).unwrap_or(i32::MAX);
        // Entries only: the erasure marker sorts after every sequence number.
        let mut query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("#user = :user AND #sequence < :marker")
            .expression_attribute_names("#user", table::HISTORY_USER_ID)
            .expression_attribute_names("#sequence", table::HISTORY_SEQUENCE_NUMBER)
            .expression_attribute_values(":user", AttributeValue::S(user_id.to_string()))
            .expression_attribute_values(":marker", AttributeValue::S(ERASED_MARKER.to_owned()))
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

    /// Every recorded change of one user, oldest first, as [`Self::page`] gives them.
    pub async fn entries_for(&self, user_id: UserId) -> Result<Vec<HistoryEntry>, Error> {
        self.all_entries(user_id, false).await
    }

    /// Every entry of a user, as stored or as `page` answers.
    async fn all_entries(
        &self,
        user_id: UserId,
        as_stored: bool,
    ) -> Result<Vec<HistoryEntry>, Error> {
        let mut entries = Vec::new();
        let mut after = None;
        loop {
            let page = if as_stored {
                self.stored_page(user_id, 100, after.as_ref()).await?
            } else {
                self.page(user_id, 100, after.as_ref()).await?
            };
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
            new_image: Some(HistoryImage::from(&user)),
            changed_at: EpochSeconds(1),
        };
        assert!(entry.holds_email());
        let erased = entry.clone().erased();
        assert!(!erased.holds_email());
        assert!(
            serde_json::to_value(&erased).unwrap()["newImage"]
                .get("email")
                .is_none()
        );
        assert!(ERASED_MARKER > sortable_sequence_number(&"9".repeat(40)).as_str());
        let json = serde_json::to_value(&entry).unwrap();
        assert!(json.get(table::HISTORY_USER_ID).is_some());
        assert!(json.get(table::HISTORY_SEQUENCE_NUMBER).is_some());
        assert!(json.get("oldImage").is_none());
        assert_eq!(json["eventName"], "INSERT");
    }
}

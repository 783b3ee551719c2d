//! The history table: one item per handled stream record, so every change to a user, the last
//! state of a deleted user included, can be read back.

use crate::error::Error;
use crate::model::{EpochSeconds, User, UserId};
use crate::stream::{ChangeEvent, EventName};
use crate::table;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::AttributeValue;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

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

/// Whether [`HistoryRepository::record`] wrote the entry or found it already there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    Written,
    /// A retried batch delivered this record again; the history is left as it was.
    AlreadyPresent,
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

    /// Records a change once: writing the same record again changes nothing.
    pub async fn record(&self, event: &ChangeEvent) -> Result<Recorded, Error> {
        let item: HashMap<String, AttributeValue> =
            serde_dynamo::to_item(HistoryEntry::from(event)).map_err(Error::CorruptItem)?;
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(#seq)")
            .expression_attribute_names("#seq", table::HISTORY_SEQUENCE_NUMBER)
            .send()
            .await;
        match result {
            Ok(_) => Ok(Recorded::Written),
            Err(SdkError::ServiceError(service))
                if matches!(
                    service.err(),
                    PutItemError::ConditionalCheckFailedException(_)
                ) =>
            {
                Ok(Recorded::AlreadyPresent)
            }
            Err(err) => Err(Error::from_sdk(err)),
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
        let pages: Vec<_> = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("#user = :user")
            .expression_attribute_names("#user", table::HISTORY_USER_ID)
            .expression_attribute_values(":user", AttributeValue::S(user_id.to_string()))
            .consistent_read(true)
            .into_paginator()
            .items()
            .send()
            .collect::<Result<_, _>>()
            .await
            .map_err(Error::from_sdk)?;
        serde_dynamo::from_items(pages).map_err(Error::CorruptItem)
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

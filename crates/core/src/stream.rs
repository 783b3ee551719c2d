//! Stream semantics: a DynamoDB stream record of the users table, decoded into a typed change.
//!
//! The users table holds only users, so every record is about a user; a record whose keys or
//! images do not decode to one is an error for the caller to report, never something to skip.

use crate::model::{EpochSeconds, User, UserId};
use aws_lambda_events::event::dynamodb::EventRecord;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Why a stream record is not a user change. The stream function reports such a record in
/// `batchItemFailures`; it is never skipped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("stream record is not a valid user change: {reason}")]
pub struct InvalidRecord {
    pub reason: String,
}

impl InvalidRecord {
    pub fn new(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
        }
    }
}

/// The kind of a stream record, as DynamoDB names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum EventName {
    Insert,
    Modify,
    Remove,
}

impl EventName {
    /// The stream's name for it: `INSERT`, `MODIFY` or `REMOVE`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Insert => "INSERT",
            Self::Modify => "MODIFY",
            Self::Remove => "REMOVE",
        }
    }
}

impl fmt::Display for EventName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What happened to a user, with the images the stream carried (NEW_AND_OLD_IMAGES).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserChange {
    Created { new: User },
    Updated { old: User, new: User },
    Deleted { old: User },
}

impl UserChange {
    /// The stream's name for this kind of change.
    pub fn event_name(&self) -> EventName {
        match self {
            Self::Created { .. } => EventName::Insert,
            Self::Updated { .. } => EventName::Modify,
            Self::Deleted { .. } => EventName::Remove,
        }
    }

    /// The user before the change, if it existed.
    pub fn before(&self) -> Option<&User> {
        match self {
            Self::Created { .. } => None,
            Self::Updated { old, .. } | Self::Deleted { old } => Some(old),
        }
    }

    /// The user after the change, if it still exists.
    pub fn after(&self) -> Option<&User> {
        match self {
            Self::Created { new } | Self::Updated { new, .. } => Some(new),
            Self::Deleted { .. } => None,
        }
    }
}

/// One decoded stream record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeEvent {
    pub user_id: UserId,
    /// The record's sequence number, as Lambda identifies it in `batchItemFailures`.
    pub sequence_number: String,
    /// When DynamoDB wrote the record.
    pub changed_at: EpochSeconds,
    pub change: UserChange,
}

#[derive(Deserialize)]
struct UserKey {
    id: UserId,
}

impl ChangeEvent {
    /// Decodes a record's keys and images into a typed change.
    pub fn decode(record: &EventRecord) -> Result<Self, InvalidRecord> {
        let stream = &record.change;
        let sequence_number = stream
            .sequence_number
            .clone()
            .filter(|number| !number.is_empty())
            .ok_or_else(|| invalid("it has no sequence number"))?;
        let key: UserKey = serde_dynamo::from_item(stream.keys.clone())
            .map_err(|err| invalid(format!("its keys are not a user id: {err}")))?;
        let old = image(&stream.old_image, "OldImage")?;
        let new = image(&stream.new_image, "NewImage")?;

        let change = match (record.event_name.as_str(), old, new) {
            ("INSERT", _, Some(new)) => UserChange::Created { new },
            ("MODIFY", Some(old), Some(new)) => UserChange::Updated { old, new },
            ("REMOVE", Some(old), _) => UserChange::Deleted { old },
            (name @ ("INSERT" | "MODIFY" | "REMOVE"), ..) => {
                return Err(invalid(format!(
                    "a {name} record lacks an image (is the stream view type NEW_AND_OLD_IMAGES?)"
                )));
            }
            (other, ..) => return Err(invalid(format!("unknown event name {other:?}"))),
        };
        let images_match_key = [change.before(), change.after()]
            .into_iter()
            .flatten()
            .all(|user| user.id == key.id);
        if !images_match_key {
            return Err(invalid("an image's id differs from the record's key"));
        }
        Ok(Self {
            user_id: key.id,
            sequence_number,
            changed_at: EpochSeconds(stream.approximate_creation_date_time.timestamp()),
            change,
        })
    }
}

/// A stream image as a user; an absent image is an empty map in the Lambda event.
fn image(item: &serde_dynamo::Item, name: &str) -> Result<Option<User>, InvalidRecord> {
    if item.is_empty() {
        return Ok(None);
    }
    serde_dynamo::from_item(item.clone())
        .map(Some)
        .map_err(|err| invalid(format!("its {name} is not a valid user: {err}")))
}

fn invalid(reason: impl Into<String>) -> InvalidRecord {
    InvalidRecord::new(reason)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ID: &str = "4cdc3c36-77d0-4ac5-a3f7-4f4b6d3b8f7e";

    fn image(email: &str) -> serde_json::Value {
        json!({"id": {"S": ID}, "timestamp": {"N": "1520547428623"}, "email": {"S": email}})
    }

    fn record(
        name: &str,
        old: Option<serde_json::Value>,
        new: Option<serde_json::Value>,
    ) -> EventRecord {
        let mut dynamodb = json!({
            "ApproximateCreationDateTime": 1_700_000_000,
            "Keys": {"id": {"S": ID}},
            "SequenceNumber": "111",
            "SizeBytes": 26,
            "StreamViewType": "NEW_AND_OLD_IMAGES"
        });
        if let Some(old) = old {
            dynamodb["OldImage"] = old;
        }
        if let Some(new) = new {
            dynamodb["NewImage"] = new;
        }
        serde_json::from_value(json!({
            "eventID": "1", "eventName": name, "eventVersion": "1.1",
            "eventSource": "aws:dynamodb", "awsRegion": "us-east-1", "dynamodb": dynamodb,
        }))
        .unwrap()
    }

    fn user(email: &str) -> User {
        serde_json::from_value(
            json!({"id": ID, "timestamp": 1_520_547_428_623_i64, "email": email}),
        )
        .unwrap()
    }

    #[test]
    fn classifies_insert_modify_and_remove() {
        let created = ChangeEvent::decode(&record("INSERT", None, Some(image("a@b.co")))).unwrap();
        assert_eq!(
            created.change,
            UserChange::Created {
                new: user("a@b.co")
            }
        );
        assert_eq!(created.user_id.to_string(), ID);
        assert_eq!(created.sequence_number, "111");
        assert_eq!(created.changed_at, EpochSeconds(1_700_000_000));

        let updated = ChangeEvent::decode(&record(
            "MODIFY",
            Some(image("a@b.co")),
            Some(image("c@d.co")),
        ))
        .unwrap();
        assert_eq!(
            updated.change,
            UserChange::Updated {
                old: user("a@b.co"),
                new: user("c@d.co")
            }
        );
        assert_eq!(updated.change.event_name().as_str(), "MODIFY");

        let deleted = ChangeEvent::decode(&record("REMOVE", Some(image("a@b.co")), None)).unwrap();
        assert_eq!(
            deleted.change,
            UserChange::Deleted {
                old: user("a@b.co")
            }
        );
        assert_eq!(deleted.change.after(), None);
    }

    #[test]
    fn rejects_records_that_are_not_user_changes() {
        let bad_image = json!({"id": {"S": ID}, "email": {"S": "a@b.co"}});
        let wrong_id = json!({"id": {"S": "6f9619ff-8b86-d011-b42d-00c04fc964ff"}, "timestamp": {"N": "1"}, "email": {"S": "a@b.co"}});
        let cases = [
            record("INSERT", None, None),
            record("INSERT", None, Some(bad_image)),
            record("INSERT", None, Some(wrong_id)),
            record("MODIFY", None, Some(image("a@b.co"))),
            record("REMOVE", None, None),
            record("TRUNCATE", Some(image("a@b.co")), None),
        ];
        for case in cases {
            let result = ChangeEvent::decode(&case);
            assert!(result.is_err(), "{result:?}");
        }
    }

    #[test]
    fn an_image_is_read_as_stored_even_if_todays_email_rule_rejects_it() {
        // An old or foreign row is still a user: its change is recorded, not a poison record.
        for stored in ["not-an-email", "Ann@Example.COM", "\u{212A}elvin@test.com"] {
            let event = ChangeEvent::decode(&record("INSERT", None, Some(image(stored)))).unwrap();
            assert_eq!(event.change.after().unwrap().email.as_str(), stored);
        }
        let mut bad_key = record("INSERT", None, Some(image("not-an-email")));
        bad_key.change.keys = serde_json::from_value(json!({"id": {"S": "not-a-uuid"}})).unwrap();
        assert!(ChangeEvent::decode(&bad_key).is_err());
    }

    #[test]
    fn rejects_a_record_without_a_usable_key_or_sequence_number() {
        let mut no_key = record("INSERT", None, Some(image("a@b.co")));
        no_key.change.keys = serde_dynamo::Item::default();
        assert!(ChangeEvent::decode(&no_key).is_err());
        let mut no_sequence = record("INSERT", None, Some(image("a@b.co")));
        no_sequence.change.sequence_number = None;
        assert!(ChangeEvent::decode(&no_sequence).is_err());
    }
}

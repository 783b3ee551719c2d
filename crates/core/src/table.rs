//! The table layout: which tables exist, their keys and attribute names. Every attribute name
//! used in a condition or key lives here; `template.yaml` declares the same keys.
//!
//! - users table: one item per user, keyed by `id`; its stream feeds the stream function.
//! - emails table: one item per registered email, keyed by `email`, holding the owner's `userId`.
//!   Writing it in the same transaction as the user is what makes emails unique.
//! - history table: one item per handled stream record, keyed by `userId` + `sequenceNumber`.

/// Partition key of the users table.
pub const USER_ID: &str = "id";
/// The user's email attribute in the users table.
pub const USER_EMAIL: &str = "email";
/// Partition key of the emails table.
pub const EMAIL: &str = "email";
/// The owner of an email, in the emails table.
pub const EMAIL_OWNER: &str = "userId";
/// Partition key of the history table.
pub const HISTORY_USER_ID: &str = "userId";
/// Sort key of the history table.
pub const HISTORY_SEQUENCE_NUMBER: &str = "sequenceNumber";

use crate::model::{Email, UserId};
use serde::{Deserialize, Serialize};

/// An item of the emails table: who owns an email. Field names match the constants above.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct EmailItem {
    pub email: Email,
    #[serde(rename = "userId")]
    pub user_id: UserId,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_item_uses_the_declared_attribute_names() {
        let item = EmailItem {
            email: Email::parse("a@b.co").unwrap(),
            user_id: UserId::random(),
        };
        let json = serde_json::to_value(&item).unwrap();
        let mut names: Vec<&str> = json
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        names.sort_unstable();
        assert_eq!(names, [EMAIL, EMAIL_OWNER]);
    }

    #[test]
    fn user_item_uses_the_declared_attribute_names() {
        let user = crate::User::register(Email::parse("a@b.co").unwrap(), crate::Timestamp(1));
        let json = serde_json::to_value(&user).unwrap();
        assert!(json.get(USER_ID).is_some());
        assert!(json.get(USER_EMAIL).is_some());
    }
}

//! The welcome queue's message: which user to welcome. It carries the user's id and nothing
//! else, so an email address never sits in a queue, a DLQ or a redrive: the welcome function
//! reads the user as it is when the message is handled (a user deleted by then gets nothing).

use crate::model::UserId;
use serde::{Deserialize, Serialize};

/// The body of a message on the welcome queue, as JSON: `{"userId": "<uuid>"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WelcomeMessage {
    #[serde(rename = "userId")]
    pub user_id: UserId,
}

impl WelcomeMessage {
    pub fn to_body(self) -> String {
        serde_json::to_string(&self).expect("a user id always serializes")
    }

    /// Reads a message body; anything but exactly this shape is refused.
    pub fn from_body(body: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(body)
    }

    /// The key of this user's welcome in the idempotency table.
    pub fn idempotency_key(self) -> String {
        format!("welcome#{}", self.user_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_round_trips_and_holds_only_the_id() {
        let message = WelcomeMessage {
            user_id: UserId::random(),
        };
        let body = message.to_body();
        assert_eq!(body, format!(r#"{{"userId":"{}"}}"#, message.user_id));
        assert_eq!(WelcomeMessage::from_body(&body).unwrap(), message);
    }

    #[test]
    fn other_bodies_are_refused() {
        for body in [
            "",
            "not json",
            "{}",
            r#"{"userId":"nope"}"#,
            r#"{"userId":"6a1f8b5e-3b2c-4f0a-9d7e-2c1b0a9f8e7d","email":"a@b.co"}"#,
        ] {
            assert!(WelcomeMessage::from_body(body).is_err(), "{body}");
        }
    }
}

//! The `User` model and the value types it is made of, each valid by construction.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};
use uuid::Uuid;

/// A registered user, exactly as it is stored and as the API returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: UserId,
    /// When the user was created, in milliseconds since the Unix epoch.
    pub timestamp: Timestamp,
    pub email: Email,
}

impl User {
    /// A new user with a fresh random id, created at `timestamp`.
    pub fn register(email: Email, timestamp: Timestamp) -> Self {
        Self {
            id: UserId::random(),
            timestamp,
            email,
        }
    }
}

/// A user's id: a UUID, written in its canonical lower-case hyphenated form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct UserId(Uuid);

impl UserId {
    /// A fresh random (v4) id. The server always chooses ids; clients never do.
    pub fn random() -> Self {
        Self(Uuid::new_v4())
    }

    /// Parses an id sent by a client or read from storage.
    pub fn parse(raw: &str) -> Result<Self, InvalidUserId> {
        Uuid::try_parse(raw.trim())
            .map(Self)
            .map_err(|_| InvalidUserId)
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

impl TryFrom<String> for UserId {
    type Error = InvalidUserId;
    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Self::parse(&raw)
    }
}

impl From<UserId> for String {
    fn from(id: UserId) -> Self {
        id.to_string()
    }
}

/// The reason a string is not a [`UserId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a UUID")]
pub struct InvalidUserId;

/// Milliseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// The current time from the system clock.
    pub fn now() -> Self {
        let since_epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Self(i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX))
    }
}

/// Whole seconds since the Unix epoch: the precision of the time DynamoDB gives a stream
/// record (`ApproximateCreationDateTime`), kept as it comes rather than padded to milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EpochSeconds(pub i64);

/// The longest address SMTP can carry (RFC 5321 path limit less the angle brackets).
pub const MAX_EMAIL_LEN: usize = 254;
const MAX_LOCAL_PART_LEN: usize = 64;
const MAX_DOMAIN_LABEL_LEN: usize = 63;

/// An email address.
///
/// Two ways in, on purpose: [`Email::parse`] for what a client sends (strict: validated, then
/// lower-cased), and deserialisation for what is already stored (tolerant: read as it is). A rule
/// tightened later, or a row written by another tool, must never make a stored user unreadable,
/// unchangeable, undeletable or a poison record in the stream.
///
/// Lower-casing the whole address (not only the domain) is what makes the uniqueness rule match
/// what people expect: `Ann@Example.com` and `ann@example.com` are one user.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(into = "String")]
pub struct Email(String);

impl Email {
    /// Validates and normalises an address typed by a person.
    ///
    /// The rule: after trimming surrounding whitespace, an ASCII address of at most 254
    /// characters, `local@domain`, where the local part (at most 64) is letters, digits, dots
    /// (not first, last or doubled) and ``!#$%&'*+/=?^_`{|}~-``, and the domain is two or more
    /// host-name labels (letters, digits, inner hyphens; at most 63 each) not ending in a number.
    /// An internationalised domain is accepted in its ASCII (`xn--`) form. The rule is checked
    /// on the address as sent and only then lower-cased: lower-casing first would turn
    /// characters such as the Kelvin sign (U+212A) into ASCII letters and let them through.
    pub fn parse(raw: &str) -> Result<Self, InvalidEmail> {
        let email = raw.trim();
        if email.is_empty() {
            return Err(InvalidEmail("must not be empty"));
        }
        if !email.is_ascii() {
            return Err(InvalidEmail(
                "must be ASCII (write an international domain in its xn-- form)",
            ));
        }
        if email.len() > MAX_EMAIL_LEN {
            return Err(InvalidEmail("must be at most 254 characters"));
        }
        let Some((local, domain)) = email.rsplit_once('@') else {
            return Err(InvalidEmail("must contain an @"));
        };
        validate_local_part(local)?;
        validate_domain(domain)?;
        Ok(Self(email.to_ascii_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn validate_local_part(local: &str) -> Result<(), InvalidEmail> {
    const SPECIALS: &str = "!#$%&'*+/=?^_`{|}~.-";
    if local.is_empty() {
        return Err(InvalidEmail("needs a part before the @"));
    }
    if local.len() > MAX_LOCAL_PART_LEN {
        return Err(InvalidEmail(
            "the part before the @ must be at most 64 characters",
        ));
    }
    if !local
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || SPECIALS.contains(c))
    {
        return Err(InvalidEmail(
            "the part before the @ has a character that is not allowed",
        ));
    }
    if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return Err(InvalidEmail("the part before the @ has a misplaced dot"));
    }
    Ok(())
}

fn validate_domain(domain: &str) -> Result<(), InvalidEmail> {
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.len() < 2 {
        return Err(InvalidEmail("the domain needs a dot, as in example.com"));
    }
    for label in &labels {
        let valid = !label.is_empty()
            && label.len() <= MAX_DOMAIN_LABEL_LEN
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !valid {
            return Err(InvalidEmail("the domain is not a valid host name"));
        }
    }
    if labels
        .last()
        .is_some_and(|tld| tld.chars().all(|c| c.is_ascii_digit()))
    {
        return Err(InvalidEmail("the domain must end in a name, not a number"));
    }
    Ok(())
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Email {
    /// Reads a stored email as it is, without validating it (see [`Email`]).
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Self)
    }
}

impl From<Email> for String {
    fn from(email: Email) -> Self {
        email.0
    }
}

/// Why a string is not a valid [`Email`], in words a client can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidEmail(pub &'static str);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_is_trimmed_and_lower_cased() {
        let email = Email::parse("  Test@Test.COM \n").unwrap();
        assert_eq!(email.as_str(), "test@test.com");
    }

    #[test]
    fn accepts_common_addresses() {
        for ok in [
            "test@test.com",
            "first.last+tag@sub.example.co.uk",
            "o'brien@example.ie",
            "x@a-b.io",
        ] {
            assert!(Email::parse(ok).is_ok(), "{ok} should be valid");
        }
    }

    #[test]
    fn rejects_malformed_addresses() {
        for bad in [
            "",
            "   ",
            "plainaddress",
            "@example.com",
            "user@",
            "user@localhost",
            "user@@example.com",
            "us er@example.com",
            ".user@example.com",
            "user.@example.com",
            "us..er@example.com",
            "user@-example.com",
            "user@example-.com",
            "user@exa_mple.com",
            "user@example..com",
            "user@127.0.0.1",
            "user@example.com.",
            "usér@example.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn enforces_length_limits() {
        let at_limit = format!(
            "{}@{}.{}.{}.com",
            "a".repeat(64),
            "b".repeat(63),
            "c".repeat(63),
            "d".repeat(57)
        );
        assert_eq!(at_limit.len(), 254);
        assert!(Email::parse(&at_limit).is_ok());
        let too_long = format!(
            "{}@{}.{}.{}.com",
            "a".repeat(64),
            "b".repeat(63),
            "c".repeat(63),
            "d".repeat(58)
        );
        assert_eq!(
            Email::parse(&too_long),
            Err(InvalidEmail("must be at most 254 characters"))
        );
        let long_local = format!("{}@example.com", "a".repeat(65));
        assert!(Email::parse(&long_local).is_err());
    }

    #[test]
    fn user_id_round_trips_in_canonical_form() {
        let id = UserId::parse("6F9619FF-8B86-D011-B42D-00C04FC964FF").unwrap();
        assert_eq!(id.to_string(), "6f9619ff-8b86-d011-b42d-00c04fc964ff");
        assert_eq!(UserId::parse(&id.to_string()), Ok(id));
        assert_eq!(UserId::parse("not-a-uuid"), Err(InvalidUserId));
        assert_eq!(UserId::parse(""), Err(InvalidUserId));
    }

    #[test]
    fn user_serialises_to_the_api_shape() {
        let user = User {
            id: UserId::parse("4cdc3c36-77d0-4ac5-a3f7-4f4b6d3b8f7e").unwrap(),
            timestamp: Timestamp(1_520_547_428_623),
            email: Email::parse("test@test.com").unwrap(),
        };
        assert_eq!(
            serde_json::to_value(&user).unwrap(),
            serde_json::json!({
                "id": "4cdc3c36-77d0-4ac5-a3f7-4f4b6d3b8f7e",
                "timestamp": 1_520_547_428_623_i64,
                "email": "test@test.com"
            })
        );
    }

    #[test]
    fn a_stored_user_is_read_as_stored_but_its_id_must_be_a_uuid() {
        // The id is the key every operation uses: without a valid one there is no user.
        let bad = serde_json::json!({"id": "x", "timestamp": 1, "email": "test@test.com"});
        assert!(serde_json::from_value::<User>(bad).is_err());
        // The email is data: an address today's rule rejects is still the user's address.
        for stored in [
            "nope",
            "Ann@Example.COM",
            "\u{212A}elvin@test.com",
            "user@localhost",
        ] {
            let user: User = serde_json::from_value(
                serde_json::json!({"id": UserId::random(), "timestamp": 1, "email": stored}),
            )
            .unwrap();
            assert_eq!(user.email.as_str(), stored);
        }
    }

    #[test]
    fn the_rule_is_checked_before_lower_casing() {
        // U+212A KELVIN SIGN lower-cases to an ASCII `k`; U+0130 to `i` and a combining dot.
        for sneaky in [
            "\u{212A}elvin@test.com",
            "user@test.\u{212A}z",
            "\u{130}stanbul@test.com",
            "ann@ex\u{212A}ample.com",
        ] {
            assert!(
                Email::parse(sneaky).is_err(),
                "{sneaky:?} should be rejected"
            );
        }
        assert_eq!(
            Email::parse("\u{212A}elvin@test.com"),
            Err(InvalidEmail(
                "must be ASCII (write an international domain in its xn-- form)"
            ))
        );
        assert_eq!(
            Email::parse("Ann@XN--BCHER-KVA.Example").unwrap().as_str(),
            "ann@xn--bcher-kva.example"
        );
    }
}

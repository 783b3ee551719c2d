//! Side effects done once although every hop delivers at least once: SQS delivers a message
//! again, the stream delivers a record again, a function crashes halfway. What Powertools'
//! idempotency utility does in other languages, in one small piece.
//!
//! Each side effect has a key (say `welcome#<user id>`) and one item in an idempotency table:
//!
//! 1. [`IdempotencyStore::claim`] writes the item *in progress*, held until the invocation's
//!    deadline, with a conditional put: only if there is no item, or the one there is an
//!    abandoned attempt (in progress past its hold) or expired. Two attempts at once: one wins,
//!    the other is told [`Attempt::InProgress`] and tries again later. A finished key answers
//!    [`Attempt::Done`] with the outcome recorded, and the caller skips the work.
//! 2. The winner does the work, then [`IdempotencyStore::complete`] records the outcome (kept for
//!    the store's `keep_for`, then removed by the table's TTL), or, when the work failed in a way
//!    worth retrying, [`IdempotencyStore::release`] deletes the claim so the retry need not wait.
//!
//! An attempt that crashes between claim and work leaves its claim until the hold passes, then
//! the next delivery takes it over. The one window left is a crash after the work and before
//! `complete`: the work is then done again. Nothing short of an idempotent API downstream closes
//! that window; this keeps it to the milliseconds between the two calls.
//!
//! Items hold the key, the state and a short outcome: never the data the work was about.

use crate::deadline::Deadline;
use crate::error::Error;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};
use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Partition key of the idempotency table.
pub const IDEMPOTENCY_KEY: &str = "key";
const STATUS: &str = "status";
const CLAIM_TOKEN: &str = "claimToken";
const HELD_UNTIL: &str = "heldUntil";
const OUTCOME: &str = "outcome";
/// The table's TTL attribute (epoch seconds): DynamoDB removes an item some time after it.
pub const IDEMPOTENCY_EXPIRES_AT: &str = "expiresAt";

const IN_PROGRESS: &str = "IN_PROGRESS";
const DONE: &str = "DONE";

/// How long a finished key is remembered unless told otherwise: longer than anything can be
/// delivered again (the stream keeps records 24 hours, SQS a message 4 days by default, a DLQ
/// 14 days before its redrive).
pub const DEFAULT_KEEP_FOR: Duration = Duration::from_secs(30 * 24 * 3600);

/// What a claim found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// The key is ours: do the work, then complete or release the claim.
    Claimed(Claim),
    /// The work was done before (or decided against) with this outcome: skip it.
    Done { outcome: String },
    /// Another attempt holds the key until this time: try again after it.
    InProgress { held_until: SystemTime },
}

/// Proof of holding a key: completing or releasing it succeeds only with the claim's token, so
/// an attempt whose claim was taken over cannot overwrite the new holder's record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    key: String,
    token: String,
}

impl Claim {
    pub fn key(&self) -> &str {
        &self.key
    }
}

/// The idempotency table, through one SDK client built at start-up.
#[derive(Debug, Clone)]
pub struct IdempotencyStore {
    client: Client,
    table: String,
    keep_for: Duration,
}

impl IdempotencyStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            keep_for: DEFAULT_KEEP_FOR,
        }
    }

    /// Remembers finished keys for this long instead of [`DEFAULT_KEEP_FOR`].
    pub fn keep_for(mut self, keep_for: Duration) -> Self {
        self.keep_for = keep_for;
        self
    }

    /// Claims `key` until `hold_until` (the invocation's deadline: by then the attempt has
    /// finished or Lambda has stopped it), unless it is done or held by a live attempt.
    pub async fn claim(
        &self,
        key: &str,
        hold_until: SystemTime,
        deadline: Deadline,
    ) -> Result<Attempt, Error> {
        let now = SystemTime::now();
        let token = uuid::Uuid::new_v4().to_string();
        let item = HashMap::from([
            (IDEMPOTENCY_KEY.to_owned(), s(key)),
            (STATUS.to_owned(), s(IN_PROGRESS)),
            (CLAIM_TOKEN.to_owned(), s(&token)),
            (HELD_UNTIL.to_owned(), n(epoch_millis(hold_until))),
            // An abandoned claim goes away too, in time.
            (
                IDEMPOTENCY_EXPIRES_AT.to_owned(),
                n(epoch_seconds(now + self.keep_for)),
            ),
        ]);
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            // TTL removes expired items only eventually (often within days): an expired item
            // counts as absent.
            .condition_expression(
                "attribute_not_exists(#key) OR (#status = :in_progress AND #held_until < :now_millis) \
                 OR #expires_at < :now_seconds",
            )
            .expression_attribute_names("#key", IDEMPOTENCY_KEY)
            .expression_attribute_names("#status", STATUS)
            .expression_attribute_names("#held_until", HELD_UNTIL)
            .expression_attribute_names("#expires_at", IDEMPOTENCY_EXPIRES_AT)
            .expression_attribute_values(":in_progress", s(IN_PROGRESS))
            .expression_attribute_values(":now_millis", n(epoch_millis(now)))
            .expression_attribute_values(":now_seconds", n(epoch_seconds(now)))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        match deadline.bound(async { Ok(put.send().await) }).await? {
            Ok(_) => Ok(Attempt::Claimed(Claim {
                key: key.to_owned(),
                token,
            })),
            Err(err) => {
                let holder = match err.as_service_error() {
                    Some(PutItemError::ConditionalCheckFailedException(failed)) => {
                        Some(failed.item().cloned())
                    }
                    _ => None,
                };
                match holder {
                    // The SDK sent the put again after an attempt that timed out but had
                    // written: the claim there is ours.
                    Some(Some(item)) if holds_token(&item, &token) => Ok(Attempt::Claimed(Claim {
                        key: key.to_owned(),
                        token,
                    })),
                    Some(Some(item)) => Ok(attempt_held_by(&item)),
                    // The condition failed but DynamoDB did not say on what: read it.
                    Some(None) => self.read(key, token, deadline).await,
                    None => Err(Error::from_sdk(err)),
                }
            }
        }
    }

    /// Records the outcome of a claimed key's work; the key then answers [`Attempt::Done`] until
    /// it expires. Fails with [`Error::ClaimLost`] if the claim is no longer ours (it was taken
    /// over after its hold passed).
    pub async fn complete(
        &self,
        claim: &Claim,
        outcome: &str,
        deadline: Deadline,
    ) -> Result<(), Error> {
        let expires_at = epoch_seconds(SystemTime::now() + self.keep_for);
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(IDEMPOTENCY_KEY, s(&claim.key))
            .update_expression(
                "SET #status = :done, #outcome = :outcome, #expires_at = :expires_at REMOVE #held_until",
            )
            .condition_expression("#token = :token")
            .expression_attribute_names("#status", STATUS)
            .expression_attribute_names("#outcome", OUTCOME)
            .expression_attribute_names("#expires_at", IDEMPOTENCY_EXPIRES_AT)
            .expression_attribute_names("#held_until", HELD_UNTIL)
            .expression_attribute_names("#token", CLAIM_TOKEN)
            .expression_attribute_values(":done", s(DONE))
            .expression_attribute_values(":outcome", s(outcome))
            .expression_attribute_values(":expires_at", n(expires_at))
            .expression_attribute_values(":token", s(&claim.token));
        match deadline.bound(async { Ok(update.send().await) }).await? {
            Ok(_) => Ok(()),
            Err(err) if is_condition_failure(&err) => Err(Error::ClaimLost(claim.key.clone())),
            Err(err) => Err(Error::from_sdk(err)),
        }
    }

    /// Gives a claimed key up, so the next delivery can claim it at once. A claim that is no
    /// longer ours is left to its new holder.
    pub async fn release(&self, claim: &Claim, deadline: Deadline) -> Result<(), Error> {
        let delete = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key(IDEMPOTENCY_KEY, s(&claim.key))
            .condition_expression("#token = :token")
            .expression_attribute_names("#token", CLAIM_TOKEN)
            .expression_attribute_values(":token", s(&claim.token));
        match deadline.bound(async { Ok(delete.send().await) }).await? {
            Ok(_) => Ok(()),
            Err(err) if is_condition_failure(&err) => Ok(()),
            Err(err) => Err(Error::from_sdk(err)),
        }
    }

    /// What holds a key whose claim failed, read consistently; a key gone in the meantime (just
    /// released) is reported as held until now, so the caller tries again.
    async fn read(&self, key: &str, token: String, deadline: Deadline) -> Result<Attempt, Error> {
        let get = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(IDEMPOTENCY_KEY, s(key))
            .consistent_read(true);
        let output = deadline
            .bound(async { get.send().await.map_err(Error::from_sdk) })
            .await?;
        Ok(match output.item {
            Some(item) if holds_token(&item, &token) => Attempt::Claimed(Claim {
                key: key.to_owned(),
                token,
            }),
            Some(item) => attempt_held_by(&item),
            None => Attempt::InProgress {
                held_until: SystemTime::now(),
            },
        })
    }
}

fn holds_token(item: &HashMap<String, AttributeValue>, token: &str) -> bool {
    item.get(STATUS)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
        == Some(IN_PROGRESS)
        && item
            .get(CLAIM_TOKEN)
            .and_then(|v| v.as_s().ok())
            .map(String::as_str)
            == Some(token)
}

/// What an existing item says of its key. An item of no known state (written by something
/// else) is treated as held for now: never as done, which would skip the work.
fn attempt_held_by(item: &HashMap<String, AttributeValue>) -> Attempt {
    let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
    if text(STATUS).as_deref() == Some(DONE) {
        return Attempt::Done {
            outcome: text(OUTCOME).unwrap_or_default(),
        };
    }
    let held_until = item
        .get(HELD_UNTIL)
        .and_then(|v| v.as_n().ok())
        .and_then(|millis| millis.parse::<u64>().ok())
        .map_or_else(SystemTime::now, |millis| {
            UNIX_EPOCH + Duration::from_millis(millis)
        });
    Attempt::InProgress { held_until }
}

fn is_condition_failure<E, R>(err: &aws_sdk_dynamodb::error::SdkError<E, R>) -> bool
where
    E: ConditionFailure,
{
    err.as_service_error()
        .is_some_and(ConditionFailure::is_condition_failure)
}

/// The operations whose failed condition we tell apart (each SDK operation has its own type).
trait ConditionFailure {
    fn is_condition_failure(&self) -> bool;
}

impl ConditionFailure for aws_sdk_dynamodb::operation::update_item::UpdateItemError {
    fn is_condition_failure(&self) -> bool {
        self.is_conditional_check_failed_exception()
    }
}

impl ConditionFailure for aws_sdk_dynamodb::operation::delete_item::DeleteItemError {
    fn is_condition_failure(&self) -> bool {
        self.is_conditional_check_failed_exception()
    }
}

fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_owned())
}

fn n(value: u64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn epoch_millis(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as u64)
}

fn epoch_seconds(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(pairs: &[(&str, AttributeValue)]) -> HashMap<String, AttributeValue> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect()
    }

    #[test]
    fn only_an_item_in_progress_with_our_token_is_ours() {
        let ours = item(&[(STATUS, s(IN_PROGRESS)), (CLAIM_TOKEN, s("t1"))]);
        assert!(holds_token(&ours, "t1"));
        assert!(!holds_token(&ours, "t2"));
        let done = item(&[(STATUS, s(DONE)), (CLAIM_TOKEN, s("t1"))]);
        assert!(!holds_token(&done, "t1"));
    }

    #[test]
    fn a_done_item_answers_its_outcome() {
        let done = item(&[(STATUS, s(DONE)), (OUTCOME, s("sent"))]);
        assert_eq!(
            attempt_held_by(&done),
            Attempt::Done {
                outcome: "sent".into()
            }
        );
    }

    #[test]
    fn an_item_in_progress_answers_its_hold_and_an_unknown_one_is_never_done() {
        let held = item(&[(STATUS, s(IN_PROGRESS)), (HELD_UNTIL, n(1_800_000_000_000))]);
        assert_eq!(
            attempt_held_by(&held),
            Attempt::InProgress {
                held_until: UNIX_EPOCH + Duration::from_millis(1_800_000_000_000)
            }
        );
        let foreign = item(&[(STATUS, s("SOMETHING")), (HELD_UNTIL, s("soon"))]);
        assert!(matches!(
            attempt_held_by(&foreign),
            Attempt::InProgress { .. }
        ));
    }
}

//! DynamoDB access for users: create with a unique email, change the email, delete by id, read
//! by id. Writes are single transactions, so a user and its email claim always change together.
//!
//! Under concurrency every write is conditional on what was read, and a failed condition is not
//! an answer by itself: the operation reads again and decides again (a bounded number of
//! rounds), so a client's retry racing its first try, or a delete racing a change, gets the
//! answer the final state explains.

use crate::backoff::Backoff;
use crate::config::TableNames;
use crate::error::Error;
use crate::model::{Email, User, UserId};
use crate::table::{self, EmailItem};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, Delete, Put, TransactWriteItem, Update,
};
use std::collections::HashMap;
use std::time::Duration;

/// How often one transaction is sent when DynamoDB cancels it for a passing reason (a conflict
/// with another transaction on the same item, or throttling). The SDK retries neither: it sees a
/// `TransactionCanceledException`, not a throttling error.
const TRANSACTION_ATTEMPTS: u32 = 4;
/// Waits between those attempts: at most 25 + 50 + 100 ms in all, well inside any deadline.
const TRANSACTION_BACKOFF: Backoff = Backoff {
    first: Duration::from_millis(25),
    cap: Duration::from_millis(400),
};
/// How many times an operation reads a user and writes conditionally on what it read before it
/// gives up on a user that keeps changing under it ([`Error::KeptChanging`], a 503). One race
/// costs one extra round; five rounds are only ever used up by a user changed continuously.
const DECISION_ROUNDS: u32 = 5;
/// The longest partition key DynamoDB accepts, in bytes.
const MAX_KEY_BYTES: usize = 2048;

/// What each item of a transaction does, so a cancelled transaction says by name whose
/// condition failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    PutUser,
    ClaimEmail,
    DeleteUser,
    ReleaseEmail,
    UpdateEmail,
    /// Checks that another user still holds the user's email, instead of releasing it.
    LeaveForeignClaim,
    /// Leaves the deleted user's erasure marker in the history table.
    MarkErased,
}

/// How a transaction ended when DynamoDB answered it.
#[derive(Debug)]
enum Transaction {
    Committed,
    /// Cancelled because the conditions of these steps failed; nothing was written.
    ConditionFailed(Vec<Step>),
}

/// Why DynamoDB cancelled a transaction, from its per-item cancellation reasons.
#[derive(Debug, PartialEq, Eq)]
enum Cancellation {
    /// These steps' conditions failed: a domain outcome, decided by the caller.
    Conditions(Vec<Step>),
    /// Another transaction touched the same item: worth sending again.
    Conflict,
    /// DynamoDB throttled an item (`ThrottlingError`, `ProvisionedThroughputExceeded`,
    /// `RequestLimitExceeded`): worth sending again after a wait.
    Throttled,
    /// Anything else (a validation error, an item collection too large, no reason at all): a
    /// fault that sending again cannot mend.
    Fault,
}

impl Cancellation {
    /// Classifies the reasons, given in the order of `steps`. A fault outweighs everything (the
    /// request itself is wrong). Failed conditions are an answer only when every other item
    /// passed: an item that conflicted or was throttled had its condition not checked, so a
    /// decision drawn from the rest could be wrong (a "taken" email when the user was in fact
    /// being deleted); such a mix is sent again like any passing cancellation.
    fn of(steps: &[Step], reasons: &[Option<String>]) -> Self {
        let mut conditions = Vec::new();
        let (mut conflict, mut throttled) = (false, false);
        for (index, reason) in reasons.iter().enumerate() {
            match reason.as_deref() {
                None | Some("None") => {}
                Some("ConditionalCheckFailed") => match steps.get(index) {
                    Some(step) => conditions.push(*step),
                    None => return Self::Fault,
                },
                Some("TransactionConflict") => conflict = true,
                Some(
                    "ThrottlingError" | "ProvisionedThroughputExceeded" | "RequestLimitExceeded",
                ) => {
                    throttled = true;
                }
                Some(_) => return Self::Fault,
            }
        }
        if throttled {
            Self::Throttled
        } else if conflict {
            Self::Conflict
        } else if !conditions.is_empty() {
            Self::Conditions(conditions)
        } else {
            Self::Fault
        }
    }
}

/// Reads users and nothing else: for a function that needs only the users table (and whose
/// role allows only GetItem on it).
#[derive(Debug, Clone)]
pub struct UserReader {
    client: Client,
    users_table: String,
}

impl UserReader {
    pub fn new(client: Client, users_table: impl Into<String>) -> Self {
        Self {
            client,
            users_table: users_table.into(),
        }
    }

    /// Reads a user with a strongly consistent read, as stored (see [`UserRepository::get`]).
    pub async fn get(&self, id: UserId) -> Result<Option<User>, Error> {
        get_user(&self.client, &self.users_table, id).await
    }
}

async fn get_user(client: &Client, users_table: &str, id: UserId) -> Result<Option<User>, Error> {
    let output = client
        .get_item()
        .table_name(users_table)
        .key(table::USER_ID, AttributeValue::S(id.to_string()))
        .consistent_read(true)
        .send()
        .await
        .map_err(Error::from_sdk)?;
    output
        .item
        .map(serde_dynamo::from_item)
        .transpose()
        .map_err(Error::CorruptItem)
}

/// The users and emails tables, through one SDK client built at start-up.
#[derive(Debug, Clone)]
pub struct UserRepository {
    client: Client,
    tables: TableNames,
    /// The history table, where a delete leaves the user's erasure marker.
    erasure_markers: Option<String>,
}

impl UserRepository {
    pub fn new(client: Client, tables: TableNames) -> Self {
        Self {
            client,
            tables,
            erasure_markers: None,
        }
    }

    /// A reader of the same users table (what get-user works with).
    pub fn reader(&self) -> UserReader {
        UserReader::new(self.client.clone(), self.tables.users.clone())
    }

    /// Deletes also write the user's erasure marker into this history table, in the same
    /// transaction: from the moment a delete succeeds, the history answers without the user's
    /// emails and no stream record can write one back (see [`crate::HistoryRepository`]).
    pub fn with_erasure_markers(mut self, history_table: impl Into<String>) -> Self {
        self.erasure_markers = Some(history_table.into());
        self
    }

    /// Stores a new user and claims its email in one transaction.
    ///
    /// Fails with [`Error::EmailTaken`] if another user has the email, however close together
    /// the two requests are: the condition on the emails table is checked atomically.
    pub async fn create(&self, user: &User) -> Result<(), Error> {
        let user_item: HashMap<String, AttributeValue> =
            serde_dynamo::to_item(user).map_err(Error::CorruptItem)?;
        let put_user = Put::builder()
            .table_name(&self.tables.users)
            .set_item(Some(user_item))
            .condition_expression("attribute_not_exists(#id)")
            .expression_attribute_names("#id", table::USER_ID)
            .build()?;
        let steps = vec![
            (
                Step::PutUser,
                TransactWriteItem::builder().put(put_user).build(),
            ),
            (Step::ClaimEmail, self.claim_email(&user.email, user.id)?),
        ];
        match self.transact(steps).await? {
            Transaction::Committed => Ok(()),
            Transaction::ConditionFailed(failed) if failed.contains(&Step::ClaimEmail) => {
                Err(Error::EmailTaken)
            }
            Transaction::ConditionFailed(_) => Err(Error::UserIdCollision(user.id)),
        }
    }

    /// Deletes a user and releases its email, returning the user as it was just before.
    ///
    /// The delete is conditional on the email read, so a change that lands between the read and
    /// the write is never lost silently: the user is read again and deleted as it now is. Fails
    /// with [`Error::UserNotFound`] only when the user is really gone.
    pub async fn delete(&self, id: UserId) -> Result<User, Error> {
        let mut foreign_claim: Option<Email> = None;
        for _ in 0..DECISION_ROUNDS {
            let user = self.get(id).await?.ok_or(Error::UserNotFound(id))?;
            let delete_user = Delete::builder()
                .table_name(&self.tables.users)
                .key(table::USER_ID, AttributeValue::S(id.to_string()))
                .condition_expression("attribute_exists(#id) AND #email = :email")
                .expression_attribute_names("#id", table::USER_ID)
                .expression_attribute_names("#email", table::USER_EMAIL)
                .expression_attribute_values(":email", AttributeValue::S(user.email.to_string()))
                .build()?;
            let mut steps = vec![(
                Step::DeleteUser,
                TransactWriteItem::builder().delete(delete_user).build(),
            )];
            steps.extend(self.let_go_of_email(&user, foreign_claim.as_ref())?);
            if let Some(history) = &self.erasure_markers {
                let marker = Put::builder()
                    .table_name(history)
                    .set_item(Some(crate::history::marker_key(id)))
                    .build()?;
                steps.push((
                    Step::MarkErased,
                    TransactWriteItem::builder().put(marker).build(),
                ));
            }
            match self.transact(steps).await? {
                Transaction::Committed => return Ok(user),
                // Changed or deleted since we read it: read again and decide again.
                Transaction::ConditionFailed(failed) if failed.contains(&Step::DeleteUser) => {}
                Transaction::ConditionFailed(failed) => {
                    foreign_claim = self.judge_claim(&user, &failed);
                }
            }
        }
        Err(Error::KeptChanging(id))
    }

    /// Changes a user's email, keeping emails unique: in one transaction the user's email is
    /// updated (if it still is the one read), the old email's claim is released (if it is this
    /// user's) and the new one is claimed (if nobody else holds it). Returns the user as it now
    /// is; the same email as now (after normalisation) writes nothing, so a retried change
    /// answers as its first try did.
    ///
    /// Fails with [`Error::UserNotFound`] when the user is gone, and [`Error::EmailTaken`] when
    /// another user holds the new email, however close together two changes are.
    pub async fn change_email(&self, id: UserId, email: Email) -> Result<User, Error> {
        let mut foreign_claim: Option<Email> = None;
        for _ in 0..DECISION_ROUNDS {
            let user = self.get(id).await?.ok_or(Error::UserNotFound(id))?;
            if user.email == email {
                return Ok(user);
            }
            let update_email = Update::builder()
                .table_name(&self.tables.users)
                .key(table::USER_ID, AttributeValue::S(id.to_string()))
                .update_expression("SET #email = :new")
                .condition_expression("attribute_exists(#id) AND #email = :old")
                .expression_attribute_names("#id", table::USER_ID)
                .expression_attribute_names("#email", table::USER_EMAIL)
                .expression_attribute_values(":old", AttributeValue::S(user.email.to_string()))
                .expression_attribute_values(":new", AttributeValue::S(email.to_string()))
                .build()?;
            let mut steps = vec![(
                Step::UpdateEmail,
                TransactWriteItem::builder().update(update_email).build(),
            )];
            steps.extend(self.let_go_of_email(&user, foreign_claim.as_ref())?);
            steps.push((Step::ClaimEmail, self.claim_email(&email, id)?));
            match self.transact(steps).await? {
                Transaction::Committed => return Ok(User { email, ..user }),
                // Changed (by a concurrent identical change, say) or deleted since we read it:
                // read again and decide again.
                Transaction::ConditionFailed(failed) if failed.contains(&Step::UpdateEmail) => {}
                // The user was as read, so the claim failed because another user holds it.
                Transaction::ConditionFailed(failed) if failed.contains(&Step::ClaimEmail) => {
                    return Err(Error::EmailTaken);
                }
                Transaction::ConditionFailed(failed) => {
                    foreign_claim = self.judge_claim(&user, &failed);
                }
            }
        }
        Err(Error::KeptChanging(id))
    }

    /// What a write that removes `user` or changes its email does with the claim of its current
    /// email: releases it; or, when the emails table was found to give it to another user, checks
    /// in the same transaction that it still does and leaves it alone; or nothing, when the
    /// stored email cannot even be a key (empty or over DynamoDB's 2048 bytes: no claim can exist).
    fn let_go_of_email(
        &self,
        user: &User,
        foreign_claim: Option<&Email>,
    ) -> Result<Option<(Step, TransactWriteItem)>, Error> {
        let email = &user.email;
        if email.as_str().is_empty() || email.as_str().len() > MAX_KEY_BYTES {
            return Ok(None);
        }
        if foreign_claim == Some(email) {
            let check = ConditionCheck::builder()
                .table_name(&self.tables.emails)
                .key(table::EMAIL, AttributeValue::S(email.to_string()))
                .condition_expression("attribute_exists(#email) AND #owner <> :owner")
                .expression_attribute_names("#email", table::EMAIL)
                .expression_attribute_names("#owner", table::EMAIL_OWNER)
                .expression_attribute_values(":owner", AttributeValue::S(user.id.to_string()))
                .build()?;
            let item = TransactWriteItem::builder().condition_check(check).build();
            return Ok(Some((Step::LeaveForeignClaim, item)));
        }
        Ok(Some((
            Step::ReleaseEmail,
            self.release_email(email, user.id)?,
        )))
    }

    /// After a round whose write failed with the user as read: if the release of its email
    /// failed, the emails table gives that email to another user (a row written by another tool,
    /// or tables restored apart). That claim is not ours to remove, and it must not make the
    /// user undeletable or unchangeable: the next round checks that it is still someone else's
    /// and leaves it alone. If that check failed instead, the claim is ours or gone again.
    fn judge_claim(&self, user: &User, failed: &[Step]) -> Option<Email> {
        if failed.contains(&Step::ReleaseEmail) {
            tracing::warn!(
                user_id = %user.id,
                "the emails table gives this user's email to another user; leaving that claim as it is"
            );
            return Some(user.email.clone());
        }
        None
    }

    /// The claim of `email` for `owner`: written if nobody holds the email, or `owner` already
    /// does (so a claim is never taken from another user, and claiming twice is harmless).
    fn claim_email(&self, email: &Email, owner: UserId) -> Result<TransactWriteItem, Error> {
        let claim: HashMap<String, AttributeValue> = serde_dynamo::to_item(EmailItem {
            email: email.clone(),
            user_id: owner,
        })
        .map_err(Error::CorruptItem)?;
        let put = Put::builder()
            .table_name(&self.tables.emails)
            .set_item(Some(claim))
            .condition_expression("attribute_not_exists(#email) OR #owner = :owner")
            .expression_attribute_names("#email", table::EMAIL)
            .expression_attribute_names("#owner", table::EMAIL_OWNER)
            .expression_attribute_values(":owner", AttributeValue::S(owner.to_string()))
            .build()?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// The release of `email` by `owner`: removed if `owner` holds it; nothing to do if nobody
    /// does; refused if another user holds it.
    fn release_email(&self, email: &Email, owner: UserId) -> Result<TransactWriteItem, Error> {
        let delete = Delete::builder()
            .table_name(&self.tables.emails)
            .key(table::EMAIL, AttributeValue::S(email.to_string()))
            .condition_expression("attribute_not_exists(#email) OR #owner = :owner")
            .expression_attribute_names("#email", table::EMAIL)
            .expression_attribute_names("#owner", table::EMAIL_OWNER)
            .expression_attribute_values(":owner", AttributeValue::S(owner.to_string()))
            .build()?;
        Ok(TransactWriteItem::builder().delete(delete).build())
    }

    /// Who holds an email in the emails table, if anyone.
    pub async fn email_owner(&self, email: &Email) -> Result<Option<UserId>, Error> {
        let output = self
            .client
            .get_item()
            .table_name(&self.tables.emails)
            .key(table::EMAIL, AttributeValue::S(email.to_string()))
            .consistent_read(true)
            .send()
            .await
            .map_err(Error::from_sdk)?;
        let claim: Option<EmailItem> = output
            .item
            .map(serde_dynamo::from_item)
            .transpose()
            .map_err(Error::CorruptItem)?;
        Ok(claim.map(|claim| claim.user_id))
    }

    /// Reads a user with a strongly consistent read, as stored (its email is not validated
    /// again: see [`Email`]).
    pub async fn get(&self, id: UserId) -> Result<Option<User>, Error> {
        get_user(&self.client, &self.tables.users, id).await
    }

    /// Runs a transaction. Cancellations for passing reasons (a conflict with another
    /// transaction, throttling) are sent again after a jittered wait; failed conditions are
    /// returned for the caller to decide on; anything else is a fault.
    async fn transact(&self, steps: Vec<(Step, TransactWriteItem)>) -> Result<Transaction, Error> {
        let (names, items): (Vec<Step>, Vec<TransactWriteItem>) = steps.into_iter().unzip();
        let mut attempt = 1;
        loop {
            let result = self
                .client
                .transact_write_items()
                .set_transact_items(Some(items.clone()))
                .send()
                .await;
            let err = match result {
                Ok(_) => return Ok(Transaction::Committed),
                Err(err) => err,
            };
            if is_in_progress(&err) {
                return Err(Error::TransactionConflict(Box::new(err)));
            }
            let Some(reasons) = cancellation_reasons(&err) else {
                return Err(Error::from_sdk(err));
            };
            let cancellation = Cancellation::of(&names, &reasons);
            match cancellation {
                Cancellation::Conditions(failed) => {
                    return Ok(Transaction::ConditionFailed(failed));
                }
                Cancellation::Fault => return Err(Error::DynamoDb(Box::new(err))),
                Cancellation::Conflict | Cancellation::Throttled
                    if attempt < TRANSACTION_ATTEMPTS =>
                {
                    tracing::warn!(attempt, reason = ?cancellation, "transaction cancelled; retrying");
                    TRANSACTION_BACKOFF.wait(attempt).await;
                    attempt += 1;
                }
                Cancellation::Conflict => return Err(Error::TransactionConflict(Box::new(err))),
                Cancellation::Throttled => return Err(Error::Throttled(Box::new(err))),
            }
        }
    }
}

/// Whether DynamoDB is still running this very transaction. The SDK gives every
/// TransactWriteItems an idempotency token, so its own retry of an attempt that timed out while
/// DynamoDB was still running it gets this: a moment later that attempt has finished, so "retry
/// later" (503) is the truth.
fn is_in_progress<R>(err: &SdkError<TransactWriteItemsError, R>) -> bool {
    matches!(
        err,
        SdkError::ServiceError(service)
            if matches!(service.err(), TransactWriteItemsError::TransactionInProgressException(_))
    )
}

/// The per-item reason codes of a cancelled transaction, in request order; `None` when the
/// transaction failed for another reason.
fn cancellation_reasons<R>(
    err: &SdkError<TransactWriteItemsError, R>,
) -> Option<Vec<Option<String>>> {
    let SdkError::ServiceError(service) = err else {
        return None;
    };
    let TransactWriteItemsError::TransactionCanceledException(cancelled) = service.err() else {
        return None;
    };
    Some(
        cancelled
            .cancellation_reasons()
            .iter()
            .map(|reason| reason.code().map(str::to_owned))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reasons(codes: &[&str]) -> Vec<Option<String>> {
        codes.iter().map(|code| Some((*code).to_owned())).collect()
    }

    const STEPS: [Step; 3] = [Step::UpdateEmail, Step::ReleaseEmail, Step::ClaimEmail];

    #[test]
    fn cancellation_reasons_are_classified() {
        let of = |codes: &[&str]| Cancellation::of(&STEPS, &reasons(codes));
        assert_eq!(
            of(&["None", "None", "ConditionalCheckFailed"]),
            Cancellation::Conditions(vec![Step::ClaimEmail])
        );
        // A condition next to an item that was not checked is no answer yet: sent again.
        assert_eq!(
            of(&["ConditionalCheckFailed", "None", "ThrottlingError"]),
            Cancellation::Throttled
        );
        assert_eq!(
            of(&["TransactionConflict", "ConditionalCheckFailed", "None"]),
            Cancellation::Conflict
        );
        assert_eq!(
            of(&["ConditionalCheckFailed", "ConditionalCheckFailed", "None"]),
            Cancellation::Conditions(vec![Step::UpdateEmail, Step::ReleaseEmail])
        );
        assert_eq!(
            of(&["TransactionConflict", "None", "None"]),
            Cancellation::Conflict
        );
        for throttle in [
            "ThrottlingError",
            "ProvisionedThroughputExceeded",
            "RequestLimitExceeded",
        ] {
            assert_eq!(of(&["None", throttle, "None"]), Cancellation::Throttled);
        }
        assert_eq!(
            of(&["TransactionConflict", "ThrottlingError", "None"]),
            Cancellation::Throttled
        );
        assert_eq!(
            of(&["ConditionalCheckFailed", "ValidationError", "None"]),
            Cancellation::Fault
        );
        assert_eq!(
            of(&["ItemCollectionSizeLimitExceeded"]),
            Cancellation::Fault
        );
        assert_eq!(of(&["None", "None", "None"]), Cancellation::Fault);
        assert_eq!(Cancellation::of(&STEPS, &[]), Cancellation::Fault);
        assert_eq!(Cancellation::of(&STEPS, &[None, None]), Cancellation::Fault);
    }
}

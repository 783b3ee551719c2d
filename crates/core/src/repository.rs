//! DynamoDB access for users: create with a unique email, change the email, delete by id, read
//! by id. Writes are single transactions, so a user and its email claim always change together.

use crate::config::TableNames;
use crate::error::Error;
use crate::model::{Email, User, UserId};
use crate::table::{self, EmailItem};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, TransactWriteItem, Update};
use std::collections::HashMap;
use std::time::Duration;

/// How often a transaction that collided with another one on the same item is tried in all.
/// DynamoDB cancels such transactions with `TransactionConflict`; the SDK does not retry them.
const TRANSACTION_ATTEMPTS: u32 = 3;

/// What each item of a transaction does, so a cancelled transaction says by name whose
/// condition failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    PutUser,
    ClaimEmail,
    DeleteUser,
    ReleaseEmail,
    UpdateEmail,
}

/// How a transaction ended when DynamoDB answered it.
#[derive(Debug)]
enum Transaction {
    Committed,
    /// Cancelled because the conditions of these steps failed; nothing was written.
    ConditionFailed(Vec<Step>),
}

/// The users and emails tables, through one SDK client built at start-up.
#[derive(Debug, Clone)]
pub struct UserRepository {
    client: Client,
    tables: TableNames,
}

impl UserRepository {
    pub fn new(client: Client, tables: TableNames) -> Self {
        Self { client, tables }
    }

    /// Stores a new user and claims its email in one transaction.
    ///
    /// Fails with [`Error::EmailTaken`] if another user has the email, however close together
    /// the two requests are: the condition on the emails table is checked atomically.
    pub async fn create(&self, user: &User) -> Result<(), Error> {
        let user_item: HashMap<String, AttributeValue> =
            serde_dynamo::to_item(user).map_err(Error::CorruptItem)?;
        let email_item: HashMap<String, AttributeValue> = serde_dynamo::to_item(EmailItem {
            email: user.email.clone(),
            user_id: user.id,
        })
        .map_err(Error::CorruptItem)?;

        let put_user = Put::builder()
            .table_name(&self.tables.users)
            .set_item(Some(user_item))
            .condition_expression("attribute_not_exists(#id)")
            .expression_attribute_names("#id", table::USER_ID)
            .build()?;
        let claim_email = Put::builder()
            .table_name(&self.tables.emails)
            .set_item(Some(email_item))
            .condition_expression("attribute_not_exists(#email)")
            .expression_attribute_names("#email", table::EMAIL)
            .build()?;

        let outcome = self
            .transact(vec![
                (
                    Step::PutUser,
                    TransactWriteItem::builder().put(put_user).build(),
                ),
                (
                    Step::ClaimEmail,
                    TransactWriteItem::builder().put(claim_email).build(),
                ),
            ])
            .await?;
        match outcome {
            Transaction::Committed => Ok(()),
            Transaction::ConditionFailed(failed) if failed.contains(&Step::ClaimEmail) => {
                Err(Error::EmailTaken)
            }
            Transaction::ConditionFailed(_) => Err(Error::UserIdCollision(user.id)),
        }
    }

    /// Deletes a user and releases its email, returning the user as it was.
    pub async fn delete(&self, id: UserId) -> Result<User, Error> {
        let user = self.get(id).await?.ok_or(Error::UserNotFound(id))?;

        // The conditions make the delete exact: the user still has the email we read, and the
        // email entry (if any) belongs to this user, so a concurrent change is never clobbered.
        let delete_user = Delete::builder()
            .table_name(&self.tables.users)
            .key(table::USER_ID, AttributeValue::S(id.to_string()))
            .condition_expression("attribute_exists(#id) AND #email = :email")
            .expression_attribute_names("#id", table::USER_ID)
            .expression_attribute_names("#email", table::USER_EMAIL)
            .expression_attribute_values(":email", AttributeValue::S(user.email.to_string()))
            .build()?;
        let release_email = Delete::builder()
            .table_name(&self.tables.emails)
            .key(table::EMAIL, AttributeValue::S(user.email.to_string()))
            .condition_expression("attribute_not_exists(#email) OR #owner = :id")
            .expression_attribute_names("#email", table::EMAIL)
            .expression_attribute_names("#owner", table::EMAIL_OWNER)
            .expression_attribute_values(":id", AttributeValue::S(id.to_string()))
            .build()?;

        let outcome = self
            .transact(vec![
                (
                    Step::DeleteUser,
                    TransactWriteItem::builder().delete(delete_user).build(),
                ),
                (
                    Step::ReleaseEmail,
                    TransactWriteItem::builder().delete(release_email).build(),
                ),
            ])
            .await?;
        match outcome {
            Transaction::Committed => Ok(user),
            // Deleted (or changed) by a concurrent request between our read and our write.
            Transaction::ConditionFailed(failed) if failed.contains(&Step::DeleteUser) => {
                Err(Error::UserNotFound(id))
            }
            Transaction::ConditionFailed(_) => Err(Error::EmailOwnedByAnother(id)),
        }
    }

    /// Changes a user's email, keeping emails unique: in one transaction the user's email is
    /// updated (if it still is the one read), the old email's claim is released (if it is this
    /// user's) and the new one is claimed (if nobody holds it). Returns the user as it now is;
    /// the same email as now (after normalisation) writes nothing.
    ///
    /// Fails with [`Error::UserNotFound`] for an unknown user and [`Error::EmailTaken`] when
    /// another user holds the new email, however close together two changes are.
    pub async fn change_email(&self, id: UserId, email: Email) -> Result<User, Error> {
        let mut attempt = 1;
        loop {
            let user = self.get(id).await?.ok_or(Error::UserNotFound(id))?;
            if user.email == email {
                return Ok(user);
            }
            let outcome = self.transact(self.email_change(&user, &email)?).await?;
            match outcome {
                Transaction::Committed => return Ok(User { email, ..user }),
                Transaction::ConditionFailed(failed) if failed.contains(&Step::ClaimEmail) => {
                    return Err(Error::EmailTaken);
                }
                // The user changed (or was deleted) between our read and our write: read it
                // again and decide anew, a bounded number of times.
                Transaction::ConditionFailed(failed)
                    if failed.contains(&Step::UpdateEmail) && attempt < TRANSACTION_ATTEMPTS =>
                {
                    attempt += 1;
                }
                Transaction::ConditionFailed(failed) if failed.contains(&Step::UpdateEmail) => {
                    return Err(Error::TransactionConflict(
                        format!("user {id} kept changing during an email change").into(),
                    ));
                }
                Transaction::ConditionFailed(_) => return Err(Error::EmailOwnedByAnother(id)),
            }
        }
    }

    /// The three writes of an email change, each with the condition that keeps it exact.
    fn email_change(
        &self,
        user: &User,
        email: &Email,
    ) -> Result<Vec<(Step, TransactWriteItem)>, Error> {
        let id = AttributeValue::S(user.id.to_string());
        let update_email = Update::builder()
            .table_name(&self.tables.users)
            .key(table::USER_ID, id.clone())
            .update_expression("SET #email = :new")
            .condition_expression("attribute_exists(#id) AND #email = :old")
            .expression_attribute_names("#id", table::USER_ID)
            .expression_attribute_names("#email", table::USER_EMAIL)
            .expression_attribute_values(":old", AttributeValue::S(user.email.to_string()))
            .expression_attribute_values(":new", AttributeValue::S(email.to_string()))
            .build()?;
        let release_old = Delete::builder()
            .table_name(&self.tables.emails)
            .key(table::EMAIL, AttributeValue::S(user.email.to_string()))
            .condition_expression("attribute_not_exists(#email) OR #owner = :id")
            .expression_attribute_names("#email", table::EMAIL)
            .expression_attribute_names("#owner", table::EMAIL_OWNER)
            .expression_attribute_values(":id", id)
            .build()?;
        let claim: HashMap<String, AttributeValue> = serde_dynamo::to_item(EmailItem {
            email: email.clone(),
            user_id: user.id,
        })
        .map_err(Error::CorruptItem)?;
        let claim_new = Put::builder()
            .table_name(&self.tables.emails)
            .set_item(Some(claim))
            .condition_expression("attribute_not_exists(#email)")
            .expression_attribute_names("#email", table::EMAIL)
            .build()?;
        Ok(vec![
            (
                Step::UpdateEmail,
                TransactWriteItem::builder().update(update_email).build(),
            ),
            (
                Step::ReleaseEmail,
                TransactWriteItem::builder().delete(release_old).build(),
            ),
            (
                Step::ClaimEmail,
                TransactWriteItem::builder().put(claim_new).build(),
            ),
        ])
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

    /// Reads a user with a strongly consistent read.
    pub async fn get(&self, id: UserId) -> Result<Option<User>, Error> {
        let output = self
            .client
            .get_item()
            .table_name(&self.tables.users)
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

    /// Runs a transaction, trying it again when it collided with another transaction.
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
            let Some(reasons) = cancellation_reasons(&err) else {
                return Err(Error::from_sdk(err));
            };
            let failed: Vec<Step> = names
                .iter()
                .zip(&reasons)
                .filter(|(_, reason)| reason.as_deref() == Some("ConditionalCheckFailed"))
                .map(|(step, _)| *step)
                .collect();
            if !failed.is_empty() {
                return Ok(Transaction::ConditionFailed(failed));
            }
            let conflicted = reasons
                .iter()
                .any(|reason| reason.as_deref() == Some("TransactionConflict"));
            if !conflicted {
                return Err(Error::from_sdk(err));
            }
            if attempt == TRANSACTION_ATTEMPTS {
                return Err(Error::TransactionConflict(Box::new(err)));
            }
            tracing::warn!(attempt, "transaction conflicted with another one; retrying");
            tokio::time::sleep(Duration::from_millis(25 * u64::from(attempt))).await;
            attempt += 1;
        }
    }
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

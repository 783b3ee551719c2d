//! DynamoDB access for users: create with a unique email, delete by id. Both are single
//! transactions, so a user and its email entry are always written or removed together.

use crate::error::Error;
use crate::table::{self, EmailItem, TableNames};
use crate::user::{User, UserId};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, TransactWriteItem};
use std::collections::HashMap;
use std::time::Duration;

/// How often a transaction that collided with another one on the same item is tried in all.
/// DynamoDB cancels such transactions with `TransactionConflict`; the SDK does not retry them.
const TRANSACTION_ATTEMPTS: u32 = 3;

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
            .build()
            .map_err(|err| Error::DynamoDb(err.into()))?;
        let claim_email = Put::builder()
            .table_name(&self.tables.emails)
            .set_item(Some(email_item))
            .condition_expression("attribute_not_exists(#email)")
            .expression_attribute_names("#email", table::EMAIL)
            .build()
            .map_err(|err| Error::DynamoDb(err.into()))?;

        let outcome = self
            .transact([
                TransactWriteItem::builder().put(put_user).build(),
                TransactWriteItem::builder().put(claim_email).build(),
            ])
            .await?;
        match outcome {
            Transaction::Committed => Ok(()),
            Transaction::ConditionFailed(failed) if failed[1] => Err(Error::EmailTaken),
            // A random v4 id that already exists: astronomically unlikely, never overwritten.
            Transaction::ConditionFailed(_) => Err(Error::DynamoDb(
                format!("user id {} already exists", user.id).into(),
            )),
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
            .build()
            .map_err(|err| Error::DynamoDb(err.into()))?;
        let release_email = Delete::builder()
            .table_name(&self.tables.emails)
            .key(table::EMAIL, AttributeValue::S(user.email.to_string()))
            .condition_expression("attribute_not_exists(#email) OR #owner = :id")
            .expression_attribute_names("#email", table::EMAIL)
            .expression_attribute_names("#owner", table::EMAIL_OWNER)
            .expression_attribute_values(":id", AttributeValue::S(id.to_string()))
            .build()
            .map_err(|err| Error::DynamoDb(err.into()))?;

        let outcome = self
            .transact([
                TransactWriteItem::builder().delete(delete_user).build(),
                TransactWriteItem::builder().delete(release_email).build(),
            ])
            .await?;
        match outcome {
            Transaction::Committed => Ok(user),
            // Deleted by a concurrent request between our read and our write.
            Transaction::ConditionFailed(failed) if failed[0] => Err(Error::UserNotFound(id)),
            Transaction::ConditionFailed(_) => Err(Error::DynamoDb(
                format!("email of user {id} is registered to another user").into(),
            )),
        }
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

    /// Runs a two-item transaction, retrying it when it collided with another transaction.
    async fn transact(&self, items: [TransactWriteItem; 2]) -> Result<Transaction, Error> {
        let mut attempt = 1;
        loop {
            let result = self
                .client
                .transact_write_items()
                .set_transact_items(Some(items.to_vec()))
                .send()
                .await;
            let err = match result {
                Ok(_) => return Ok(Transaction::Committed),
                Err(err) => err,
            };
            let reasons: Vec<Option<String>> = match &err {
                SdkError::ServiceError(service) => match service.err() {
                    TransactWriteItemsError::TransactionCanceledException(cancelled) => cancelled
                        .cancellation_reasons()
                        .iter()
                        .map(|reason| reason.code().map(str::to_owned))
                        .collect(),
                    _ => return Err(Error::from_sdk(err)),
                },
                _ => return Err(Error::from_sdk(err)),
            };
            let failed = [0, 1].map(|i| {
                reasons.get(i).and_then(Option::as_deref) == Some("ConditionalCheckFailed")
            });
            if failed.iter().any(|&f| f) {
                return Ok(Transaction::ConditionFailed(failed));
            }
            let conflicted = reasons
                .iter()
                .any(|code| code.as_deref() == Some("TransactionConflict"));
            if !conflicted || attempt == TRANSACTION_ATTEMPTS {
                return Err(if conflicted {
                    Error::Throttled(Box::new(err))
                } else {
                    Error::from_sdk(err)
                });
            }
            tracing::warn!(attempt, "transaction conflicted with another one; retrying");
            tokio::time::sleep(Duration::from_millis(25 * u64::from(attempt))).await;
            attempt += 1;
        }
    }
}

/// How a transaction ended when DynamoDB answered it.
enum Transaction {
    Committed,
    /// Cancelled because the condition of these items (in request order) failed.
    ConditionFailed([bool; 2]),
}

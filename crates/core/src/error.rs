//! The users domain's error type: outcomes a caller must handle (unknown user, taken email) and
//! faults of DynamoDB or of the stored data. Request errors belong to the HTTP crate, stream-record
//! errors to [`crate::InvalidRecord`]; `users-http` maps these to status codes.

use crate::model::UserId;
use aws_sdk_dynamodb::error::{BuildError, ProvideErrorMetadata, SdkError};

/// A boxed error from the AWS SDK, kept as the source for logs.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    // --- Outcomes of the domain's rules. ---
    #[error("no user with id {0}")]
    UserNotFound(UserId),
    #[error("a user with this email already exists")]
    EmailTaken,

    // --- Faults of AWS: worth retrying later. ---
    #[error("DynamoDB throttled the request")]
    Throttled(#[source] BoxError),
    #[error("DynamoDB could not be reached")]
    Unavailable(#[source] BoxError),
    /// DynamoDB left writes of a batch unprocessed (throttling) after every retry, or answered
    /// in a way that does not say they were written: either way they are not known to be done.
    #[error("DynamoDB left writes unprocessed after retries")]
    Unprocessed,
    /// DynamoDB had not answered when the invocation's deadline (less a margin) came.
    #[error("DynamoDB did not answer before the invocation's deadline")]
    DeadlineExceeded,
    /// DynamoDB cancelled a transaction because another one touched the same item, more often
    /// than we retry.
    #[error("the transaction kept colliding with concurrent transactions")]
    TransactionConflict(#[source] BoxError),
    /// The user changed between every read and write of an operation, more often than we read
    /// again and decide again: others are changing it right now.
    #[error("user {0} kept changing during the operation")]
    KeptChanging(UserId),

    // --- Faults of ours or of AWS: details only in the logs. ---
    /// Any other failed SDK call (a missing table, a denied permission, a validation error).
    #[error("DynamoDB request failed")]
    DynamoDb(#[source] BoxError),
    /// A request the SDK refused to build: a bug in this crate.
    #[error("could not build a DynamoDB request")]
    InvalidRequest(#[from] BuildError),
    #[error("a stored item is not a valid user")]
    CorruptItem(#[source] serde_dynamo::Error),
    /// A freshly generated id was already taken: a random v4 UUID collision, never overwritten.
    #[error("user id {0} already exists")]
    UserIdCollision(UserId),
    /// An idempotency claim was taken over by another attempt (ours had outlived its hold) before
    /// we recorded our outcome: the work may have been done twice.
    #[error("the idempotency claim on {0} was taken over by another attempt")]
    ClaimLost(String),
    /// The emails table says a user's email belongs to someone else: the two tables disagree.
    #[error("the email of user {0} is registered to another user")]
    EmailOwnedByAnother(UserId),
}

impl Error {
    /// Classifies a failed SDK call: throttling and transport failures are worth retrying later;
    /// anything else is a fault. The SDK has already retried what it could.
    pub fn from_sdk<E, R>(err: SdkError<E, R>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        R: std::fmt::Debug + Send + Sync + 'static,
    {
        let throttled = matches!(
            err.code(),
            Some(
                "ThrottlingException"
                    | "ProvisionedThroughputExceededException"
                    | "RequestLimitExceeded"
                    | "LimitExceededException"
            )
        );
        let unreachable = matches!(
            err,
            SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) | SdkError::ResponseError(_)
        );
        if throttled {
            Self::Throttled(Box::new(err))
        } else if unreachable {
            Self::Unavailable(Box::new(err))
        } else {
            Self::DynamoDb(Box::new(err))
        }
    }

    /// Whether the caller should be told to retry later: the fault is AWS's and passing.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::Throttled(_)
                | Self::Unavailable(_)
                | Self::Unprocessed
                | Self::DeadlineExceeded
                | Self::TransactionConflict(_)
                | Self::KeptChanging(_)
        )
    }
}

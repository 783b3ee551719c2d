//! The one error type of the users domain. Variants say what went wrong in a client's terms
//! (invalid input, unknown user, taken email) or in AWS's terms (throttled, unavailable);
//! [`crate::http`] maps them to status codes in one place.

use crate::user::{InvalidEmail, UserId};
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};

/// A boxed error from a lower layer (the AWS SDK), kept as the source for logs.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    // --- A client's mistakes: 4xx, and nothing is written. ---
    #[error("request body is not valid JSON: {0}")]
    MalformedJson(#[source] serde_json::Error),
    #[error("request body must be a JSON object")]
    NotAnObject,
    #[error("`{0}` is required")]
    MissingField(&'static str),
    #[error("`{field}` must be {expected}")]
    WrongType {
        field: &'static str,
        expected: &'static str,
    },
    #[error("unknown field `{0}`")]
    UnknownField(String),
    #[error("`email` is not a valid email address: {0}")]
    InvalidEmail(#[from] InvalidEmail),
    #[error("`id` is not a valid user id: expected a UUID")]
    InvalidUserId,
    #[error("request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("method {0} is not allowed: use POST")]
    MethodNotAllowed(String),
    #[error("no user with id {0}")]
    UserNotFound(UserId),
    #[error("a user with this email already exists")]
    EmailTaken,

    // --- Faults of AWS or of our data: 5xx, details only in the logs. ---
    #[error("DynamoDB throttled the request")]
    Throttled(#[source] BoxError),
    #[error("DynamoDB could not be reached")]
    Unavailable(#[source] BoxError),
    #[error("DynamoDB request failed")]
    DynamoDb(#[source] BoxError),
    #[error("a stored item is not a valid user")]
    CorruptItem(#[source] serde_dynamo::Error),
    #[error("stream record is not a valid user change: {0}")]
    InvalidStreamRecord(String),
}

impl Error {
    /// Classifies a failed SDK call: throttling and transport failures are worth retrying later
    /// (503); anything else is our fault (500). The SDK has already retried what it could.
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
}

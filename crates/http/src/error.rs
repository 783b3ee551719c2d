//! The errors of an HTTP function: a request's own mistakes, or the domain's outcomes and faults.

use lambda_http::http::{Method, StatusCode};
use users_core::{InvalidEmail, InvalidUserId};

/// What is wrong with a request, in the client's terms. Always a 4xx; nothing is written.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("method {method} is not allowed: use {allowed}")]
    MethodNotAllowed { method: Method, allowed: Method },
    #[error("request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
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
    /// A path or query parameter with a value the route does not take.
    #[error("`{name}` must be {expected}")]
    InvalidParameter {
        name: &'static str,
        expected: &'static str,
    },
    #[error("`email` is not a valid email address: {0}")]
    InvalidEmail(#[from] InvalidEmail),
    #[error("`id` is not a valid user id: expected a UUID")]
    InvalidUserId(#[from] InvalidUserId),
}

/// Everything an HTTP function can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Request(#[from] RequestError),
    #[error(transparent)]
    Users(#[from] users_core::Error),
}

impl From<InvalidEmail> for ApiError {
    fn from(error: InvalidEmail) -> Self {
        Self::Request(error.into())
    }
}

impl From<InvalidUserId> for ApiError {
    fn from(error: InvalidUserId) -> Self {
        Self::Request(error.into())
    }
}

impl ApiError {
    /// The status code for an error: the one place where errors meet HTTP.
    pub fn status(&self) -> StatusCode {
        use users_core::Error as Users;
        match self {
            Self::Request(request) => match request {
                RequestError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
                RequestError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
                RequestError::MalformedJson(_)
                | RequestError::NotAnObject
                | RequestError::MissingField(_)
                | RequestError::WrongType { .. }
                | RequestError::UnknownField(_)
                | RequestError::InvalidParameter { .. }
                | RequestError::InvalidEmail(_)
                | RequestError::InvalidUserId(_) => StatusCode::BAD_REQUEST,
            },
            Self::Users(Users::UserNotFound(_)) => StatusCode::NOT_FOUND,
            Self::Users(Users::EmailTaken) => StatusCode::CONFLICT,
            Self::Users(error) if error.is_transient() => StatusCode::SERVICE_UNAVAILABLE,
            Self::Users(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The method a route allows, for the `allow` header of a 405.
    pub(crate) fn allowed_method(&self) -> Option<&Method> {
        match self {
            Self::Request(RequestError::MethodNotAllowed { allowed, .. }) => Some(allowed),
            _ => None,
        }
    }
}

//! How results and errors become responses. Every body is JSON with
//! `content-type: application/json`; every error is `{"message": ...}`.

use crate::error::ApiError;
use lambda_http::http::{StatusCode, header};
use lambda_http::{Body, Response};
use serde::Serialize;

/// Turns a handler's result into the response: `success` status with the value as JSON, or the
/// error's status with a message. Faults of ours are logged in full and answered vaguely.
pub fn respond<T: Serialize>(success: StatusCode, result: Result<T, ApiError>) -> Response<Body> {
    match result {
        // Serialised straight from the type, so fields keep their declared order.
        Ok(value) => match serde_json::to_string(&value) {
            Ok(body) => json_response(success, body),
            Err(err) => {
                tracing::error!(error = %err, "could not serialise the response");
                message_response(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
            }
        },
        Err(error) => error_response(&error),
    }
}

/// The response for an error.
pub fn error_response(error: &ApiError) -> Response<Body> {
    let status = error.status();
    if status.is_client_error() {
        tracing::info!(status = status.as_u16(), error = %error, "request rejected");
        let mut response = message_response(status, &error.to_string());
        if let Some(allowed) = error.allowed_method()
            && let Ok(value) = header::HeaderValue::from_str(allowed.as_str())
        {
            response.headers_mut().insert(header::ALLOW, value);
        }
        response
    } else {
        // `{:?}` keeps the source chain (the SDK error) in the log, never in the response.
        tracing::error!(status = status.as_u16(), error = %error, details = ?error, "request failed");
        let message = if status == StatusCode::SERVICE_UNAVAILABLE {
            "service temporarily unavailable, please retry"
        } else {
            "internal error"
        };
        message_response(status, message)
    }
}

fn message_response(status: StatusCode, message: &str) -> Response<Body> {
    json_response(
        status,
        serde_json::json!({ "message": message }).to_string(),
    )
}

fn json_response(status: StatusCode, body: String) -> Response<Body> {
    let mut response = Response::new(Body::Text(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RequestError;
    use lambda_http::http::Method;
    use serde_json::Value;
    use users_core::{Email, Error, InvalidEmail, InvalidUserId, Timestamp, User, UserId};

    fn body_of(response: &Response<Body>) -> Value {
        serde_json::from_slice(response.body().as_ref()).unwrap()
    }

    #[test]
    fn client_errors_map_to_4xx_with_their_message() {
        let cases: [(ApiError, u16, &str); 6] = [
            (
                RequestError::MissingField("email").into(),
                400,
                "`email` is required",
            ),
            (
                InvalidUserId.into(),
                400,
                "`id` is not a valid user id: expected a UUID",
            ),
            (
                InvalidEmail("must contain an @").into(),
                400,
                "`email` is not a valid email address: must contain an @",
            ),
            (
                Error::EmailTaken.into(),
                409,
                "a user with this email already exists",
            ),
            (
                RequestError::PayloadTooLarge { limit: 4096 }.into(),
                413,
                "request body is larger than 4096 bytes",
            ),
            (
                RequestError::MethodNotAllowed {
                    method: Method::GET,
                    allowed: Method::POST,
                }
                .into(),
                405,
                "method GET is not allowed: use POST",
            ),
        ];
        for (error, status, message) in cases {
            let response = error_response(&error);
            assert_eq!(response.status().as_u16(), status, "{error:?}");
            assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
            assert_eq!(
                body_of(&response),
                serde_json::json!({ "message": message })
            );
        }
        let id = UserId::random();
        let response = error_response(&Error::UserNotFound(id).into());
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert_eq!(
            body_of(&response)["message"],
            format!("no user with id {id}")
        );
    }

    #[test]
    fn faults_map_to_5xx_without_internals() {
        let secret = "arn:aws:dynamodb:us-east-1:123456789012:table/users";
        let cases: [(Error, u16); 6] = [
            (Error::Throttled(secret.into()), 503),
            (Error::Unavailable(secret.into()), 503),
            (Error::TransactionConflict(secret.into()), 503),
            (Error::DynamoDb(secret.into()), 500),
            (Error::UserIdCollision(UserId::random()), 500),
            (Error::EmailOwnedByAnother(UserId::random()), 500),
        ];
        for (error, status) in cases {
            let response = error_response(&error.into());
            assert_eq!(response.status().as_u16(), status);
            let body = String::from_utf8(response.body().to_vec()).unwrap();
            assert!(!body.contains("arn:"), "{body}");
            assert!(!body.contains("DynamoDB"), "{body}");
        }
    }

    #[test]
    fn a_user_is_answered_with_fields_in_the_documented_order() {
        let user = User::register(Email::parse("a@b.co").unwrap(), Timestamp(7));
        let response = respond(StatusCode::CREATED, Ok(&user));
        assert_eq!(response.status(), StatusCode::CREATED);
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
        let body = String::from_utf8(response.body().to_vec()).unwrap();
        assert_eq!(
            body,
            format!(r#"{{"id":"{}","timestamp":7,"email":"a@b.co"}}"#, user.id)
        );
    }

    #[test]
    fn method_not_allowed_says_which_is() {
        let error = RequestError::MethodNotAllowed {
            method: Method::GET,
            allowed: Method::POST,
        };
        let response = error_response(&error.into());
        assert_eq!(response.headers()[header::ALLOW], "POST");
    }
}

//! The HTTP contract of the users API: how request bodies are read, how results and errors
//! become responses. Every error is `{"message": ...}` with `content-type: application/json`.

use crate::error::Error;
use lambda_http::http::{Method, StatusCode, header};
use lambda_http::{Body, Request, Response};
use serde::Serialize;
use serde_json::{Map, Value};

/// The largest body a create or delete ever needs, with room to spare: a 254-character email
/// or a UUID in a small JSON object.
pub const MAX_BODY_BYTES: usize = 4 * 1024;

/// The status code for an error: the one place where errors meet HTTP.
pub fn status_of(error: &Error) -> StatusCode {
    match error {
        Error::MalformedJson(_)
        | Error::NotAnObject
        | Error::MissingField(_)
        | Error::WrongType { .. }
        | Error::UnknownField(_)
        | Error::InvalidEmail(_)
        | Error::InvalidUserId => StatusCode::BAD_REQUEST,
        Error::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        Error::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
        Error::UserNotFound(_) => StatusCode::NOT_FOUND,
        Error::EmailTaken => StatusCode::CONFLICT,
        Error::Throttled(_) | Error::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        Error::DynamoDb(_) | Error::CorruptItem(_) | Error::InvalidStreamRecord(_) => {
            StatusCode::INTERNAL_SERVER_ERROR
        }
    }
}

/// Turns a handler's result into the response: `success` status with the value as JSON, or the
/// error's status with a message. Faults of ours are logged in full and answered vaguely.
pub fn respond<T: Serialize>(success: StatusCode, result: Result<T, Error>) -> Response<Body> {
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
pub fn error_response(error: &Error) -> Response<Body> {
    let status = status_of(error);
    if status.is_client_error() {
        tracing::info!(status = status.as_u16(), error = %error, "request rejected");
        let mut response = message_response(status, &error.to_string());
        if status == StatusCode::METHOD_NOT_ALLOWED {
            response
                .headers_mut()
                .insert(header::ALLOW, header::HeaderValue::from_static("POST"));
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

/// The fields of a POST request's JSON object body, checked for size and shape.
///
/// The content-type header is not required: `curl -d` and API Gateway's test events often
/// omit it, and the body is JSON either way. API Gateway has already decoded base64 bodies.
pub fn json_object_body(request: &Request) -> Result<Map<String, Value>, Error> {
    if request.method() != Method::POST {
        return Err(Error::MethodNotAllowed(request.method().to_string()));
    }
    let bytes: &[u8] = request.body().as_ref();
    if bytes.len() > MAX_BODY_BYTES {
        return Err(Error::PayloadTooLarge {
            limit: MAX_BODY_BYTES,
        });
    }
    match serde_json::from_slice::<Value>(bytes).map_err(Error::MalformedJson)? {
        Value::Object(fields) => Ok(fields),
        _ => Err(Error::NotAnObject),
    }
}

/// Takes the one string field a request must have, rejecting any other field so that a client
/// who sends `id` or `timestamp` to /create learns they are not theirs to choose.
pub fn only_string_field(
    mut fields: Map<String, Value>,
    name: &'static str,
) -> Result<String, Error> {
    let value = fields.remove(name).ok_or(Error::MissingField(name))?;
    if let Some(unknown) = fields.keys().next() {
        return Err(Error::UnknownField(unknown.clone()));
    }
    match value {
        Value::String(text) => Ok(text),
        _ => Err(Error::WrongType {
            field: name,
            expected: "a string",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::user::{InvalidEmail, UserId};

    fn post(body: &str) -> Request {
        let mut request = Request::new(Body::Text(body.to_owned()));
        *request.method_mut() = Method::POST;
        request
    }

    fn body_of(response: &Response<Body>) -> Value {
        serde_json::from_slice(response.body().as_ref()).unwrap()
    }

    #[test]
    fn client_errors_map_to_4xx_with_their_message() {
        let cases = [
            (Error::MissingField("email"), 400, "`email` is required"),
            (
                Error::InvalidUserId,
                400,
                "`id` is not a valid user id: expected a UUID",
            ),
            (
                Error::InvalidEmail(InvalidEmail("must contain an @")),
                400,
                "`email` is not a valid email address: must contain an @",
            ),
            (
                Error::EmailTaken,
                409,
                "a user with this email already exists",
            ),
            (
                Error::PayloadTooLarge { limit: 4096 },
                413,
                "request body is larger than 4096 bytes",
            ),
            (
                Error::MethodNotAllowed("GET".into()),
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
        let response = error_response(&Error::UserNotFound(id));
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert_eq!(
            body_of(&response)["message"],
            format!("no user with id {id}")
        );
    }

    #[test]
    fn faults_map_to_5xx_without_internals() {
        let secret = "arn:aws:dynamodb:us-east-1:123456789012:table/users";
        let cases = [
            (Error::Throttled(secret.into()), 503),
            (Error::Unavailable(secret.into()), 503),
            (Error::DynamoDb(secret.into()), 500),
        ];
        for (error, status) in cases {
            let response = error_response(&error);
            assert_eq!(response.status().as_u16(), status);
            let body = String::from_utf8(response.body().to_vec()).unwrap();
            assert!(!body.contains("arn:"), "{body}");
            assert!(!body.contains("DynamoDB"), "{body}");
        }
    }

    #[test]
    fn a_user_is_answered_with_fields_in_the_documented_order() {
        let user =
            crate::User::register(crate::Email::parse("a@b.co").unwrap(), crate::Timestamp(7));
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
        let response = error_response(&Error::MethodNotAllowed("GET".into()));
        assert_eq!(response.headers()[header::ALLOW], "POST");
    }

    #[test]
    fn reads_a_json_object_body() {
        let fields = json_object_body(&post(r#"{"email": "a@b.co"}"#)).unwrap();
        assert_eq!(only_string_field(fields, "email").unwrap(), "a@b.co");
    }

    #[test]
    fn rejects_bodies_of_the_wrong_shape() {
        assert!(matches!(
            json_object_body(&post("{")),
            Err(Error::MalformedJson(_))
        ));
        assert!(matches!(
            json_object_body(&post("")),
            Err(Error::MalformedJson(_))
        ));
        assert!(matches!(
            json_object_body(&post("[1]")),
            Err(Error::NotAnObject)
        ));
        assert!(matches!(
            json_object_body(&post("\"x\"")),
            Err(Error::NotAnObject)
        ));
        let big = format!(r#"{{"email": "{}"}}"#, "a".repeat(MAX_BODY_BYTES));
        assert!(matches!(
            json_object_body(&post(&big)),
            Err(Error::PayloadTooLarge { .. })
        ));
        let mut get = post("{}");
        *get.method_mut() = Method::GET;
        assert!(matches!(json_object_body(&get), Err(Error::MethodNotAllowed(m)) if m == "GET"));
    }

    #[test]
    fn requires_exactly_one_string_field() {
        let fields = |json: &str| json_object_body(&post(json)).unwrap();
        assert!(matches!(
            only_string_field(fields("{}"), "email"),
            Err(Error::MissingField("email"))
        ));
        assert!(matches!(
            only_string_field(fields(r#"{"email": 5}"#), "email"),
            Err(Error::WrongType { field: "email", .. })
        ));
        assert!(matches!(
            only_string_field(fields(r#"{"email": null}"#), "email"),
            Err(Error::WrongType { field: "email", .. })
        ));
        assert!(matches!(
            only_string_field(fields(r#"{"email": "a@b.co", "id": "x"}"#), "email"),
            Err(Error::UnknownField(f)) if f == "id"
        ));
    }
}

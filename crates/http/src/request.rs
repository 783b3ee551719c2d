//! Reading a request: its method, and a small JSON object body.

use crate::error::RequestError;
use lambda_http::http::Method;
use lambda_http::request::RequestContext;
use lambda_http::{Request, RequestExt};
use serde_json::{Map, Value};
use users_core::Deadline;

/// The largest body a request of this API ever needs, with room to spare: a 254-character email
/// or a UUID in a small JSON object.
pub const MAX_BODY_BYTES: usize = 4 * 1024;

/// Checks that a request uses the route's method. API Gateway routes by method already; this
/// answers a function invoked directly (cargo lambda, a test event) the way a client expects.
pub fn require_method(request: &Request, allowed: Method) -> Result<(), RequestError> {
    if request.method() == allowed {
        Ok(())
    } else {
        Err(RequestError::MethodNotAllowed {
            method: request.method().clone(),
            allowed,
        })
    }
}

/// A path parameter of the route (`id` in `/users/{id}`), which API Gateway has extracted.
pub fn path_parameter(request: &Request, name: &'static str) -> Result<String, RequestError> {
    request
        .path_parameters_ref()
        .and_then(|parameters| parameters.first(name))
        .map(str::to_owned)
        .ok_or(RequestError::MissingField(name))
}

/// A query string parameter, if the request has it (the first value if it has several).
pub fn query_parameter(request: &Request, name: &str) -> Option<String> {
    request
        .query_string_parameters_ref()
        .and_then(|parameters| parameters.first(name))
        .map(str::to_owned)
}

/// Who is calling: the `sub` claim of the token API Gateway's JWT authorizer checked (the
/// claims arrive in `requestContext.authorizer.jwt`), or `None` when the API is open. For logs:
/// the token itself is never read here, so it can never be logged.
pub fn caller(request: &Request) -> Option<String> {
    match request.request_context_ref()? {
        RequestContext::ApiGatewayV2(context) => context
            .authorizer
            .as_ref()?
            .jwt
            .as_ref()?
            .claims
            .get("sub")
            .cloned(),
        _ => None,
    }
}

/// Logs who is calling, when the API's authorizer says ([`caller`]): the subject, never the
/// token or any other claim.
pub fn log_caller(request: &Request) {
    if let Some(sub) = caller(request) {
        tracing::info!(caller = %sub, "authorized caller");
    }
}

/// When the invocation serving a request must have answered: Lambda's deadline, which the runtime
/// puts in the request's context. A request built by hand (a test) has none.
pub fn deadline_of(request: &Request) -> Deadline {
    request
        .lambda_context_ref()
        .map_or_else(Deadline::none, |context| {
            Deadline::from_lambda(context.deadline)
        })
}

/// The fields of a request's JSON object body, checked for size and shape.
///
/// The content-type header is not required: `curl -d` and API Gateway's test events often
/// omit it, and the body is JSON either way. lambda_http has already decoded base64 bodies.
pub fn json_object_body(request: &Request) -> Result<Map<String, Value>, RequestError> {
    let bytes: &[u8] = request.body().as_ref();
    if bytes.len() > MAX_BODY_BYTES {
        return Err(RequestError::PayloadTooLarge {
            limit: MAX_BODY_BYTES,
        });
    }
    match serde_json::from_slice::<Value>(bytes).map_err(RequestError::MalformedJson)? {
        Value::Object(fields) => Ok(fields),
        _ => Err(RequestError::NotAnObject),
    }
}

/// Takes the one string field a request must have, rejecting any other field so that a client
/// who sends `id` or `timestamp` to /create learns they are not theirs to choose.
pub fn only_string_field(
    mut fields: Map<String, Value>,
    name: &'static str,
) -> Result<String, RequestError> {
    let value = fields
        .remove(name)
        .ok_or(RequestError::MissingField(name))?;
    if let Some(unknown) = fields.keys().next() {
        return Err(RequestError::UnknownField(unknown.clone()));
    }
    match value {
        Value::String(text) => Ok(text),
        _ => Err(RequestError::WrongType {
            field: name,
            expected: "a string",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lambda_http::Body;

    fn post(body: &str) -> Request {
        let mut request = Request::new(Body::Text(body.to_owned()));
        *request.method_mut() = Method::POST;
        request
    }

    /// An HTTP API v2 event as API Gateway sends it, with `authorizer` as its request context's.
    fn event_with_authorizer(authorizer: serde_json::Value) -> Request {
        let event = serde_json::json!({
            "version": "2.0", "routeKey": "GET /users/{id}", "rawPath": "/users/x", "rawQueryString": "",
            "headers": {}, "isBase64Encoded": false,
            "requestContext": {
                "accountId": "123456789012", "apiId": "api", "domainName": "api.example.com",
                "domainPrefix": "api", "requestId": "r", "routeKey": "GET /users/{id}",
                "stage": "$default", "time": "27/Nov/2026:21:00:00 +0000", "timeEpoch": 1_795_813_200_000_i64,
                "http": {"method": "GET", "path": "/users/x", "protocol": "HTTP/1.1",
                         "sourceIp": "127.0.0.1", "userAgent": "test"},
                "authorizer": authorizer,
            },
        });
        lambda_http::request::from_str(&event.to_string()).unwrap()
    }

    #[test]
    fn the_caller_is_the_tokens_subject_when_the_authorizer_passed_one() {
        let authorized = event_with_authorizer(serde_json::json!({
            "jwt": {"claims": {"sub": "alice", "scope": "users/read"}, "scopes": ["users/read"]}
        }));
        assert_eq!(caller(&authorized).as_deref(), Some("alice"));
        assert_eq!(caller(&event_with_authorizer(serde_json::json!({}))), None);
        assert_eq!(caller(&post("{}")), None);
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
            Err(RequestError::MalformedJson(_))
        ));
        assert!(matches!(
            json_object_body(&post("")),
            Err(RequestError::MalformedJson(_))
        ));
        assert!(matches!(
            json_object_body(&post("[1]")),
            Err(RequestError::NotAnObject)
        ));
        assert!(matches!(
            json_object_body(&post("\"x\"")),
            Err(RequestError::NotAnObject)
        ));
        let big = format!(r#"{{"email": "{}"}}"#, "a".repeat(MAX_BODY_BYTES));
        assert!(matches!(
            json_object_body(&post(&big)),
            Err(RequestError::PayloadTooLarge { .. })
        ));
    }

    #[test]
    fn only_the_route_s_method_is_allowed() {
        assert!(require_method(&post("{}"), Method::POST).is_ok());
        let mut get = post("{}");
        *get.method_mut() = Method::GET;
        assert!(matches!(
            require_method(&get, Method::POST),
            Err(RequestError::MethodNotAllowed { method, allowed })
                if method == Method::GET && allowed == Method::POST
        ));
        assert!(require_method(&get, Method::GET).is_ok());
    }

    #[test]
    fn requires_exactly_one_string_field() {
        let fields = |json: &str| json_object_body(&post(json)).unwrap();
        assert!(matches!(
            only_string_field(fields("{}"), "email"),
            Err(RequestError::MissingField("email"))
        ));
        assert!(matches!(
            only_string_field(fields(r#"{"email": 5}"#), "email"),
            Err(RequestError::WrongType { field: "email", .. })
        ));
        assert!(matches!(
            only_string_field(fields(r#"{"email": null}"#), "email"),
            Err(RequestError::WrongType { field: "email", .. })
        ));
        assert!(matches!(
            only_string_field(fields(r#"{"email": "a@b.co", "id": "x"}"#), "email"),
            Err(RequestError::UnknownField(f)) if f == "id"
        ));
    }
}

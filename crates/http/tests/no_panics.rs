//! Whatever a client sends, reading the request is an `Ok` or a clean error, never a panic:
//! arbitrary bytes, invalid UTF-8, deep nesting, huge numbers, and events whose body claims to
//! be base64.
//!
//! Not covered: an event that claims a base64 body which is not base64. API Gateway never sends
//! one, and lambda_http panics on it while converting the event (aws_lambda_events'
//! `Body::from_maybe_encoded`), before any code of ours runs.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use lambda_http::http::Method;
use lambda_http::{Body, Request};
use proptest::prelude::*;
use users_core::{Email, UserId};

/// Everything an HTTP function does with a request before it reaches DynamoDB.
fn read(request: &Request) {
    let _ = users_http::require_method(request, Method::POST);
    if let Ok(fields) = users_http::json_object_body(request) {
        for field in ["email", "id"] {
            if let Ok(text) = users_http::only_string_field(fields.clone(), field) {
                let _ = Email::parse(&text);
                let _ = UserId::parse(&text);
            }
        }
    }
}

fn post(body: Body) -> Request {
    let mut request = Request::new(body);
    *request.method_mut() = Method::POST;
    request
}

/// JSON-ish text: the characters JSON is made of, in any order, so that parsing gets deep.
fn jsonish() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            Just("{".to_owned()),
            Just("}".to_owned()),
            Just("[".to_owned()),
            Just("]".to_owned()),
            Just("\"email\":".to_owned()),
            Just("\"id\":".to_owned()),
            Just(",".to_owned()),
            Just("1e999999".to_owned()),
            Just("-0.0000000000000000000000001".to_owned()),
            Just("123456789012345678901234567890".to_owned()),
            Just("\"\\ud800\"".to_owned()),
            Just("null".to_owned()),
            "\"[^\"\\\\]{0,20}\"",
        ],
        0..64,
    )
    .prop_map(|parts| parts.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..6000)) {
        read(&post(Body::Binary(bytes)));
    }

    #[test]
    fn arbitrary_text(text in "\\PC{0,300}") {
        read(&post(Body::Text(text)));
    }

    #[test]
    fn json_like_text(text in jsonish()) {
        read(&post(Body::Text(text)));
    }

    #[test]
    fn objects_with_arbitrary_email_and_id_values(email in "\\PC{0,300}", id in "\\PC{0,60}") {
        let body = serde_json::json!({ "email": email }).to_string();
        read(&post(Body::Text(body)));
        let body = serde_json::json!({ "id": id }).to_string();
        read(&post(Body::Text(body)));
    }

    /// API Gateway sends a body as text, or base64-encoded (isBase64Encoded) when it is not
    /// UTF-8 or its content type is binary: both, with any content and any method.
    #[test]
    fn api_gateway_events_with_any_body_and_base64_flag(
        bytes in proptest::collection::vec(any::<u8>(), 0..300),
        text in "\\PC{0,200}",
        base64 in any::<bool>(),
        method in "[A-Z]{1,8}",
    ) {
        let body = if base64 { STANDARD.encode(&bytes) } else { text };
        let event = serde_json::json!({
            "version": "2.0",
            "routeKey": "POST /create",
            "rawPath": "/create",
            "rawQueryString": "",
            "headers": {"content-type": "application/json"},
            "requestContext": {
                "accountId": "123456789012", "apiId": "api", "domainName": "api.example.com",
                "domainPrefix": "api", "requestId": "id", "routeKey": "POST /create", "stage": "$default",
                "time": "25/Nov/2026:12:00:00 +0000", "timeEpoch": 1795327200000_i64,
                "http": {"method": method, "path": "/create", "protocol": "HTTP/1.1",
                         "sourceIp": "127.0.0.1", "userAgent": "curl"}
            },
            "body": body,
            "isBase64Encoded": base64,
        });
        if let Ok(request) = lambda_http::request::from_str(&event.to_string()) {
            read(&request);
        }
    }
}

#[test]
fn very_deep_nesting_is_a_clean_error() {
    for depth in [100, 1_000, 100_000] {
        let body = format!("{{\"email\":{}{}}}", "[".repeat(depth), "]".repeat(depth));
        let request = post(Body::Text(body));
        // Over 4 KiB is refused before parsing; under it, serde_json's depth limit refuses it.
        assert!(users_http::json_object_body(&request).is_err() || depth < 128);
        read(&request);
    }
}

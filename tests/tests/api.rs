//! The HTTP contract of /create and /delete, through the real handlers and the real SDK against
//! a local DynamoDB API.

use integration_tests::{
    Local, NOW, create, delete, fixed_clock, http_event_file, http_request, local_aws_config,
    status_and_json, unique_email,
};
use serde_json::json;
use users_core::{UserId, UserRepository};

#[tokio::test]
async fn the_seed_lesson_create_delete_delete_again() {
    let local = Local::connect().await;
    let users = local.users();
    let email = unique_email("seed");

    // WHEN a user is created with a padded, mixed-case email
    let (status, created) = create(
        &users,
        &json!({"email": format!("  {}  ", email.to_uppercase())}).to_string(),
    )
    .await;

    // THEN it gets 201 with a server-chosen id, the server's time and the normalised email
    assert_eq!(status, 201, "{created}");
    let id = UserId::parse(created["id"].as_str().unwrap()).expect("a UUID id");
    assert_eq!(
        created,
        json!({"id": id.to_string(), "timestamp": NOW.0, "email": email})
    );
    // AND the stored item is exactly that user
    let stored = users.get(id).await.unwrap().expect("stored");
    assert_eq!(serde_json::to_value(&stored).unwrap(), created);
    assert!(local.email_owner(&email).await.is_some());

    // WHEN it is deleted THEN 200 with the deleted user, and it is gone
    let (status, deleted) = delete(&users, &json!({"id": id.to_string()}).to_string()).await;
    assert_eq!((status, &deleted), (200, &created));
    assert_eq!(users.get(id).await.unwrap(), None);
    assert_eq!(local.email_owner(&email).await, None);

    // WHEN it is deleted again THEN 404 naming the id
    let (status, body) = delete(&users, &json!({"id": id.to_string()}).to_string()).await;
    assert_eq!(status, 404);
    assert_eq!(body, json!({"message": format!("no user with id {id}")}));

    // AND the email can be registered again, as a new user
    let (status, again) = create(&users, &json!({"email": email}).to_string()).await;
    assert_eq!(status, 201);
    assert_ne!(again["id"], created["id"]);
}

#[tokio::test]
async fn a_registered_email_cannot_be_registered_again() {
    let local = Local::connect().await;
    let users = local.users();
    let email = unique_email("dup");
    let (status, first) = create(&users, &json!({"email": email}).to_string()).await;
    assert_eq!(status, 201);

    // Same address, different case and spacing: the same normalised email.
    let (status, body) = create(
        &users,
        &json!({"email": format!(" {}", email.to_uppercase())}).to_string(),
    )
    .await;
    assert_eq!(status, 409);
    assert_eq!(
        body,
        json!({"message": "a user with this email already exists"})
    );

    // The first user is untouched and still owns the email.
    let first_id = UserId::parse(first["id"].as_str().unwrap()).unwrap();
    assert_eq!(
        serde_json::to_value(users.get(first_id).await.unwrap()).unwrap(),
        first
    );
    assert_eq!(local.email_owner(&email).await, Some(first_id));
}

#[tokio::test]
async fn concurrent_creates_of_one_email_register_it_once() {
    let local = Local::connect().await;
    let users = local.users();
    let email = unique_email("race");
    let body = json!({"email": email}).to_string();

    let attempts = (0..8).map(|_| {
        let users = users.clone();
        let body = body.clone();
        tokio::spawn(async move { create(&users, &body).await })
    });
    let mut statuses = Vec::new();
    for attempt in attempts {
        statuses.push(attempt.await.unwrap().0);
    }
    statuses.sort_unstable();

    assert_eq!(statuses, [201, 409, 409, 409, 409, 409, 409, 409]);
    // Exactly one user item carries the email.
    let users_with_email = local
        .dynamodb
        .scan()
        .table_name(&local.tables.users)
        .filter_expression("email = :email")
        .expression_attribute_values(":email", aws_sdk_dynamodb::types::AttributeValue::S(email))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .count();
    assert_eq!(users_with_email, 1);
}

#[tokio::test]
async fn bad_create_requests_are_rejected_and_write_nothing() {
    let local = Local::connect().await;
    let users = local.users();
    let email = unique_email("bad");
    let too_big = json!({"email": email, "padding": "x".repeat(5000)}).to_string();
    let cases: Vec<(String, u16, &str)> = vec![
        ("{}".into(), 400, "`email` is required"),
        (r#"{"email": 42}"#.into(), 400, "`email` must be a string"),
        (
            r#"{"email": "   "}"#.into(),
            400,
            "`email` is not a valid email address: must not be empty",
        ),
        (
            r#"{"email": "nobody"}"#.into(),
            400,
            "`email` is not a valid email address: must contain an @",
        ),
        (
            format!(r#"{{"email": "{}@x.com"}}"#, "a".repeat(250)),
            400,
            "`email` is not a valid email address: must be at most 254 characters",
        ),
        (
            json!({"email": email, "id": "mine"}).to_string(),
            400,
            "unknown field `id`",
        ),
        (
            json!({"email": email, "timestamp": 1}).to_string(),
            400,
            "unknown field `timestamp`",
        ),
        ("[]".into(), 400, "request body must be a JSON object"),
        (too_big, 413, "request body is larger than 4096 bytes"),
    ];
    for (body, status, message) in cases {
        let (got_status, got) = create(&users, &body).await;
        assert_eq!(
            (got_status, got["message"].as_str().unwrap()),
            (status, message),
            "{body}"
        );
    }
    let (status, body) = create(&users, r#"{"email": "#).await;
    assert_eq!(status, 400);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("request body is not valid JSON")
    );

    // A GET is answered, not served.
    let request = http_request("GET", "/create", "");
    let (status, body) = status_and_json(
        &create_user::handle(&users, fixed_clock, request)
            .await
            .unwrap(),
    );
    assert_eq!(
        (status, body),
        (
            405,
            json!({"message": "method GET is not allowed: use POST"})
        )
    );

    assert_eq!(local.email_owner(&email).await, None, "nothing was written");
}

#[tokio::test]
async fn bad_delete_requests_are_rejected() {
    let local = Local::connect().await;
    let users = local.users();
    let cases = [
        ("{}", 400, "`id` is required"),
        (r#"{"id": 7}"#, 400, "`id` must be a string"),
        (
            r#"{"id": "4cgl4td0mufwl0wiqrepuba9k9"}"#,
            400,
            "`id` is not a valid user id: expected a UUID",
        ),
        (
            r#""just a string""#,
            400,
            "request body must be a JSON object",
        ),
    ];
    for (body, status, message) in cases {
        let (got_status, got) = delete(&users, body).await;
        assert_eq!(
            (got_status, got),
            (status, json!({"message": message})),
            "{body}"
        );
    }
    let unknown = UserId::random();
    let (status, _) = delete(&users, &json!({"id": unknown.to_string()}).to_string()).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn an_unreachable_dynamodb_is_a_503_that_leaks_nothing() {
    let local = Local::connect().await;
    // GIVEN a repository whose endpoint refuses connections (nothing listens on port 9)
    let aws = local_aws_config("http://127.0.0.1:9").await;
    let config = aws_sdk_dynamodb::config::Builder::from(&aws)
        .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(1))
        .build();
    let users = UserRepository::new(
        aws_sdk_dynamodb::Client::from_conf(config),
        local.tables.clone(),
    );

    let (status, body) = create(&users, &json!({"email": unique_email("down")}).to_string()).await;
    assert_eq!(
        (status, body),
        (
            503,
            json!({"message": "service temporarily unavailable, please retry"})
        )
    );
    let (status, body) = delete(
        &users,
        &json!({"id": UserId::random().to_string()}).to_string(),
    )
    .await;
    assert_eq!(
        (status, body),
        (
            503,
            json!({"message": "service temporarily unavailable, please retry"})
        )
    );
}

#[tokio::test]
async fn a_missing_table_is_a_500_that_leaks_nothing() {
    let local = Local::connect().await;
    let mut tables = local.tables.clone();
    tables.users = "NoSuchTable".into();
    let users = UserRepository::new(local.dynamodb.clone(), tables);
    let (status, body) = create(&users, &json!({"email": unique_email("gone")}).to_string()).await;
    assert_eq!((status, body), (500, json!({"message": "internal error"})));
}

#[tokio::test]
async fn the_sample_http_events_are_served() {
    let local = Local::connect().await;
    let users = local.users();
    // The sample events use fixed emails and ids; clear them so the test can run again.
    for email in ["test@test.com", "base64@test.com"] {
        if let Some(owner) = local.email_owner(email).await {
            users.delete(owner).await.unwrap();
        }
    }

    let response = create_user::handle(&users, fixed_clock, http_event_file("create.json"))
        .await
        .unwrap();
    let (status, body) = status_and_json(&response);
    assert_eq!((status, &body["email"]), (201, &json!("test@test.com")));

    // As `sam local generate-event apigateway http-api-proxy` makes it: base64, no content-type.
    let response = create_user::handle(&users, fixed_clock, http_event_file("create-base64.json"))
        .await
        .unwrap();
    let (status, body) = status_and_json(&response);
    assert_eq!((status, &body["email"]), (201, &json!("base64@test.com")));

    // delete.json names a fixed id: create that user first, then the event deletes it.
    let id = UserId::parse("4cdc3c36-77d0-4ac5-a3f7-4f4b6d3b8f7e").unwrap();
    if users.get(id).await.unwrap().is_none() {
        let user = users_core::User {
            id,
            timestamp: NOW,
            email: users_core::Email::parse(&unique_email("fixed")).unwrap(),
        };
        users.create(&user).await.unwrap();
    }
    let response = delete_user::handle(&users, http_event_file("delete.json"))
        .await
        .unwrap();
    let (status, body) = status_and_json(&response);
    assert_eq!((status, &body["id"]), (200, &json!(id.to_string())));
}

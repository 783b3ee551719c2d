//! Reading and changing a user, and reading its history: GET /users/{id}, PATCH /users/{id} and
//! GET /users/{id}/history, through the real handlers against a local DynamoDB API.

use integration_tests::{
    Local, create, delete, http_event_file, registered_user, status_and_json, unique_email,
    user_route_request,
};
use lambda_runtime::{Context, LambdaEvent};
use serde_json::{Value, json};
use user_stream::StreamBatch;
use user_stream::StreamConsumer;
use users_core::{HistoryRepository, User, UserId, UserRepository};

async fn get(users: &UserRepository, id: &str) -> (u16, Value) {
    let request = user_route_request("GET", "/users/{id}", id, &[], None);
    status_and_json(&get_user::handle(&users.reader(), request).await.unwrap())
}

async fn patch(users: &UserRepository, id: &str, body: &str) -> (u16, Value) {
    let request = user_route_request("PATCH", "/users/{id}", id, &[], Some(body));
    status_and_json(&update_user::handle(users, request).await.unwrap())
}

async fn history(history: &HistoryRepository, id: &str, query: &[(&str, &str)]) -> (u16, Value) {
    let request = user_route_request("GET", "/users/{id}/history", id, query, None);
    status_and_json(&user_history::handle(history, request).await.unwrap())
}

fn email_body(email: &str) -> String {
    json!({ "email": email }).to_string()
}

#[tokio::test]
async fn a_user_is_read_back_as_created() {
    let local = Local::connect().await;
    let users = local.users();
    let user = registered_user(&users, &unique_email("read")).await;

    let (status, body) = get(&users, &user.id.to_string()).await;
    assert_eq!((status, body), (200, serde_json::to_value(&user).unwrap()));

    let unknown = UserId::random().to_string();
    let (status, body) = get(&users, &unknown).await;
    assert_eq!(
        (status, body),
        (
            404,
            json!({"message": format!("no user with id {unknown}")})
        )
    );

    let (status, body) = get(&users, "4cgl4td0mufwl0wiqrepuba9k9").await;
    assert_eq!(
        (status, body),
        (
            400,
            json!({"message": "`id` is not a valid user id: expected a UUID"})
        )
    );
}

#[tokio::test]
async fn a_patch_changes_the_email_and_frees_the_old_one() {
    let local = Local::connect().await;
    let users = local.users();
    let (old, new) = (unique_email("before"), unique_email("after"));
    let user = registered_user(&users, &old).await;
    let id = user.id.to_string();

    // WHEN the email is changed (padded and upper-cased: the same normalisation as create)
    let (status, body) = patch(
        &users,
        &id,
        &email_body(&format!(" {} ", new.to_uppercase())),
    )
    .await;

    // THEN 200 with the user as it now is, id and timestamp unchanged
    let changed = User {
        email: users_core::Email::parse(&new).unwrap(),
        ..user.clone()
    };
    assert_eq!(
        (status, &body),
        (200, &serde_json::to_value(&changed).unwrap())
    );
    assert_eq!(get(&users, &id).await, (200, body));
    // AND the claims moved: the new email is this user's, the old one is free for anyone
    assert_eq!(local.email_owner(&new).await, Some(user.id));
    assert_eq!(local.email_owner(&old).await, None);
    let (status, _) = create(&users, &email_body(&old)).await;
    assert_eq!(status, 201);

    // WHEN the same email is sent again THEN 200 and nothing is written
    let (status, body) = patch(&users, &id, &email_body(&new.to_uppercase())).await;
    assert_eq!(
        (status, body),
        (200, serde_json::to_value(&changed).unwrap())
    );
    let modifies = local
        .stream_records_of(&[user.id])
        .await
        .iter()
        .filter(|record| record["eventName"] == "MODIFY")
        .count();
    assert_eq!(modifies, 1, "only the real change wrote the user");
}

#[tokio::test]
async fn bad_patches_are_rejected_and_change_nothing() {
    let local = Local::connect().await;
    let users = local.users();
    let (mine, theirs) = (unique_email("mine"), unique_email("theirs"));
    let me = registered_user(&users, &mine).await;
    let them = registered_user(&users, &theirs).await;
    let id = me.id.to_string();

    let (status, body) = patch(&users, &id, &email_body(&theirs)).await;
    assert_eq!(
        (status, body),
        (
            409,
            json!({"message": "a user with this email already exists"})
        )
    );

    let cases: Vec<(String, u16, &str)> = vec![
        ("{}".into(), 400, "`email` is required"),
        (r#"{"email": 42}"#.into(), 400, "`email` must be a string"),
        (
            r#"{"email": "nobody"}"#.into(),
            400,
            "`email` is not a valid email address: must contain an @",
        ),
        (
            json!({"email": unique_email("x"), "id": id}).to_string(),
            400,
            "unknown field `id`",
        ),
        ("[]".into(), 400, "request body must be a JSON object"),
        (
            json!({"email": "x".repeat(5000)}).to_string(),
            413,
            "request body is larger than 4096 bytes",
        ),
    ];
    for (body, status, message) in cases {
        assert_eq!(
            patch(&users, &id, &body).await,
            (status, json!({"message": message})),
            "{body}"
        );
    }
    let unknown = UserId::random().to_string();
    let (status, _) = patch(&users, &unknown, &email_body(&unique_email("ghost"))).await;
    assert_eq!(status, 404);
    let (status, _) = patch(&users, "not-a-uuid", &email_body(&unique_email("ghost"))).await;
    assert_eq!(status, 400);
    // A GET sent to the PATCH function is answered, not served.
    let request = user_route_request("GET", "/users/{id}", &id, &[], None);
    let (status, body) = status_and_json(&update_user::handle(&users, request).await.unwrap());
    assert_eq!(
        (status, body),
        (
            405,
            json!({"message": "method GET is not allowed: use PATCH"})
        )
    );

    // Nothing changed.
    assert_eq!(get(&users, &id).await.1, serde_json::to_value(&me).unwrap());
    assert_eq!(local.email_owner(&mine).await, Some(me.id));
    assert_eq!(local.email_owner(&theirs).await, Some(them.id));
}

#[tokio::test]
async fn two_concurrent_patches_to_one_email_have_exactly_one_winner() {
    let local = Local::connect().await;
    let users = local.users();
    for round in 0..10 {
        let alice = registered_user(&users, &unique_email("alice")).await;
        let bob = registered_user(&users, &unique_email("bob")).await;
        let contested = unique_email(&format!("contested{round}"));

        let attempts = [alice.clone(), bob.clone()].map(|user| {
            let (users, body) = (users.clone(), email_body(&contested));
            tokio::spawn(
                async move { (user.id, patch(&users, &user.id.to_string(), &body).await.0) },
            )
        });
        let mut outcomes = Vec::new();
        for attempt in attempts {
            outcomes.push(attempt.await.unwrap());
        }
        let mut statuses: Vec<u16> = outcomes.iter().map(|(_, status)| *status).collect();
        statuses.sort_unstable();
        assert_eq!(statuses, [200, 409], "round {round}");

        // The winner holds the contested email and its old one is free; the loser keeps its own.
        let winner = outcomes
            .iter()
            .find(|(_, status)| *status == 200)
            .unwrap()
            .0;
        let (won, lost) = if winner == alice.id {
            (&alice, &bob)
        } else {
            (&bob, &alice)
        };
        assert_eq!(local.email_owner(&contested).await, Some(won.id));
        assert_eq!(local.email_owner(won.email.as_str()).await, None);
        assert_eq!(local.email_owner(lost.email.as_str()).await, Some(lost.id));
        // And every claim's owner has that email: the tables agree.
        for user in [won, lost] {
            let stored = users.get(user.id).await.unwrap().unwrap();
            assert_eq!(
                local.email_owner(stored.email.as_str()).await,
                Some(user.id)
            );
        }
    }
}

#[tokio::test]
async fn the_history_of_create_patch_delete_reads_back_in_order_a_page_at_a_time() {
    let local = Local::connect().await;
    let (users, recorded) = (local.users(), local.history());
    let (first, second) = (unique_email("first"), unique_email("second"));

    // GIVEN a user created, renamed and deleted through the handlers, and the stream function
    // fed the records the users table's stream holds for it
    let user = registered_user(&users, &first).await;
    let id = user.id.to_string();
    assert_eq!(patch(&users, &id, &email_body(&second)).await.0, 200);
    assert_eq!(delete(&users, &json!({"id": id}).to_string()).await.0, 200);
    let records = local.stream_records_of(&[user.id]).await;
    let event = LambdaEvent::new(StreamBatch { records }, Context::default());
    let response = user_stream::handle(&StreamConsumer::new(recorded.clone()), event)
        .await
        .unwrap();
    assert!(response.batch_item_failures.is_empty());

    // WHEN the history is read THEN the three changes, oldest first, with their images
    let (status, body) = history(&recorded, &id, &[]).await;
    assert_eq!(status, 200, "{body}");
    let items = body["items"].as_array().unwrap();
    let names: Vec<&str> = items
        .iter()
        .map(|item| item["eventName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["INSERT", "MODIFY", "REMOVE"]);
    // The user is deleted: the history says what changed and when, and holds neither address.
    assert_eq!(items[1]["oldImage"]["id"], json!(user.id));
    assert_eq!(items[1]["newImage"]["timestamp"], json!(user.timestamp));
    assert!(!body.to_string().contains(&first) && !body.to_string().contains(&second));
    assert!(items[0].get("oldImage").is_none() && items[2].get("newImage").is_none());
    assert!(
        items
            .iter()
            .all(|item| item["changedAt"].as_i64().unwrap() > 1_700_000_000)
    );
    assert!(
        items
            .iter()
            .all(|item| !item["sequenceNumber"].as_str().unwrap().starts_with('0'))
    );
    assert_eq!(body["next"], Value::Null);

    // AND a page at a time, following `next`, gives the same items
    let mut paged = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let mut query = vec![("limit", "1")];
        if let Some(token) = next.as_deref() {
            query.push(("next", token));
        }
        let (status, page) = history(&recorded, &id, &query).await;
        assert_eq!(status, 200, "{page}");
        paged.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["next"].as_str() {
            Some(token) => next = Some(token.to_owned()),
            None => break,
        }
    }
    assert_eq!(&paged, items);

    // A user with no changes has an empty history; bad parameters are 400
    let (status, body) = history(&recorded, &UserId::random().to_string(), &[]).await;
    assert_eq!((status, body), (200, json!({"items": [], "next": null})));
    for (query, message) in [
        (("limit", "0"), "`limit` must be an integer from 1 to 100"),
        (("limit", "101"), "`limit` must be an integer from 1 to 100"),
        (("limit", "ten"), "`limit` must be an integer from 1 to 100"),
        (
            ("next", "not-a-token"),
            "`next` must be the `next` token of a previous page",
        ),
    ] {
        assert_eq!(
            history(&recorded, &id, &[query]).await,
            (400, json!({"message": message}))
        );
    }
    assert_eq!(history(&recorded, "nope", &[]).await.0, 400);
}

#[tokio::test]
async fn the_sample_events_of_the_user_routes_are_served() {
    let local = Local::connect().await;
    let users = local.users();
    // The samples name a fixed id and email: make that user exist, and the email free.
    let id = UserId::parse("4cdc3c36-77d0-4ac5-a3f7-4f4b6d3b8f7e").unwrap();
    if let Some(owner) = local.email_owner("renamed@test.com").await {
        users.delete(owner).await.unwrap();
    }
    if users.get(id).await.unwrap().is_none() {
        let email = users_core::Email::parse(&unique_email("fixed")).unwrap();
        users
            .create(&User {
                id,
                timestamp: integration_tests::NOW,
                email,
            })
            .await
            .unwrap();
    }

    let (status, body) = status_and_json(
        &update_user::handle(&users, http_event_file("update.json"))
            .await
            .unwrap(),
    );
    assert_eq!((status, &body["email"]), (200, &json!("renamed@test.com")));
    let (status, body) = status_and_json(
        &get_user::handle(&users.reader(), http_event_file("get.json"))
            .await
            .unwrap(),
    );
    assert_eq!((status, &body["email"]), (200, &json!("renamed@test.com")));
    // The history sample reads what the stream recorded of this user: its changes here (the
    // stream function fed this user's records), each under its own sequence number, in order.
    let records = local.stream_records_of(&[id]).await;
    assert!(
        integration_tests::stream_failures(&local.history(), records.clone())
            .await
            .is_empty()
    );
    let response = user_history::handle(&local.history(), http_event_file("history.json"))
        .await
        .unwrap();
    let (status, body) = status_and_json(&response);
    assert_eq!(status, 200, "{body}");
    let items = body["items"].as_array().expect("an items array");
    let listed: Vec<(&str, &str)> = items
        .iter()
        .map(|item| {
            (
                item["sequenceNumber"].as_str().unwrap(),
                item["eventName"].as_str().unwrap(),
            )
        })
        .collect();
    // Every record of ours is there, in stream order (the sample id's history may also hold
    // records other tests recorded, such as events/stream.json's).
    let mut positions = Vec::new();
    for record in &records {
        let ours = (
            record["dynamodb"]["SequenceNumber"].as_str().unwrap(),
            record["eventName"].as_str().unwrap(),
        );
        let position = listed.iter().position(|entry| *entry == ours);
        positions.push(position.unwrap_or_else(|| panic!("{ours:?} missing from {listed:?}")));
    }
    assert!(
        positions.windows(2).all(|pair| pair[0] < pair[1]),
        "{listed:?}"
    );
    assert!(
        records.iter().any(|r| r["eventName"] == "MODIFY"),
        "the PATCH above is recorded"
    );
}

//! A delete erases the email: once the stream function has handled a user's REMOVE, no table
//! and no API answer holds any address the user had, and no late retry or replay of its older
//! records writes one back. Against the local DynamoDB API (moto), through the real handlers.

use integration_tests::{
    Local, create, delete, status_and_json, stream_failures, unique_email, user_route_request,
};
use serde_json::{Value, json};
use user_stream::StreamConsumer;
use users_core::{Deadline, UserId, UserRepository};

/// Every item of every table, as text: where an address would show if it were kept.
async fn everything_stored(local: &Local) -> String {
    let mut all = String::new();
    for table in [
        &local.tables.users,
        &local.tables.emails,
        &local.history_table,
    ] {
        let mut pages = local
            .dynamodb
            .scan()
            .table_name(table)
            .consistent_read(true)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            all.push_str(&format!("{:?}", page.unwrap().items()));
        }
    }
    all
}

/// Everything the API answers about a user.
async fn every_answer_about(local: &Local, id: UserId) -> String {
    let get = user_route_request("GET", "/users/{id}", &id.to_string(), &[], None);
    let user = status_and_json(
        &get_user::handle(&local.users().reader(), get)
            .await
            .unwrap(),
    );
    let history = user_route_request("GET", "/users/{id}/history", &id.to_string(), &[], None);
    let history = status_and_json(
        &user_history::handle(&local.history(), history)
            .await
            .unwrap(),
    );
    assert_eq!(user.0, 404);
    assert_eq!(history.0, 200);
    format!("{} {}", user.1, history.1)
}

async fn run_stream(local: &Local, records: Vec<Value>) {
    let failures = stream_failures(&local.history(), records).await;
    assert!(failures.is_empty(), "{failures:?}");
}

/// A user created with one address, moved to a second, then deleted through the handlers; its
/// three stream records (INSERT, MODIFY, REMOVE).
async fn created_renamed_deleted(local: &Local) -> (UserId, [String; 2], Vec<Value>) {
    created_renamed_deleted_by(local, &local.users()).await
}

async fn created_renamed_deleted_by(
    local: &Local,
    users: &UserRepository,
) -> (UserId, [String; 2], Vec<Value>) {
    let users = users.clone();
    let (first, second) = (unique_email("erased-first"), unique_email("erased-second"));
    let (status, user) = create(&users, &json!({ "email": first }).to_string()).await;
    assert_eq!(status, 201, "{user}");
    let id = UserId::parse(user["id"].as_str().unwrap()).unwrap();
    let body = json!({ "email": second }).to_string();
    let request = user_route_request("PATCH", "/users/{id}", &id.to_string(), &[], Some(&body));
    assert_eq!(
        update_user::handle(&users, request).await.unwrap().status(),
        200
    );
    assert_eq!(
        delete(&users, &json!({ "id": id }).to_string()).await.0,
        200
    );
    let records = local.stream_records_of(&[id]).await;
    let names: Vec<&str> = records
        .iter()
        .map(|r| r["eventName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["INSERT", "MODIFY", "REMOVE"]);
    (id, [first, second], records)
}

fn assert_holds_neither(text: &str, addresses: &[String; 2], when: &str) {
    for address in addresses {
        assert!(
            !text.contains(address.as_str()),
            "{when}: {address} is still there"
        );
    }
}

#[tokio::test]
async fn after_the_delete_no_table_and_no_answer_holds_either_address() {
    let local = Local::connect().await;
    let (id, addresses, records) = created_renamed_deleted(&local).await;

    // WHEN the stream function handles the INSERT and MODIFY (after the delete committed, as
    // the consumer runs a second behind) THEN it already writes no address: the delete left
    // the user's erasure marker, which every write is checked against
    run_stream(&local, records[..2].to_vec()).await;
    assert_holds_neither(
        &everything_stored(&local).await,
        &addresses,
        "before the REMOVE",
    );
    // WHEN it handles the REMOVE
    run_stream(&local, records[2..].to_vec()).await;

    // THEN no stored item and no API answer holds either address; the history still says what
    // changed and when
    assert_holds_neither(
        &everything_stored(&local).await,
        &addresses,
        "after the delete",
    );
    assert_holds_neither(&every_answer_about(&local, id).await, &addresses, "answers");
    let history = local.history().entries_for(id).await.unwrap();
    let names: Vec<&str> = history.iter().map(|e| e.event_name.as_str()).collect();
    assert_eq!(names, ["INSERT", "MODIFY", "REMOVE"]);

    // WHEN Lambda delivers the whole batch again, or the older records alone arrive late (a
    // retry of an earlier batch), or replay-failures replays them
    run_stream(&local, records.clone()).await;
    assert_holds_neither(&everything_stored(&local).await, &addresses, "re-delivered");
    run_stream(&local, records[..2].to_vec()).await;
    assert_holds_neither(&everything_stored(&local).await, &addresses, "late records");
    let replayed = user_stream::record_batch(
        &StreamConsumer::new(local.history()),
        records[..1].to_vec(),
        Deadline::none(),
    )
    .await;
    assert!(replayed.iter().all(|outcome| outcome.result.is_ok()));

    // THEN still neither address anywhere, and the history is as it was
    assert_holds_neither(&everything_stored(&local).await, &addresses, "replayed");
    assert_holds_neither(&every_answer_about(&local, id).await, &addresses, "answers");
    assert_eq!(local.history().entries_for(id).await.unwrap(), history);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_record_written_while_the_delete_is_handled_is_erased_all_the_same() {
    let local = Local::connect().await;
    for round in 0..10 {
        // GIVEN a user's older records being replayed while its REMOVE is handled, the user
        // deleted without a marker (as before the delete wrote one): only the stream side's
        // ordering (marker, then read; write, then check) keeps the address out
        let unmarked = UserRepository::new(local.dynamodb.clone(), local.tables.clone());
        let (_, addresses, records) = created_renamed_deleted_by(&local, &unmarked).await;
        let history = local.history();
        let older = records[..2].to_vec();
        let remove = records[2..].to_vec();
        let (replayed, removed) = tokio::join!(
            tokio::spawn({
                let history = history.clone();
                async move {
                    user_stream::record_batch(
                        &StreamConsumer::new(history),
                        older,
                        Deadline::none(),
                    )
                    .await
                }
            }),
            tokio::spawn({
                let history = history.clone();
                async move {
                    user_stream::record_batch(
                        &StreamConsumer::new(history),
                        remove,
                        Deadline::none(),
                    )
                    .await
                }
            }),
        );
        assert!(
            replayed.unwrap().iter().all(|o| o.result.is_ok()),
            "round {round}"
        );
        assert!(
            removed.unwrap().iter().all(|o| o.result.is_ok()),
            "round {round}"
        );
        // THEN whichever came first, no address is left behind
        let stored = everything_stored(&local).await;
        assert_holds_neither(&stored, &addresses, &format!("round {round}"));
    }
}

#[tokio::test]
async fn the_history_answers_without_emails_as_soon_as_the_delete_answers() {
    let local = Local::connect().await;
    let users = local.users();
    // GIVEN a user whose creation the stream function has recorded, addresses and all
    let email = unique_email("answered");
    let (status, user) = create(&users, &json!({ "email": email }).to_string()).await;
    assert_eq!(status, 201);
    let id = UserId::parse(user["id"].as_str().unwrap()).unwrap();
    let records = local.stream_records_of(&[id]).await;
    run_stream(&local, records).await;
    let request = user_route_request("GET", "/users/{id}/history", &id.to_string(), &[], None);
    let before = status_and_json(
        &user_history::handle(&local.history(), request)
            .await
            .unwrap(),
    );
    assert!(before.1.to_string().contains(&email));

    // WHEN it is deleted, and before the stream function has seen the REMOVE
    assert_eq!(
        delete(&users, &json!({ "id": id }).to_string()).await.0,
        200
    );

    // THEN no API answer holds the address, although the stored entry still does for a moment
    let answers = every_answer_about(&local, id).await;
    assert!(!answers.contains(&email), "{answers}");
    assert!(answers.contains("INSERT"), "{answers}");
}

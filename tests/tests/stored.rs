//! Strict on input, tolerant on stored data: rows that today's email rule rejects (written by an
//! older version, or by another tool) and emails tables that disagree with the users table are
//! still read, changed, deleted and recorded.

use aws_sdk_dynamodb::types::AttributeValue;
use integration_tests::{
    Local, delete, status_and_json, stream_failures, unique_email, user_route_request,
};
use serde_json::{Value, json};
use users_core::{UserId, UserRepository};

/// Writes a user, and optionally a claim of its email for `claim_owner`, straight to the
/// tables, as another tool would.
async fn put_raw_user(local: &Local, email: &str, claim_owner: Option<&str>) -> UserId {
    let id = UserId::random();
    local
        .dynamodb
        .put_item()
        .table_name(&local.tables.users)
        .item("id", AttributeValue::S(id.to_string()))
        .item("timestamp", AttributeValue::N("1520547428623".into()))
        .item("email", AttributeValue::S(email.into()))
        .send()
        .await
        .unwrap();
    if let Some(owner) = claim_owner {
        let owner = if owner == "self" {
            id.to_string()
        } else {
            owner.to_owned()
        };
        local
            .dynamodb
            .put_item()
            .table_name(&local.tables.emails)
            .item("email", AttributeValue::S(email.into()))
            .item("userId", AttributeValue::S(owner))
            .send()
            .await
            .unwrap();
    }
    id
}

/// The owner of an email claim exactly as stored, whatever the email looks like.
async fn raw_claim_owner(local: &Local, email: &str) -> Option<String> {
    let item = local
        .dynamodb
        .get_item()
        .table_name(&local.tables.emails)
        .key("email", AttributeValue::S(email.into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item?;
    Some(item["userId"].as_s().unwrap().clone())
}

async fn get(users: &UserRepository, id: UserId) -> (u16, Value) {
    let request = user_route_request("GET", "/users/{id}", &id.to_string(), &[], None);
    status_and_json(&get_user::handle(&users.reader(), request).await.unwrap())
}

async fn patch(users: &UserRepository, id: UserId, email: &str) -> (u16, Value) {
    let body = json!({ "email": email }).to_string();
    let request = user_route_request("PATCH", "/users/{id}", &id.to_string(), &[], Some(&body));
    status_and_json(&update_user::handle(users, request).await.unwrap())
}

fn stored(id: UserId, email: &str) -> Value {
    json!({"id": id, "timestamp": 1_520_547_428_623_i64, "email": email})
}

/// Emails today's rule rejects: no dot in the domain, upper case, a Kelvin sign (U+212A).
fn legacy_email(label: &str) -> String {
    format!("Legacy.{label}.{}@LOCALHOST", UserId::random())
}

fn kelvin_email() -> String {
    format!("\u{212A}elvin.{}@test.com", UserId::random())
}

#[tokio::test]
async fn a_user_whose_stored_email_todays_rule_rejects_can_be_read_changed_and_deleted() {
    let local = Local::connect().await;
    let users = local.users();

    // GIVEN two users stored with emails today's rule rejects, each holding its claim
    let (old_a, old_b) = (legacy_email("a"), kelvin_email());
    let a = put_raw_user(&local, &old_a, Some("self")).await;
    let b = put_raw_user(&local, &old_b, Some("self")).await;

    // THEN they are read as stored
    assert_eq!(get(&users, a).await, (200, stored(a, &old_a)));
    assert_eq!(get(&users, b).await, (200, stored(b, &old_b)));

    // AND a PATCH moves A to a valid email and frees the old claim
    let new_a = unique_email("repaired");
    assert_eq!(patch(&users, a, &new_a).await, (200, stored(a, &new_a)));
    assert_eq!(raw_claim_owner(&local, &old_a).await, None);
    assert_eq!(raw_claim_owner(&local, &new_a).await, Some(a.to_string()));

    // AND a delete removes B and its claim, answering B as it was
    let (status, body) = delete(&users, &json!({ "id": b }).to_string()).await;
    assert_eq!((status, body), (200, stored(b, &old_b)));
    assert_eq!(raw_claim_owner(&local, &old_b).await, None);
    assert_eq!(get(&users, b).await.0, 404);

    // AND the stream function records every change of both, images as stored
    let records = local.stream_records_of(&[a, b]).await;
    assert_eq!(
        records.len(),
        4,
        "INSERT and MODIFY of A, INSERT and REMOVE of B"
    );
    let failures = stream_failures(&local.history(), records).await;
    assert!(failures.is_empty(), "{failures:?}");
    let history_of_b = local.history().entries_for(b).await.unwrap();
    let events: Vec<&str> = history_of_b.iter().map(|e| e.event_name.as_str()).collect();
    assert_eq!(events, ["INSERT", "REMOVE"]);
    // B is deleted: its history keeps what changed and when, not its (legacy) address.
    assert!(history_of_b.iter().all(|entry| !entry.holds_email()));
    let history_of_a = local.history().entries_for(a).await.unwrap();
    assert_eq!(
        history_of_a[1]
            .old_image
            .as_ref()
            .unwrap()
            .email
            .as_ref()
            .map(|e| e.as_str()),
        Some(old_a.as_str())
    );
}

#[tokio::test]
async fn a_user_whose_email_the_emails_table_gives_to_another_can_be_changed_and_deleted() {
    let local = Local::connect().await;
    let users = local.users();
    let stranger = UserId::random().to_string();

    // GIVEN users whose emails are claimed by someone else (tables restored apart, say)
    let (email_c, email_d) = (unique_email("disputed-c"), unique_email("disputed-d"));
    let c = put_raw_user(&local, &email_c, Some(&stranger)).await;
    let d = put_raw_user(&local, &email_d, Some(&stranger)).await;

    // WHEN C is deleted THEN it is, and the claim that is not its own stays as it was
    let (status, body) = delete(&users, &json!({ "id": c }).to_string()).await;
    assert_eq!((status, body), (200, stored(c, &email_c)));
    assert_eq!(get(&users, c).await.0, 404);
    assert_eq!(
        raw_claim_owner(&local, &email_c).await,
        Some(stranger.clone())
    );

    // WHEN D changes its email THEN it does, claiming the new one and leaving the other's alone
    let new_d = unique_email("undisputed");
    assert_eq!(patch(&users, d, &new_d).await, (200, stored(d, &new_d)));
    assert_eq!(raw_claim_owner(&local, &new_d).await, Some(d.to_string()));
    assert_eq!(raw_claim_owner(&local, &email_d).await, Some(stranger));
}

#[tokio::test]
async fn an_email_that_passes_only_after_lower_casing_is_rejected_and_changes_nothing() {
    let local = Local::connect().await;
    let users = local.users();
    let email = kelvin_email();
    let (status, body) =
        integration_tests::create(&users, &json!({ "email": email }).to_string()).await;
    assert_eq!(
        (status, body),
        (
            400,
            json!({"message": "`email` is not a valid email address: must be ASCII (write an international domain in its xn-- form)"})
        )
    );
    // Lower-cased, the Kelvin sign would have become this ASCII address: nobody claimed it.
    let folded = email.to_lowercase();
    assert!(folded.is_ascii());
    assert_eq!(raw_claim_owner(&local, &folded).await, None);
}

//! Two requests at once, as Lambda runs them in two instances: every client gets an answer the
//! final state explains. Each race runs 20 rounds against the local DynamoDB API (moto), the two
//! handler calls in flight together on two threads.

use integration_tests::{
    Local, create, delete, registered_user, status_and_json, unique_email, user_route_request,
};
use serde_json::{Value, json};
use users_core::{User, UserRepository};

const ROUNDS: usize = 20;

async fn patch(users: UserRepository, user: User, email: String) -> (u16, Value) {
    let body = json!({ "email": email }).to_string();
    let request = user_route_request(
        "PATCH",
        "/users/{id}",
        &user.id.to_string(),
        &[],
        Some(&body),
    );
    status_and_json(&update_user::handle(&users, request).await.unwrap())
}

async fn delete_user(users: UserRepository, user: User) -> (u16, Value) {
    delete(&users, &json!({ "id": user.id }).to_string()).await
}

fn as_json(user: &User, email: &str) -> Value {
    json!({ "id": user.id, "timestamp": user.timestamp, "email": email })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_identical_patches_at_once_both_answer_200_with_the_user_as_it_now_is() {
    let local = Local::connect().await;
    let users = local.users();
    for round in 0..ROUNDS {
        // GIVEN a user, and a client whose retry races its first try
        let user = registered_user(&users, &unique_email("twice")).await;
        let new_email = unique_email(&format!("renamed{round}"));

        // WHEN both PATCHes run at once
        let (first, second) = tokio::join!(
            tokio::spawn(patch(users.clone(), user.clone(), new_email.clone())),
            tokio::spawn(patch(users.clone(), user.clone(), new_email.clone())),
        );

        // THEN both answer 200 with the user as it now is, and the tables agree
        let expected = (200, as_json(&user, &new_email));
        assert_eq!(first.unwrap(), expected, "round {round}");
        assert_eq!(second.unwrap(), expected, "round {round}");
        assert_eq!(
            users.get(user.id).await.unwrap().unwrap().email.as_str(),
            new_email
        );
        assert_eq!(local.email_owner(&new_email).await, Some(user.id));
        assert_eq!(local.email_owner(user.email.as_str()).await, None);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_racing_a_patch_deletes_the_user_and_the_patch_answers_200_or_404() {
    let local = Local::connect().await;
    let users = local.users();
    let mut patch_statuses = Vec::new();
    for round in 0..ROUNDS {
        // GIVEN a user
        let user = registered_user(&users, &unique_email("doomed")).await;
        let new_email = unique_email(&format!("moved{round}"));

        // WHEN it is deleted while its email is being changed
        let (deleted, patched) = tokio::join!(
            tokio::spawn(delete_user(users.clone(), user.clone())),
            tokio::spawn(patch(users.clone(), user.clone(), new_email.clone())),
        );
        let (deleted, patched) = (deleted.unwrap(), patched.unwrap());

        // THEN the delete deleted it, answering the user as it was just before: changed if the
        // PATCH came first (200), as created if the delete came first (the PATCH then 404s)
        match patched.0 {
            200 => {
                assert_eq!(patched.1, as_json(&user, &new_email), "round {round}");
                assert_eq!(deleted, (200, as_json(&user, &new_email)), "round {round}");
            }
            404 => {
                assert_eq!(
                    deleted,
                    (200, as_json(&user, user.email.as_str())),
                    "round {round}"
                );
            }
            other => panic!("round {round}: PATCH answered {other} {}", patched.1),
        }
        patch_statuses.push(patched.0);
        assert_eq!(users.get(user.id).await.unwrap(), None, "round {round}");
        // and neither email is left claimed by a user who is gone
        assert_eq!(local.email_owner(user.email.as_str()).await, None);
        assert_eq!(local.email_owner(&new_email).await, None);
    }
    eprintln!("PATCH statuses over {ROUNDS} rounds: {patch_statuses:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_patches_of_one_user_to_different_emails_both_succeed_in_some_order() {
    let local = Local::connect().await;
    let users = local.users();
    for round in 0..ROUNDS {
        let user = registered_user(&users, &unique_email("torn")).await;
        let (left, right) = (unique_email("left"), unique_email("right"));

        let (a, b) = tokio::join!(
            tokio::spawn(patch(users.clone(), user.clone(), left.clone())),
            tokio::spawn(patch(users.clone(), user.clone(), right.clone())),
        );
        assert_eq!(a.unwrap(), (200, as_json(&user, &left)), "round {round}");
        assert_eq!(b.unwrap(), (200, as_json(&user, &right)), "round {round}");

        // The last one to commit holds its email; the other's and the original are free.
        let now = users.get(user.id).await.unwrap().unwrap().email;
        let other = if now.as_str() == left { &right } else { &left };
        assert_eq!(local.email_owner(now.as_str()).await, Some(user.id));
        assert_eq!(local.email_owner(other).await, None);
        assert_eq!(local.email_owner(user.email.as_str()).await, None);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_patch_racing_another_users_create_of_that_email_has_exactly_one_winner() {
    let local = Local::connect().await;
    let users = local.users();
    for round in 0..ROUNDS {
        let user = registered_user(&users, &unique_email("mover")).await;
        let wanted = unique_email(&format!("wanted{round}"));
        let body = json!({ "email": wanted }).to_string();
        let (patched, created) = tokio::join!(
            tokio::spawn(patch(users.clone(), user.clone(), wanted.clone())),
            tokio::spawn({
                let users = users.clone();
                async move { create(&users, &body).await }
            }),
        );
        let (patched, created) = (patched.unwrap(), created.unwrap());
        let owner = local.email_owner(&wanted).await;
        match (patched.0, created.0) {
            (200, 409) => {
                assert_eq!(owner, Some(user.id), "round {round}");
                assert_eq!(local.email_owner(user.email.as_str()).await, None);
            }
            (409, 201) => {
                assert_eq!(
                    owner.map(|id| id.to_string()),
                    created.1["id"].as_str().map(str::to_owned),
                    "round {round}"
                );
                assert_eq!(local.email_owner(user.email.as_str()).await, Some(user.id));
            }
            other => panic!("round {round}: PATCH and create answered {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_creates_of_one_email_register_it_exactly_once() {
    let local = Local::connect().await;
    let users = local.users();
    for round in 0..ROUNDS {
        let email = unique_email(&format!("same{round}"));
        let body = json!({ "email": email }).to_string();
        let (a, b) = tokio::join!(
            tokio::spawn({
                let (users, body) = (users.clone(), body.clone());
                async move { create(&users, &body).await }
            }),
            tokio::spawn({
                let (users, body) = (users.clone(), body.clone());
                async move { create(&users, &body).await }
            }),
        );
        let mut outcomes = [a.unwrap(), b.unwrap()];
        outcomes.sort_by_key(|(status, _)| *status);
        let [(created, user), (conflict, message)] = outcomes;
        assert_eq!((created, conflict), (201, 409), "round {round}");
        assert_eq!(
            message,
            json!({"message": "a user with this email already exists"})
        );
        let id = user["id"].as_str().unwrap();
        assert_eq!(
            local
                .email_owner(&email)
                .await
                .map(|id| id.to_string())
                .as_deref(),
            Some(id)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_deletes_of_one_user_answer_200_once_and_404_once() {
    let local = Local::connect().await;
    let users = local.users();
    for round in 0..ROUNDS {
        let user = registered_user(&users, &unique_email("twice-deleted")).await;
        let (a, b) = tokio::join!(
            tokio::spawn(delete_user(users.clone(), user.clone())),
            tokio::spawn(delete_user(users.clone(), user.clone())),
        );
        let mut outcomes = [a.unwrap(), b.unwrap()];
        outcomes.sort_by_key(|(status, _)| *status);
        assert_eq!(
            outcomes,
            [
                (200, as_json(&user, user.email.as_str())),
                (
                    404,
                    json!({ "message": format!("no user with id {}", user.id) })
                ),
            ],
            "round {round}"
        );
        assert_eq!(users.get(user.id).await.unwrap(), None);
        assert_eq!(local.email_owner(user.email.as_str()).await, None);
    }
}

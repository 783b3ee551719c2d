//! The idempotency store against the local DynamoDB: concurrent claims, a finished key, a crash
//! between claim and work taken over after its hold, a released claim, an expired record.

use integration_tests::Local;
use std::time::{Duration, SystemTime};
use users_core::{Attempt, Deadline, Error, IdempotencyStore, UserId};

fn key(label: &str) -> String {
    format!("{label}#{}", UserId::random())
}

fn in_a_minute() -> SystemTime {
    SystemTime::now() + Duration::from_secs(60)
}

async fn claimed(store: &IdempotencyStore, key: &str, hold_until: SystemTime) -> users_core::Claim {
    match store
        .claim(key, hold_until, Deadline::none())
        .await
        .unwrap()
    {
        Attempt::Claimed(claim) => claim,
        other => panic!("expected a claim, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_claims_of_one_key_let_exactly_one_through() {
    let store = Local::connect().await.idempotency();
    for round in 0..5 {
        let key = key("race");
        let attempts = futures_join(&store, &key, 8).await;
        let won = attempts
            .iter()
            .filter(|a| matches!(a, Attempt::Claimed(_)))
            .count();
        let waiting = attempts
            .iter()
            .filter(|a| matches!(a, Attempt::InProgress { .. }))
            .count();
        assert_eq!((won, waiting), (1, 7), "round {round}: {attempts:?}");
    }
}

async fn futures_join(store: &IdempotencyStore, key: &str, n: usize) -> Vec<Attempt> {
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let (store, key) = (store.clone(), key.to_owned());
            tokio::spawn(async move {
                store
                    .claim(&key, in_a_minute(), Deadline::none())
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut attempts = Vec::new();
    for task in tasks {
        attempts.push(task.await.unwrap());
    }
    attempts
}

#[tokio::test]
async fn a_completed_key_answers_its_outcome_and_is_not_claimed_again_after_its_hold() {
    let store = Local::connect().await.idempotency();
    let key = key("done");
    let claim = claimed(&store, &key, SystemTime::now() + Duration::from_millis(300)).await;
    store
        .complete(&claim, "sent", Deadline::none())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        store
            .claim(&key, in_a_minute(), Deadline::none())
            .await
            .unwrap(),
        Attempt::Done {
            outcome: "sent".into()
        }
    );
}

#[tokio::test]
async fn a_crash_between_claim_and_work_is_taken_over_once_its_hold_passes() {
    let store = Local::connect().await.idempotency();
    let key = key("crash");
    // GIVEN an attempt that claimed the key until a moment from now, then crashed
    let hold = SystemTime::now() + Duration::from_millis(500);
    let crashed = claimed(&store, &key, hold).await;
    // WHEN another delivery comes before the hold passes THEN it waits
    let early = store
        .claim(&key, in_a_minute(), Deadline::none())
        .await
        .unwrap();
    assert!(
        matches!(early, Attempt::InProgress { held_until } if held_until >= hold - Duration::from_millis(1)),
        "{early:?}"
    );
    // WHEN one comes after it THEN it takes the key over
    tokio::time::sleep(Duration::from_millis(600)).await;
    let takeover = claimed(&store, &key, in_a_minute()).await;
    // AND the crashed attempt, were it to come back, can neither complete nor release it
    assert!(matches!(
        store.complete(&crashed, "sent", Deadline::none()).await,
        Err(Error::ClaimLost(lost)) if lost == key
    ));
    store.release(&crashed, Deadline::none()).await.unwrap();
    assert!(matches!(
        store
            .claim(&key, in_a_minute(), Deadline::none())
            .await
            .unwrap(),
        Attempt::InProgress { .. }
    ));
    store
        .complete(&takeover, "sent", Deadline::none())
        .await
        .unwrap();
    assert!(matches!(
        store.claim(&key, in_a_minute(), Deadline::none()).await.unwrap(),
        Attempt::Done { outcome } if outcome == "sent"
    ));
}

#[tokio::test]
async fn a_released_claim_can_be_claimed_at_once() {
    let store = Local::connect().await.idempotency();
    let key = key("released");
    let claim = claimed(&store, &key, in_a_minute()).await;
    store.release(&claim, Deadline::none()).await.unwrap();
    claimed(&store, &key, in_a_minute()).await;
}

#[tokio::test]
async fn a_record_past_its_expiry_counts_as_absent_before_the_ttl_removes_it() {
    let local = Local::connect().await;
    let store = local.idempotency().keep_for(Duration::from_secs(1));
    let key = key("expired");
    let claim = claimed(&store, &key, in_a_minute()).await;
    store
        .complete(&claim, "sent", Deadline::none())
        .await
        .unwrap();
    // expiresAt is in whole seconds: two seconds later it has passed.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    claimed(&store, &key, in_a_minute()).await;
}

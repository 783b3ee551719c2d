//! `replay-failures` against the local S3 and DynamoDB (moto): failure records in the shape the
//! stream mapping's S3 destination writes, made of records read from the real users stream.

use integration_tests::{Local, delete, registered_user, unique_email};
use replay_failures::{Replay, Verdict};
use serde_json::{Value, json};
use user_stream::StreamConsumer;
use users_core::{User, UserId};

/// A failure record as Lambda's S3 destination writes it.
fn failure_record(records: &[Value]) -> Vec<u8> {
    let sequence = |record: &Value| record["dynamodb"]["SequenceNumber"].clone();
    json!({
        "requestContext": {
            "requestId": "c0ffee00-0000-4000-8000-000000000000",
            "functionArn": "arn:aws:lambda:us-east-1:123456789012:function:user-stream",
            "condition": "RetryAttemptsExhausted",
            "approximateInvokeCount": 4
        },
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "version": "1.0",
        "timestamp": "2026-11-27T21:00:00.000Z",
        "DDBStreamBatchInfo": {
            "shardId": "shardId-00000001",
            "startSequenceNumber": sequence(&records[0]),
            "endSequenceNumber": sequence(&records[records.len() - 1]),
            "approximateArrivalOfFirstRecord": "2026-11-27T20:59:00Z",
            "approximateArrivalOfLastRecord": "2026-11-27T20:59:01Z",
            "batchSize": records.len(),
            "streamArn": "arn:aws:dynamodb:us-east-1:123456789012:table/UsersTable/stream/2026-11-27T00:00:00.000"
        },
        "payload": json!({ "Records": records }).to_string(),
    })
    .to_string()
    .into_bytes()
}

/// A replay of the objects under a prefix of this test's own.
fn replay(local: &Local, prefix: &str, dry_run: bool) -> Replay {
    Replay {
        s3: local.s3.clone(),
        bucket: local.failure_bucket.clone(),
        prefix: prefix.to_owned(),
        consumer: StreamConsumer::new(local.history()),
        dry_run,
    }
}

async fn put(local: &Local, key: &str, body: Vec<u8>) {
    local
        .s3
        .put_object()
        .bucket(&local.failure_bucket)
        .key(key)
        .body(body.into())
        .send()
        .await
        .expect("put a failure object");
}

async fn keys(local: &Local, prefix: &str) -> Vec<String> {
    replay(local, prefix, true)
        .keys()
        .await
        .expect("list the bucket")
}

async fn history_len(local: &Local, user: &User) -> usize {
    local.history().entries_for(user.id).await.unwrap().len()
}

fn unique_prefix(label: &str) -> String {
    format!(
        "aws/lambda/{label}-{}/shardId-1/2026/11/27/",
        UserId::random()
    )
}

#[tokio::test]
async fn a_kept_batch_is_recorded_once_and_deleted_and_a_second_replay_changes_nothing() {
    let local = Local::connect().await;
    let users = local.users();
    // GIVEN a user created and deleted, whose two records the stream function gave up on
    let user = registered_user(&users, &unique_email("replayed")).await;
    assert_eq!(
        delete(&users, &json!({"id": user.id}).to_string()).await.0,
        200
    );
    let records = local.stream_records_of(&[user.id]).await;
    assert_eq!(records.len(), 2);
    let prefix = unique_prefix("whole");
    let key = format!("{prefix}2026-11-27T21.00.00-1");
    put(&local, &key, failure_record(&records)).await;

    // WHEN a dry run looks at it THEN it says what it would do, and writes and deletes nothing
    let looked = replay(&local, &prefix, true).replay_object(&key).await;
    assert_eq!(
        looked.verdict,
        Verdict::Replayed {
            records: 2,
            deleted: false
        }
    );
    assert_eq!(history_len(&local, &user).await, 0);
    assert_eq!(keys(&local, &prefix).await, std::slice::from_ref(&key));

    // WHEN it is replayed THEN both changes are in the history, once, and the object is gone
    let report = replay(&local, &prefix, false).replay_object(&key).await;
    assert_eq!(
        report.verdict,
        Verdict::Replayed {
            records: 2,
            deleted: true
        }
    );
    let history = local.history().entries_for(user.id).await.unwrap();
    let events: Vec<&str> = history.iter().map(|e| e.event_name.as_str()).collect();
    assert_eq!(events, ["INSERT", "REMOVE"]);
    assert!(keys(&local, &prefix).await.is_empty());

    // AND the same batch kept twice (Lambda retried and gave up again) changes nothing more
    put(&local, &key, failure_record(&records)).await;
    let again = replay(&local, &prefix, false).replay_object(&key).await;
    assert_eq!(
        again.verdict,
        Verdict::Replayed {
            records: 2,
            deleted: true
        }
    );
    assert_eq!(local.history().entries_for(user.id).await.unwrap(), history);
}

#[tokio::test]
async fn a_partly_recorded_object_stays_with_the_records_that_still_fail_named() {
    let local = Local::connect().await;
    let users = local.users();
    let user = registered_user(&users, &unique_email("partial")).await;
    let mut records = local.stream_records_of(&[user.id]).await;
    // A poison record beside the good one: its image is no user (no timestamp).
    let mut poison = records[0].clone();
    poison["dynamodb"]["SequenceNumber"] = json!("999999999999999999999999999999");
    poison["dynamodb"]["NewImage"]
        .as_object_mut()
        .unwrap()
        .remove("timestamp");
    records.push(poison);
    let prefix = unique_prefix("partial");
    let key = format!("{prefix}2026-11-27T21.00.00-2");
    put(&local, &key, failure_record(&records)).await;

    // A dry run already says which record would fail, and writes nothing.
    let looked = replay(&local, &prefix, true).replay_object(&key).await;
    let Verdict::Partial { failing, .. } = &looked.verdict else {
        panic!("{looked}");
    };
    assert_eq!(failing[0].0, "999999999999999999999999999999");
    assert_eq!(history_len(&local, &user).await, 0);

    let report = replay(&local, &prefix, false).replay_object(&key).await;
    let Verdict::Partial { recorded, failing } = &report.verdict else {
        panic!("{report}");
    };
    assert_eq!(*recorded, 1);
    assert_eq!(failing.len(), 1);
    assert_eq!(failing[0].0, "999999999999999999999999999999");
    assert!(
        failing[0].1.contains("not a valid user"),
        "{}",
        failing[0].1
    );
    // The good record is recorded; the object stays for the one that is not.
    assert_eq!(history_len(&local, &user).await, 1);
    assert_eq!(keys(&local, &prefix).await, [key]);
    assert!(
        report.to_string().contains("1 still failing; kept"),
        "{report}"
    );
}

#[tokio::test]
async fn objects_that_are_no_failure_record_are_reported_and_left_in_place() {
    let local = Local::connect().await;
    let users = local.users();
    let user = registered_user(&users, &unique_email("unreadable")).await;
    let whole = failure_record(&local.stream_records_of(&[user.id]).await);
    let prefix = unique_prefix("bad");
    let bad: Vec<(String, Vec<u8>, &str)> = vec![
        (
            format!("{prefix}a-not-json"),
            b"hello".to_vec(),
            "not a stream failure record",
        ),
        (
            format!("{prefix}b-truncated"),
            whole[..whole.len() - 40].to_vec(),
            "not a stream failure record",
        ),
        (
            format!("{prefix}c-other-json"),
            br#"{"Records": []}"#.to_vec(),
            "not a stream failure record",
        ),
    ];
    for (key, body, _) in &bad {
        put(&local, key, body.clone()).await;
    }
    for (key, _, reason) in &bad {
        let report = replay(&local, &prefix, false).replay_object(key).await;
        match &report.verdict {
            Verdict::Unreadable(why) => assert!(why.contains(reason), "{report}"),
            other => panic!("{key}: {other:?}"),
        }
        assert!(report.to_string().ends_with("; kept"), "{report}");
    }
    assert_eq!(keys(&local, &prefix).await.len(), 3);
    assert_eq!(history_len(&local, &user).await, 0);
}

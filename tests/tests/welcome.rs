//! The welcome function's handler against the local DynamoDB and moto's SES: one email per user
//! across duplicates in one batch and later, a crash between claim and send, a deleted user, a
//! malformed message, and the sample event in `events/welcome.json`. SES answers moto never gives
//! (a recipient refused in the sandbox, throttling) are scripted with `aws-smithy-mocks`.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use aws_sdk_sesv2::operation::send_email::{SendEmailError, SendEmailOutput};
use aws_sdk_sesv2::types::error::{MessageRejected, TooManyRequestsException};
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use integration_tests::{Local, event_path, registered_user, unique_email};
use lambda_runtime::{Context, LambdaEvent};
use serde_json::{Value, json};
use std::time::{Duration, SystemTime};
use users_core::{Attempt, Deadline, UserId, UserReader};
use welcome_user::{Mailer, Welcomer};

fn welcomer(local: &Local, mailer: Mailer) -> Welcomer {
    Welcomer {
        users: UserReader::new(local.dynamodb.clone(), local.tables.users.clone()),
        welcomes: local.idempotency(),
        mailer,
        metrics: users_core::Metrics::new("UsersApi-tests", "welcome-user"),
    }
}

fn moto_ses(local: &Local) -> Mailer {
    Mailer::new(local.sesv2.clone(), &local.sender)
}

/// `events/welcome.json` (an SQS event as Lambda delivers it) with one message per body given,
/// each with a message id of its own.
fn sqs_event(bodies: &[String]) -> SqsEvent {
    let sample: Value =
        serde_json::from_str(&std::fs::read_to_string(event_path("welcome.json")).unwrap())
            .unwrap();
    let template = sample["Records"][0].clone();
    let records: Vec<Value> = bodies
        .iter()
        .map(|body| {
            let mut record = template.clone();
            record["messageId"] = json!(UserId::random().to_string());
            record["body"] = json!(body);
            record
        })
        .collect();
    serde_json::from_value(json!({ "Records": records })).expect("an SQS event")
}

fn welcome_of(id: UserId) -> String {
    json!({ "userId": id }).to_string()
}

/// Runs the handler; the ids of the messages it reports failed, by their position in the batch.
async fn failed_positions(welcomer: &Welcomer, event: SqsEvent) -> Vec<usize> {
    let ids: Vec<String> = event
        .records
        .iter()
        .map(|r| r.message_id.clone().unwrap())
        .collect();
    let response: SqsBatchResponse =
        welcome_user::handle(welcomer, LambdaEvent::new(event, Context::default()))
            .await
            .expect("the handler answers");
    response
        .batch_item_failures
        .iter()
        .map(|failure| {
            ids.iter()
                .position(|id| *id == failure.item_identifier)
                .expect("a failure names a message of the batch")
        })
        .collect()
}

async fn outcome_of(local: &Local, id: UserId) -> Attempt {
    local
        .idempotency()
        .claim(
            &format!("welcome#{id}"),
            SystemTime::now(),
            Deadline::none(),
        )
        .await
        .unwrap()
}

#[tokio::test]
async fn the_sample_event_is_handled_and_each_user_gets_one_email_naming_its_id() {
    let local = Local::connect().await;
    let welcomer = welcomer(&local, moto_ses(&local));
    let email = unique_email("sample");
    let user = registered_user(&local.users(), &email).await;
    // The sample's messages, with their user ids replaced by one user: a duplicate in one batch.
    let mut event: SqsEvent =
        serde_json::from_str(&std::fs::read_to_string(event_path("welcome.json")).unwrap())
            .unwrap();
    assert_eq!(event.records.len(), 2);
    for record in &mut event.records {
        record.body = Some(welcome_of(user.id));
    }
    // The two race for the claim: one sends, the other is told to come back.
    assert_eq!(failed_positions(&welcomer, event.clone()).await.len(), 1);
    assert_eq!(
        failed_positions(&welcomer, event).await,
        Vec::<usize>::new()
    );
    let sent = local.emails_sent_to(&email);
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert!(sent[0].contains(&user.id.to_string()), "{}", sent[0]);
    assert_eq!(
        outcome_of(&local, user.id).await,
        Attempt::Done {
            outcome: "sent".into()
        }
    );
}

#[tokio::test]
async fn a_message_delivered_again_later_sends_nothing_more() {
    let local = Local::connect().await;
    let welcomer = welcomer(&local, moto_ses(&local));
    let email = unique_email("again");
    let user = registered_user(&local.users(), &email).await;
    for _ in 0..3 {
        let failed = failed_positions(&welcomer, sqs_event(&[welcome_of(user.id)])).await;
        assert!(failed.is_empty(), "{failed:?}");
    }
    assert_eq!(local.emails_sent_to(&email).len(), 1);
}

#[tokio::test]
async fn a_crash_between_claim_and_send_is_taken_over_after_the_hold_and_sends_once() {
    let local = Local::connect().await;
    let welcomer = welcomer(&local, moto_ses(&local));
    let email = unique_email("crashed");
    let user = registered_user(&local.users(), &email).await;
    // GIVEN an attempt that claimed the welcome and died before sending
    let hold = SystemTime::now() + Duration::from_millis(700);
    let claim = local
        .idempotency()
        .claim(&format!("welcome#{}", user.id), hold, Deadline::none())
        .await
        .unwrap();
    assert!(matches!(claim, Attempt::Claimed(_)));
    // WHEN the message comes back before the hold passes THEN it waits, nothing sent
    let event = sqs_event(&[welcome_of(user.id)]);
    assert_eq!(failed_positions(&welcomer, event.clone()).await, [0]);
    assert!(local.emails_sent_to(&email).is_empty());
    // WHEN it comes back after THEN one email
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(failed_positions(&welcomer, event).await.is_empty());
    assert_eq!(local.emails_sent_to(&email).len(), 1);
}

#[tokio::test]
async fn a_deleted_user_gets_nothing_and_a_malformed_message_fails_alone() {
    let local = Local::connect().await;
    let welcomer = welcomer(&local, moto_ses(&local));
    let (kept, gone) = (unique_email("kept"), unique_email("gone"));
    let users = local.users();
    let kept_user = registered_user(&users, &kept).await;
    let gone_user = registered_user(&users, &gone).await;
    users.delete(gone_user.id).await.unwrap();

    let event = sqs_event(&[
        welcome_of(gone_user.id),
        "{\"userId\": \"not-a-uuid\"}".to_owned(),
        welcome_of(kept_user.id),
        format!(
            "{{\"userId\": \"{}\", \"email\": \"{kept}\"}}",
            kept_user.id
        ),
    ]);
    assert_eq!(failed_positions(&welcomer, event).await, [1, 3]);
    assert!(local.emails_sent_to(&gone).is_empty());
    assert_eq!(local.emails_sent_to(&kept).len(), 1);
    assert_eq!(
        outcome_of(&local, gone_user.id).await,
        Attempt::Done {
            outcome: "user gone".into()
        }
    );
}

fn ses_rejecting(message: &'static str) -> aws_sdk_sesv2::Client {
    let rejected = mock!(aws_sdk_sesv2::Client::send_email).then_error(move || {
        SendEmailError::MessageRejected(MessageRejected::builder().message(message).build())
    });
    mock_client!(aws_sdk_sesv2, RuleMode::MatchAny, &[&rejected])
}

#[tokio::test]
async fn a_recipient_refused_for_good_is_recorded_and_not_tried_again() {
    let local = Local::connect().await;
    let email = unique_email("sandboxed");
    let user = registered_user(&local.users(), &email).await;
    // SES's sandbox answer for an unverified recipient names the recipient.
    let message: &'static str = Box::leak(
        format!("Email address is not verified. The following identities failed the check in region US-EAST-1: {email}")
            .into_boxed_str(),
    );
    let refusing = welcomer(&local, Mailer::new(ses_rejecting(message), &local.sender));
    assert!(
        failed_positions(&refusing, sqs_event(&[welcome_of(user.id)]))
            .await
            .is_empty()
    );
    assert_eq!(
        outcome_of(&local, user.id).await,
        Attempt::Done {
            outcome: "refused: MessageRejected".into()
        }
    );
    // Delivered again, even to a working SES: recorded, so nothing is sent.
    let working = welcomer(&local, moto_ses(&local));
    assert!(
        failed_positions(&working, sqs_event(&[welcome_of(user.id)]))
            .await
            .is_empty()
    );
    assert!(local.emails_sent_to(&email).is_empty());
}

#[tokio::test]
async fn ses_refusing_the_sender_or_throttling_is_retried_and_the_claim_released() {
    let local = Local::connect().await;
    let email = unique_email("retried");
    let user = registered_user(&local.users(), &email).await;
    let unverified_sender: &'static str = Box::leak(
        format!(
            "Email address is not verified. The following identities failed the check in region US-EAST-1: {}",
            local.sender.to_uppercase()
        )
        .into_boxed_str(),
    );
    let throttling = mock!(aws_sdk_sesv2::Client::send_email).then_error(|| {
        SendEmailError::TooManyRequestsException(
            TooManyRequestsException::builder()
                .message("Maximum sending rate exceeded.")
                .build(),
        )
    });
    let failing = [
        welcomer(
            &local,
            Mailer::new(ses_rejecting(unverified_sender), &local.sender),
        ),
        welcomer(
            &local,
            Mailer::new(
                mock_client!(aws_sdk_sesv2, RuleMode::MatchAny, &[&throttling]),
                &local.sender,
            ),
        ),
    ];
    for welcomer in &failing {
        assert_eq!(
            failed_positions(welcomer, sqs_event(&[welcome_of(user.id)])).await,
            [0]
        );
        // Released: the next delivery may claim it at once.
        let next = outcome_of(&local, user.id).await;
        let Attempt::Claimed(claim) = next else {
            panic!("the claim was not released: {next:?}")
        };
        local
            .idempotency()
            .release(&claim, Deadline::none())
            .await
            .unwrap();
    }
    // SES back: sent once.
    let working = welcomer(&local, moto_ses(&local));
    assert!(
        failed_positions(&working, sqs_event(&[welcome_of(user.id)]))
            .await
            .is_empty()
    );
    assert_eq!(local.emails_sent_to(&email).len(), 1);
}

#[tokio::test]
async fn an_email_sent_is_not_sent_again_when_ses_answers_ok() {
    // The mocked SES answers OK without sending: the outcome is recorded as sent all the same.
    let local = Local::connect().await;
    let email = unique_email("mocked");
    let user = registered_user(&local.users(), &email).await;
    let ok = mock!(aws_sdk_sesv2::Client::send_email)
        .then_output(|| SendEmailOutput::builder().message_id("m-1").build());
    let mocked = welcomer(
        &local,
        Mailer::new(
            mock_client!(aws_sdk_sesv2, RuleMode::MatchAny, &[&ok]),
            &local.sender,
        ),
    );
    assert!(
        failed_positions(&mocked, sqs_event(&[welcome_of(user.id)]))
            .await
            .is_empty()
    );
    assert_eq!(ok.num_calls(), 1);
    assert!(
        failed_positions(&mocked, sqs_event(&[welcome_of(user.id)]))
            .await
            .is_empty()
    );
    assert_eq!(ok.num_calls(), 1, "a second delivery sent again");
}

#[tokio::test]
async fn an_answer_that_does_not_say_whether_ses_sent_keeps_the_claim_until_its_hold() {
    // GIVEN SES answering 500 (it may have sent the email before failing)
    let local = Local::connect().await;
    let email = unique_email("unanswered");
    let user = registered_user(&local.users(), &email).await;
    let failing = mock!(aws_sdk_sesv2::Client::send_email).then_http_response(|| {
        aws_sdk_sesv2::config::http::HttpResponse::new(
            aws_smithy_runtime_api::http::StatusCode::try_from(500).unwrap(),
            aws_smithy_types::body::SdkBody::from(r#"{"message":"internal failure"}"#),
        )
    });
    let unanswered = welcomer(
        &local,
        Mailer::new(
            mock_client!(aws_sdk_sesv2, RuleMode::MatchAny, &[&failing]),
            &local.sender,
        ),
    );
    // THEN the message comes back, sent once by SES's one attempt (no retry of the SDK's)
    assert_eq!(
        failed_positions(&unanswered, sqs_event(&[welcome_of(user.id)])).await,
        [0]
    );
    assert_eq!(failing.num_calls(), 1);
    // AND the claim is kept, not released: a copy delivered meanwhile sends nothing
    assert!(matches!(
        outcome_of(&local, user.id).await,
        Attempt::InProgress { .. }
    ));
    let working = welcomer(&local, moto_ses(&local));
    assert_eq!(
        failed_positions(&working, sqs_event(&[welcome_of(user.id)])).await,
        [0]
    );
    assert!(local.emails_sent_to(&email).is_empty());
}

#[tokio::test]
async fn a_stored_address_that_is_no_address_is_refused_without_asking_ses() {
    let local = Local::connect().await;
    let id = UserId::random();
    local
        .dynamodb
        .put_item()
        .table_name(&local.tables.users)
        .item(
            "id",
            aws_sdk_dynamodb::types::AttributeValue::S(id.to_string()),
        )
        .item(
            "email",
            aws_sdk_dynamodb::types::AttributeValue::S("no-domain".into()),
        )
        .item(
            "timestamp",
            aws_sdk_dynamodb::types::AttributeValue::N("1".into()),
        )
        .send()
        .await
        .unwrap();
    let never = mock!(aws_sdk_sesv2::Client::send_email)
        .then_output(|| SendEmailOutput::builder().message_id("m").build());
    let welcomer = welcomer(
        &local,
        Mailer::new(
            mock_client!(aws_sdk_sesv2, RuleMode::MatchAny, &[&never]),
            &local.sender,
        ),
    );
    assert!(
        failed_positions(&welcomer, sqs_event(&[welcome_of(id)]))
            .await
            .is_empty()
    );
    assert_eq!(never.num_calls(), 0);
    assert_eq!(
        outcome_of(&local, id).await,
        Attempt::Done {
            outcome: "refused: InvalidAddress".into()
        }
    );
}

#[tokio::test]
async fn a_rejection_that_names_someone_else_or_a_bad_request_is_retried_not_recorded() {
    let local = Local::connect().await;
    let email = unique_email("lookalike");
    let user = registered_user(&local.users(), &email).await;
    // "x" + the address is another recipient; a BadRequestException names nobody.
    let other: &'static str = Box::leak(
        format!("Email address is not verified. The following identities failed the check in region US-EAST-1: x{email}")
            .into_boxed_str(),
    );
    let bad_request = mock!(aws_sdk_sesv2::Client::send_email).then_error(|| {
        SendEmailError::BadRequestException(
            aws_sdk_sesv2::types::error::BadRequestException::builder()
                .message("Illegal address")
                .build(),
        )
    });
    for mailer in [
        Mailer::new(ses_rejecting(other), &local.sender),
        Mailer::new(
            mock_client!(aws_sdk_sesv2, RuleMode::MatchAny, &[&bad_request]),
            &local.sender,
        ),
    ] {
        let welcomer = welcomer(&local, mailer);
        assert_eq!(
            failed_positions(&welcomer, sqs_event(&[welcome_of(user.id)])).await,
            [0]
        );
        let Attempt::Claimed(claim) = outcome_of(&local, user.id).await else {
            panic!("the claim was not released")
        };
        local
            .idempotency()
            .release(&claim, Deadline::none())
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn a_throttled_send_is_tried_again_in_the_invocation_and_sent_once() {
    let local = Local::connect().await;
    let email = unique_email("throttled");
    let user = registered_user(&local.users(), &email).await;
    let throttled_twice = mock!(aws_sdk_sesv2::Client::send_email)
        .sequence()
        .error(|| {
            SendEmailError::TooManyRequestsException(
                TooManyRequestsException::builder()
                    .message("Maximum sending rate exceeded.")
                    .build(),
            )
        })
        .times(2)
        .output(|| SendEmailOutput::builder().message_id("m-1").build())
        .build();
    let welcomer = welcomer(
        &local,
        Mailer::new(
            mock_client!(aws_sdk_sesv2, RuleMode::MatchAny, &[&throttled_twice]),
            &local.sender,
        ),
    );
    assert!(
        failed_positions(&welcomer, sqs_event(&[welcome_of(user.id)]))
            .await
            .is_empty()
    );
    assert_eq!(throttled_twice.num_calls(), 3);
    assert_eq!(
        outcome_of(&local, user.id).await,
        Attempt::Done {
            outcome: "sent".into()
        }
    );
}

#[tokio::test]
async fn a_rejection_naming_the_sender_too_is_ours_to_mend_not_the_users() {
    let local = Local::connect().await;
    let email = unique_email("both");
    let user = registered_user(&local.users(), &email).await;
    // In the sandbox with neither verified, SES names both: the user must not lose the welcome.
    let both: &'static str = Box::leak(
        format!(
            "Email address is not verified. The following identities failed the check in region US-EAST-1: {}, {email}",
            local.sender
        )
        .into_boxed_str(),
    );
    let welcomer = welcomer(&local, Mailer::new(ses_rejecting(both), &local.sender));
    assert_eq!(
        failed_positions(&welcomer, sqs_event(&[welcome_of(user.id)])).await,
        [0]
    );
    assert!(matches!(
        outcome_of(&local, user.id).await,
        Attempt::Claimed(_)
    ));
}

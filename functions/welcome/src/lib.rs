//! The welcome queue's consumer: one welcome email per new user, sent with Amazon SES.
//!
//! Every hop before it delivers at least once (the stream may deliver an INSERT again, the stream
//! function may forward it again, SQS may deliver a message again), so each user's welcome is
//! claimed in the idempotency table first ([`IdempotencyStore`]): a duplicate finds it done or in
//! progress and sends nothing. Messages fail one by one (`batchItemFailures`, with the mapping's
//! ReportBatchItemFailures): a failed message comes back after the queue's visibility timeout,
//! and after `maxReceiveCount` receives SQS moves it to the dead-letter queue.

mod mailer;

pub use mailer::{MailError, Mailer};

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use futures::future::join_all;
use lambda_runtime::{Error, LambdaEvent};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use users_core::{Attempt, Deadline, IdempotencyStore, UserReader, WelcomeMessage};

/// How long a claim is held when the invocation has no deadline (a handler called outside
/// Lambda, or under `cargo lambda watch`): longer than the function's timeout.
const HOLD_WITHOUT_DEADLINE: Duration = Duration::from_secs(60);
/// Held a little past the deadline: Lambda's clock and DynamoDB's may differ slightly.
const CLOCK_SKEW: Duration = Duration::from_secs(1);

/// What the welcome function works with.
#[derive(Debug, Clone)]
pub struct Welcomer {
    pub users: UserReader,
    pub welcomes: IdempotencyStore,
    pub mailer: Mailer,
}

/// How a message was handled; each of these removes it from the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Welcomed {
    /// The email went out now.
    Sent,
    /// A delivery before this one handled the user (the outcome it recorded).
    AlreadyHandled { outcome: String },
    /// The user was deleted before the message was handled: no email.
    UserGone,
    /// SES refused the email for good (this code): recorded, never tried again.
    Refused { code: String },
}

impl Welcomed {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Sent => "sent",
            Self::AlreadyHandled { .. } => "already handled",
            Self::UserGone => "user gone",
            Self::Refused { .. } => "refused",
        }
    }
}

/// Why a message is left on the queue, to come back after the visibility timeout.
#[derive(Debug, thiserror::Error)]
pub enum WelcomeError {
    /// Not a welcome message: it will fail every time, and ends in the dead-letter queue.
    #[error("not a welcome message: {0}")]
    Malformed(String),
    /// Another delivery of the same user's welcome is being handled right now.
    #[error("another attempt is welcoming this user")]
    InProgress,
    #[error(transparent)]
    Store(#[from] users_core::Error),
    #[error(transparent)]
    Mail(#[from] MailError),
}

/// The Lambda handler: handles every message of the batch concurrently and reports the ones to
/// receive again.
pub async fn handle(
    welcomer: &Welcomer,
    event: LambdaEvent<SqsEvent>,
) -> Result<SqsBatchResponse, Error> {
    let (deadline, hold_until) = deadline_and_hold(event.context.deadline);
    let outcomes = join_all(
        event
            .payload
            .records
            .iter()
            .map(|message| welcome(welcomer, message, deadline, hold_until)),
    )
    .await;

    let mut response = SqsBatchResponse::default();
    for (message, outcome) in event.payload.records.iter().zip(outcomes) {
        let message_id = message.message_id.clone().unwrap_or_default();
        match outcome {
            Ok(welcomed) => tracing::info!(
                message_id,
                outcome = welcomed.as_str(),
                details = ?welcomed,
                "welcome message handled"
            ),
            Err(error) => {
                tracing::warn!(message_id, error = %error, "welcome message left on the queue");
                // A failure without a message id cannot be reported alone (Lambda then retries
                // the whole batch, which the idempotency claim makes safe). SQS always sends one.
                if message_id.is_empty() {
                    return Err("a failed message has no messageId; failing the batch".into());
                }
                let mut failure = BatchItemFailure::default();
                failure.item_identifier = message_id;
                response.batch_item_failures.push(failure);
            }
        }
    }
    Ok(response)
}

/// Handles one message: claim the user's welcome, read the user, send, record the outcome.
pub async fn welcome(
    welcomer: &Welcomer,
    message: &SqsMessage,
    deadline: Deadline,
    hold_until: SystemTime,
) -> Result<Welcomed, WelcomeError> {
    let body = message.body.as_deref().unwrap_or_default();
    let request =
        WelcomeMessage::from_body(body).map_err(|err| WelcomeError::Malformed(err.to_string()))?;
    let claim = match welcomer
        .welcomes
        .claim(&request.idempotency_key(), hold_until, deadline)
        .await?
    {
        Attempt::Claimed(claim) => claim,
        Attempt::Done { outcome } => return Ok(Welcomed::AlreadyHandled { outcome }),
        Attempt::InProgress { .. } => return Err(WelcomeError::InProgress),
    };

    // From here on the claim is ours: every path completes it or releases it.
    let user = match deadline.bound(welcomer.users.get(request.user_id)).await {
        Ok(user) => user,
        Err(error) => {
            release(welcomer, &claim, deadline).await;
            return Err(error.into());
        }
    };
    let Some(user) = user else {
        // Gone for good (ids are never reused), so nothing is lost if this record fails: the
        // claim's hold then runs out and a later delivery finds the user gone again.
        welcomer
            .welcomes
            .complete(&claim, "user gone", deadline)
            .await?;
        return Ok(Welcomed::UserGone);
    };

    match welcomer.mailer.send_welcome(&user, deadline).await {
        Ok(()) => {
            // The email is out: whatever happens to the record now, the message is done. Failing
            // it would have a later delivery send again once the claim's hold ran out.
            if let Err(error) = welcomer.welcomes.complete(&claim, "sent", deadline).await {
                tracing::error!(
                    user_id = %user.id,
                    error = %error,
                    "welcome sent but not recorded: a delivery after the claim's hold would send it again"
                );
            }
            Ok(Welcomed::Sent)
        }
        Err(MailError::Refused { code }) => {
            // Recorded, so no delivery tries again; if recording fails the message comes back,
            // and SES refuses again without sending anything.
            welcomer
                .welcomes
                .complete(&claim, &format!("refused: {code}"), deadline)
                .await?;
            Ok(Welcomed::Refused { code })
        }
        Err(error) => {
            release(welcomer, &claim, deadline).await;
            Err(error.into())
        }
    }
}

/// Gives the claim up so the message's next delivery need not wait for the hold to pass; if
/// that fails too, the hold passes and the next delivery takes the claim over.
async fn release(welcomer: &Welcomer, claim: &users_core::Claim, deadline: Deadline) {
    if let Err(error) = welcomer.welcomes.release(claim, deadline).await {
        tracing::warn!(key = claim.key(), error = %error, "could not release the welcome's claim");
    }
}

/// The invocation's deadline for our requests, and how long a claim is held: until Lambda has
/// surely stopped this invocation, so a crashed attempt's claim is taken over only then.
fn deadline_and_hold(deadline_epoch_millis: u64) -> (Deadline, SystemTime) {
    let deadline = Deadline::from_lambda(deadline_epoch_millis);
    let hold_until = if deadline == Deadline::none() {
        SystemTime::now() + HOLD_WITHOUT_DEADLINE
    } else {
        UNIX_EPOCH + Duration::from_millis(deadline_epoch_millis) + CLOCK_SKEW
    };
    (deadline, hold_until)
}

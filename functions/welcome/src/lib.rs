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
use futures::StreamExt;
use lambda_runtime::{Error, LambdaEvent};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use users_core::{
    Attempt, Backoff, Deadline, IdempotencyStore, Metrics, UserReader, WelcomeMessage,
};

/// How long a claim is held when the invocation has no deadline (a handler called outside
/// Lambda, or under `cargo lambda watch`): longer than the function's timeout.
const HOLD_WITHOUT_DEADLINE: Duration = Duration::from_secs(60);
/// Held a little past the deadline: Lambda's clock and DynamoDB's may differ slightly.
const CLOCK_SKEW: Duration = Duration::from_secs(1);
/// Time kept back from the send for recording its outcome: an email sent but not recorded is
/// one a later delivery may send again.
const RECORD_RESERVE: Duration = Duration::from_secs(1);
/// Attempts at recording an outcome (each a single UpdateItem, with the SDK's own retries).
const RECORD_ATTEMPTS: u32 = 3;
const RECORD_BACKOFF: Backoff = Backoff {
    first: Duration::from_millis(50),
    cap: Duration::from_millis(200),
};
/// Messages of a batch handled at once: enough to keep a batch of ten well inside the timeout,
/// few enough not to burst SES's sending rate (throttled sends are tried again, see `Mailer`).
const CONCURRENT_MESSAGES: usize = 4;

/// What the welcome function works with.
#[derive(Debug, Clone)]
pub struct Welcomer {
    pub users: UserReader,
    pub welcomes: IdempotencyStore,
    pub mailer: Mailer,
    /// What became of each message (EMF): sent, skipped, refused, or left on the queue.
    pub metrics: Metrics,
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
    let outcomes: Vec<Result<Welcomed, WelcomeError>> =
        futures::stream::iter(&event.payload.records)
            .map(|message| welcome(welcomer, message, deadline, hold_until))
            .buffered(CONCURRENT_MESSAGES)
            .collect()
            .await;

    let mut response = SqsBatchResponse::default();
    for (message, outcome) in event.payload.records.iter().zip(outcomes) {
        let message_id = message.message_id.clone().unwrap_or_default();
        // The user's id, to follow one user's welcome through the logs (never the address).
        let user_id = WelcomeMessage::from_body(message.body.as_deref().unwrap_or_default())
            .map(|request| request.user_id.to_string())
            .unwrap_or_default();
        let (metric, outcome_name) = metric_of(&outcome);
        welcomer
            .metrics
            .count(metric, 1, &[("Outcome", outcome_name)]);
        match outcome {
            Ok(welcomed) => tracing::info!(
                message_id,
                user_id,
                outcome = welcomed.as_str(),
                details = ?welcomed,
                "welcome message handled"
            ),
            Err(error) => {
                tracing::warn!(message_id, user_id, error = %error, "welcome message left on the queue");
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

/// The metric and outcome a handled message counts.
fn metric_of(outcome: &Result<Welcomed, WelcomeError>) -> (&'static str, &'static str) {
    match outcome {
        Ok(Welcomed::Sent) => ("WelcomesSent", "sent"),
        Ok(Welcomed::AlreadyHandled { .. }) => ("WelcomesSkipped", "duplicate"),
        Ok(Welcomed::UserGone) => ("WelcomesSkipped", "user_gone"),
        Ok(Welcomed::Refused { .. }) => ("WelcomesRefused", "refused"),
        Err(WelcomeError::Malformed(_)) => ("WelcomesFailed", "malformed"),
        Err(WelcomeError::InProgress) => ("WelcomesFailed", "in_progress"),
        Err(WelcomeError::Mail(MailError::Unanswered { .. })) => ("WelcomesFailed", "unanswered"),
        Err(WelcomeError::Mail(_)) => ("WelcomesFailed", "not_sent"),
        Err(WelcomeError::Store(_)) => ("WelcomesFailed", "store"),
    }
}

/// Handles one message: claim the user's welcome, read the user, send, record the outcome.
pub async fn welcome(
    welcomer: &Welcomer,
    message: &SqsMessage,
    deadline: Deadline,
    hold_until: SystemTime,
) -> Result<Welcomed, WelcomeError> {
    let body = message.body.as_deref().unwrap_or_default();
    // serde_json's messages quote the values they met, which could be an address: only its
    // category and position are kept.
    let request = WelcomeMessage::from_body(body).map_err(|err| {
        WelcomeError::Malformed(format!(
            "{:?} error at line {} column {}",
            err.classify(),
            err.line(),
            err.column()
        ))
    })?;
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
        record(welcomer, &claim, "user gone", deadline).await?;
        return Ok(Welcomed::UserGone);
    };

    // The send leaves time to record its outcome.
    match welcomer
        .mailer
        .send_welcome(&user, deadline.earlier_by(RECORD_RESERVE))
        .await
    {
        Ok(()) => {
            // The email is out: whatever happens to the record now, the message is done. Failing
            // it would have a later delivery send again once the claim's hold ran out.
            if let Err(error) = record(welcomer, &claim, "sent", deadline).await {
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
            // and is refused again without anything sent.
            record(welcomer, &claim, &format!("refused: {code}"), deadline).await?;
            Ok(Welcomed::Refused { code })
        }
        Err(error @ MailError::NotSent { .. }) => {
            release(welcomer, &claim, deadline).await;
            Err(error.into())
        }
        // SES may have sent it: the claim is kept until its hold passes, so no copy of the
        // message sends meanwhile; the next delivery after it sends again (a possible second
        // email, rather than a welcome never sent).
        Err(error @ MailError::Unanswered { .. }) => Err(error.into()),
    }
}

/// Records a claimed welcome's outcome, trying again a few times: after a send, a lost record
/// is a possible second email.
async fn record(
    welcomer: &Welcomer,
    claim: &users_core::Claim,
    outcome: &str,
    deadline: Deadline,
) -> Result<(), users_core::Error> {
    let mut attempt = 1;
    loop {
        match welcomer.welcomes.complete(claim, outcome, deadline).await {
            Err(error) if error.is_transient() && attempt < RECORD_ATTEMPTS => {
                let wait = RECORD_BACKOFF.wait(attempt);
                deadline
                    .bound(async {
                        wait.await;
                        Ok(())
                    })
                    .await?;
                attempt += 1;
            }
            result => return result,
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

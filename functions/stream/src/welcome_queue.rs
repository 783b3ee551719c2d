//! Forwarding new users to the welcome queue, as the seed lab puts SQS between the stream and the
//! work: `SendMessageBatch`, ten messages to a request (SQS's limit), each message only a user id.
//!
//! A message counts as sent only when SQS lists its entry id among the successful ones: a failed
//! entry, or one SQS does not mention at all, is not known to be sent and its record is reported
//! as failed. Sending again is safe: the welcome function skips a user already welcomed.

use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use futures::future::join_all;
use std::collections::HashSet;
use users_core::{Deadline, UserId, WelcomeMessage};

/// SQS takes at most ten entries in one SendMessageBatch.
const MESSAGES_PER_REQUEST: usize = 10;

/// Why a user's welcome message is not known to be on the queue.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ForwardError {
    #[error("SQS refused the message: {code}")]
    Refused { code: String },
    #[error("SQS did not say the message was sent")]
    NotAcknowledged,
    #[error("the request to SQS failed: {0}")]
    Request(String),
    #[error("SQS did not answer before the invocation's deadline")]
    DeadlineExceeded,
}

/// The welcome queue, through one SDK client built at start-up.
#[derive(Debug, Clone)]
pub struct WelcomeQueue {
    client: Client,
    url: String,
}

impl WelcomeQueue {
    pub fn new(client: Client, url: impl Into<String>) -> Self {
        Self {
            client,
            url: url.into(),
        }
    }

    /// Puts one message per user on the queue (requests of ten, sent concurrently, each bounded
    /// by `deadline`); one result per user, in the order given.
    pub async fn forward(
        &self,
        users: &[UserId],
        deadline: Deadline,
    ) -> Vec<Result<(), ForwardError>> {
        let requests = users
            .chunks(MESSAGES_PER_REQUEST)
            .map(|chunk| self.send_chunk(chunk, deadline));
        join_all(requests).await.into_iter().flatten().collect()
    }

    async fn send_chunk(
        &self,
        users: &[UserId],
        deadline: Deadline,
    ) -> Vec<Result<(), ForwardError>> {
        // Entry ids are the users' positions in the chunk: unique within the request, as SQS asks.
        let entries: Vec<SendMessageBatchRequestEntry> = users
            .iter()
            .enumerate()
            .map(|(position, &user_id)| {
                SendMessageBatchRequestEntry::builder()
                    .id(position.to_string())
                    .message_body(WelcomeMessage { user_id }.to_body())
                    .build()
                    .expect("id and body are set")
            })
            .collect();
        let request = self
            .client
            .send_message_batch()
            .queue_url(&self.url)
            .set_entries(Some(entries))
            .send();
        let answer = match deadline.bound(async { Ok(request.await) }).await {
            Err(_) => return vec![Err(ForwardError::DeadlineExceeded); users.len()],
            Ok(Err(err)) => {
                let reason = aws_sdk_sqs::error::DisplayErrorContext(&err).to_string();
                return vec![Err(ForwardError::Request(reason)); users.len()];
            }
            Ok(Ok(answer)) => answer,
        };
        let sent: HashSet<&str> = answer.successful().iter().map(|entry| entry.id()).collect();
        (0..users.len())
            .map(|position| {
                let id = position.to_string();
                if let Some(failed) = answer.failed().iter().find(|entry| entry.id() == id) {
                    Err(ForwardError::Refused {
                        code: failed.code().to_owned(),
                    })
                } else if sent.contains(id.as_str()) {
                    Ok(())
                } else {
                    Err(ForwardError::NotAcknowledged)
                }
            })
            .collect()
    }
}

//! The welcome email, sent with Amazon SES (v2 API).

use aws_sdk_sesv2::Client;
use aws_sdk_sesv2::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sesv2::operation::send_email::SendEmailError;
use aws_sdk_sesv2::types::{Body, Content, Destination, EmailContent, Message};
use users_core::{Deadline, User};

/// Why an email was not sent.
#[derive(Debug, Clone, thiserror::Error)]
pub enum MailError {
    /// SES refused this email for good: the recipient is malformed, or (in the SES sandbox) not
    /// verified. Sending it again would be refused again.
    #[error("SES refused the email: {code}")]
    Refused { code: String },
    /// Throttling, a paused account, an unverified sender, a network fault: worth trying later.
    #[error("SES did not send the email: {code}")]
    NotSent { code: String },
    #[error("SES did not answer before the invocation's deadline")]
    DeadlineExceeded,
}

/// Sends the welcome email from the configured sender, through one SDK client.
#[derive(Debug, Clone)]
pub struct Mailer {
    client: Client,
    sender: String,
}

impl Mailer {
    pub fn new(client: Client, sender: impl Into<String>) -> Self {
        Self {
            client,
            sender: sender.into(),
        }
    }

    pub fn sender(&self) -> &str {
        &self.sender
    }

    /// Sends the welcome email to the user's address, naming the user's id.
    pub async fn send_welcome(&self, user: &User, deadline: Deadline) -> Result<(), MailError> {
        let text = |data: String| {
            Content::builder()
                .data(data)
                .charset("UTF-8")
                .build()
                .expect("data is set")
        };
        let message = Message::builder()
            .subject(text("Welcome".to_owned()))
            .body(
                Body::builder()
                    .text(text(format!(
                        "Welcome! Your account is ready. Your user id is {}.\n",
                        user.id
                    )))
                    .build(),
            )
            .build();
        let request = self
            .client
            .send_email()
            .from_email_address(&self.sender)
            .destination(
                Destination::builder()
                    .to_addresses(user.email.as_str())
                    .build(),
            )
            .content(EmailContent::builder().simple(message).build())
            .send();
        match deadline.bound(async { Ok(request.await) }).await {
            Err(_) => Err(MailError::DeadlineExceeded),
            Ok(Ok(_)) => Ok(()),
            Ok(Err(err)) => Err(self.classify(&err)),
        }
    }

    /// Tells a refusal of this email from a failure worth retrying: `MessageRejected` and
    /// `BadRequestException` are about this email, anything else (throttling, a paused account,
    /// an outage) passes. SES answers
    /// `MessageRejected` both for an unverified recipient (this user's, for good) and for an
    /// unverified sender (ours, until someone verifies it); its message names the identities
    /// that failed, so a rejection naming the sender is retried, not recorded against the user.
    /// Only the error's code is kept: SES's messages can contain the recipient's address.
    fn classify<R>(&self, err: &SdkError<SendEmailError, R>) -> MailError {
        let Some(service_error) = err.as_service_error() else {
            let code = match err {
                SdkError::TimeoutError(_) => "Timeout",
                SdkError::DispatchFailure(_) => "DispatchFailure",
                SdkError::ResponseError(_) => "ResponseError",
                _ => "RequestNotSent",
            };
            return MailError::NotSent { code: code.into() };
        };
        let code = match service_error {
            SendEmailError::MessageRejected(_) => "MessageRejected",
            SendEmailError::BadRequestException(_) => "BadRequestException",
            SendEmailError::TooManyRequestsException(_) => "TooManyRequestsException",
            SendEmailError::LimitExceededException(_) => "LimitExceededException",
            SendEmailError::SendingPausedException(_) => "SendingPausedException",
            SendEmailError::AccountSuspendedException(_) => "AccountSuspendedException",
            SendEmailError::MailFromDomainNotVerifiedException(_) => {
                "MailFromDomainNotVerifiedException"
            }
            SendEmailError::NotFoundException(_) => "NotFoundException",
            other => other.code().unwrap_or("Unknown"),
        }
        .to_owned();
        // The exception's own message (the error's metadata may not carry it).
        let message = match service_error {
            SendEmailError::MessageRejected(rejected) => rejected.message(),
            SendEmailError::BadRequestException(bad) => bad.message(),
            other => other.message(),
        };
        let names_sender =
            message.is_some_and(|message| contains_ignoring_case(message, &self.sender));
        // InvalidParameterValue is SES v1's name for a malformed address (what moto answers).
        let refused = matches!(
            service_error,
            SendEmailError::MessageRejected(_) | SendEmailError::BadRequestException(_)
        ) || code == "InvalidParameterValue";
        if refused && !names_sender {
            MailError::Refused { code }
        } else {
            MailError::NotSent { code }
        }
    }
}

fn contains_ignoring_case(haystack: &str, needle: &str) -> bool {
    !needle.is_empty() && haystack.to_lowercase().contains(&needle.to_lowercase())
}

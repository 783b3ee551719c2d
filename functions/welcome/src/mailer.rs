//! The welcome email, sent with Amazon SES (v2 API).
//!
//! SES's `SendEmail` takes no idempotency token, so sending again after an answer that was lost
//! can send a second email. Hence the client makes no retries of its own (see [`Mailer::from_conf`]),
//! only throttling, which SES answers before it sends anything, is tried again here, and every
//! failure says whether the email is known not to have been sent.

use aws_sdk_sesv2::Client;
use aws_sdk_sesv2::config::http::HttpResponse;
use aws_sdk_sesv2::config::retry::RetryConfig;
use aws_sdk_sesv2::config::timeout::TimeoutConfig;
use aws_sdk_sesv2::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sesv2::operation::send_email::SendEmailError;
use aws_sdk_sesv2::types::{Body, Content, Destination, EmailContent, Message};
use std::time::Duration;
use users_core::{Backoff, Deadline, Email, User};

/// Sends tried per email when SES throttles (its sending rate, or a burst of new users).
const THROTTLED_ATTEMPTS: u32 = 3;
const THROTTLE_BACKOFF: Backoff = Backoff {
    first: Duration::from_millis(200),
    cap: Duration::from_secs(1),
};

/// Why an email was not (known to be) sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MailError {
    /// Refused for good: the recipient's address is malformed, or SES refused it by name (an
    /// unverified recipient in the SES sandbox). Sending again would be refused again.
    #[error("the email was refused: {code}")]
    Refused { code: String },
    /// SES answered that it did not send (throttling, a paused account, our sender not
    /// verified, a request it could not take): try again later.
    #[error("SES did not send the email: {code}")]
    NotSent { code: String },
    /// No answer to tell (a timeout, a dropped connection, a 5xx, the invocation's time up): SES
    /// may have sent it. Tried again later, which may send a second email.
    #[error("SES's answer was lost: {code}")]
    Unanswered { code: String },
}

/// Sends the welcome email from the configured sender, through one SDK client.
#[derive(Debug, Clone)]
pub struct Mailer {
    client: Client,
    /// As configured (SES may treat the local part's case as significant), checked to be an address.
    sender: String,
}

impl Mailer {
    /// A mailer on this client, with the client's own retries turned off (the SDK's standard
    /// retries would resend an email whose answer timed out). The sender must be a bare
    /// address (`name@example.com`).
    ///
    /// # Panics
    /// At start-up, if the sender is not an address.
    pub fn new(client: Client, sender: &str) -> Self {
        if !is_bare_address(sender)
            || !sender
                .rsplit_once('@')
                .is_some_and(|(_, d)| d.contains('.'))
        {
            panic!("the sender {sender:?} is not a bare email address (name@example.com)");
        }
        let config = client
            .config()
            .to_builder()
            .retry_config(RetryConfig::disabled())
            .timeout_config(ses_timeouts())
            .build();
        Self {
            client: Client::from_conf(config),
            sender: sender.to_owned(),
        }
    }

    /// A mailer on a client made from the SDK's configuration.
    pub fn from_conf(aws: &aws_config::SdkConfig, sender: &str) -> Self {
        Self::new(Client::new(aws), sender)
    }

    pub fn sender(&self) -> &str {
        &self.sender
    }

    /// Sends the welcome email to the user's address, naming the user's id; throttled sends are
    /// tried again (jittered) while `deadline` allows.
    pub async fn send_welcome(&self, user: &User, deadline: Deadline) -> Result<(), MailError> {
        // A stored address SES cannot take at all (foreign or old data) is refused here: SES's
        // answer would not say for whom. Anything else, SES judges (stored addresses are read
        // as stored, not by today's stricter rule for new ones).
        if !is_bare_address(user.email.as_str()) {
            return Err(MailError::Refused {
                code: "InvalidAddress".into(),
            });
        }
        let mut attempt = 1;
        loop {
            // An attempt cut short by the deadline may have sent: start one only with time for
            // all of it.
            if deadline
                .remaining()
                .is_some_and(|left| left < ATTEMPT_TIMEOUT)
            {
                return Err(MailError::NotSent {
                    code: "NoTimeLeft".into(),
                });
            }
            match self.send_once(user, deadline).await {
                Err(MailError::NotSent { code })
                    if is_throttling(&code) && attempt < THROTTLED_ATTEMPTS =>
                {
                    let wait = THROTTLE_BACKOFF.wait(attempt);
                    if deadline
                        .bound(async {
                            wait.await;
                            Ok(())
                        })
                        .await
                        .is_err()
                    {
                        return Err(MailError::NotSent { code });
                    }
                    attempt += 1;
                }
                outcome => return outcome,
            }
        }
    }

    async fn send_once(&self, user: &User, deadline: Deadline) -> Result<(), MailError> {
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
            Err(_) => Err(MailError::Unanswered {
                code: "DeadlineExceeded".into(),
            }),
            Ok(Ok(_)) => Ok(()),
            Ok(Err(err)) => Err(self.classify(&err, &user.email)),
        }
    }

    /// What a failed send means. Only SES's own answers say an email was not sent; a refusal is
    /// for good only when SES names this recipient as what failed (`MessageRejected` lists the
    /// identities that failed the sandbox's check) and not our sender. Only the error's code is
    /// kept: SES's messages can contain the recipient's address.
    fn classify(
        &self,
        err: &SdkError<SendEmailError, HttpResponse>,
        recipient: &Email,
    ) -> MailError {
        let Some(service_error) = err.as_service_error() else {
            let code = match err {
                SdkError::ConstructionFailure(_) => {
                    return MailError::NotSent {
                        code: "ConstructionFailure".into(),
                    };
                }
                SdkError::TimeoutError(_) => "Timeout",
                SdkError::DispatchFailure(_) => "DispatchFailure",
                _ => "ResponseError",
            };
            return MailError::Unanswered { code: code.into() };
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
        if let SendEmailError::MessageRejected(rejected) = service_error {
            let failed = failed_identities(rejected.message().unwrap_or_default());
            let names = |address: &str| failed.iter().any(|f| f.eq_ignore_ascii_case(address));
            if names(recipient.as_str()) && !names(&self.sender) {
                return MailError::Refused { code };
            }
        }
        // A 5xx may have sent the email before failing.
        if err
            .raw_response()
            .is_some_and(|raw| raw.status().is_server_error())
        {
            return MailError::Unanswered { code };
        }
        MailError::NotSent { code }
    }
}

/// SES answers a send in well under a second; an answer cut short is one that may have sent, so
/// the attempt gets 3 s (of the function's 10) rather than DynamoDB's 2 s.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(3);

fn ses_timeouts() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(1))
        .operation_attempt_timeout(ATTEMPT_TIMEOUT)
        .build()
}

/// An address SES can take at all: one `@` between a non-empty local part and domain, and no
/// spaces, control characters or the characters that delimit addresses (`<>,;"`).
fn is_bare_address(address: &str) -> bool {
    let forbidden = |c: char| c.is_whitespace() || c.is_control() || "<>,;\"".contains(c);
    match address.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.is_empty()
                && !domain.contains('@')
                && !address.contains(forbidden)
        }
        None => false,
    }
}

fn is_throttling(code: &str) -> bool {
    matches!(code, "TooManyRequestsException" | "LimitExceededException")
}

/// The identities a `MessageRejected` lists: "Email address is not verified. The following
/// identities failed the check in region US-EAST-1: a@example.com, b@example.com".
fn failed_identities(message: &str) -> Vec<&str> {
    let Some((_, list)) = message.rsplit_once(": ") else {
        return Vec::new();
    };
    list.split(',')
        .map(str::trim)
        // An identity SES cut short ("c@d.co...") may be any address that starts so.
        .filter(|identity| !identity.ends_with(".."))
        .map(|identity| identity.strip_suffix('.').unwrap_or(identity))
        .filter(|identity| !identity.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_address_is_what_ses_can_take() {
        for address in [
            "a@b.co",
            "Ä@b.co",
            "a..b@x.com",
            "a@exa_mple.com",
            "x@localhost",
        ] {
            assert!(is_bare_address(address), "{address}");
        }
        for address in [
            "no-domain",
            "@b.co",
            "a@",
            "a@b@c.co",
            "A <a@b.co>",
            "a b@c.co",
            "a@b.co,c@d.co",
            "a\n@b.co",
        ] {
            assert!(!is_bare_address(address), "{address}");
        }
    }

    #[test]
    fn the_failed_identities_are_read_exactly() {
        let message = "Email address is not verified. The following identities failed the check in region US-EAST-1: xa@b.com, Welcome@Example.com.";
        assert_eq!(
            failed_identities(message),
            ["xa@b.com", "Welcome@Example.com"]
        );
        assert!(failed_identities("Email address not verified").is_empty());
        // A list SES cut short names nobody for certain.
        assert_eq!(failed_identities("...: a@b.co, c@d.co..."), ["a@b.co"]);
    }
}

//! Configuration, read once at start-up from the environment: the physical table names, which
//! CloudFormation chooses and the template passes to each function, and the AWS SDK's settings.

use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use std::time::Duration;

/// The SDK's configuration from the environment (region, credentials, `AWS_ENDPOINT_URL_*`),
/// with [`dynamodb_timeouts`].
pub async fn load_aws_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .timeout_config(dynamodb_timeouts())
        .load()
        .await
}

/// How long one DynamoDB request may take. The SDK has a connect timeout by default but no
/// read timeout, so a hung endpoint would hold a request until Lambda kills the function.
///
/// - connect, 1 s: a TCP and TLS connection to a regional endpoint takes tens of milliseconds;
///   a second means a bad path, and a retry on a new connection does better than waiting.
/// - attempt, 2 s: single-item and transactional writes answer in tens of milliseconds; 2 s cuts
///   a hung request while leaving the SDK's standard retries (3 attempts) room in a 10 s function.
/// - no operation timeout here: the whole operation, retries included, is bounded by what the
///   invocation has left ([`crate::Deadline`]), which is the limit that matters.
pub fn dynamodb_timeouts() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(1))
        .operation_attempt_timeout(Duration::from_secs(2))
        .build()
}

/// The tables the HTTP functions use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableNames {
    pub users: String,
    pub emails: String,
}

impl TableNames {
    /// Reads `USERS_TABLE` and `EMAILS_TABLE`.
    ///
    /// # Panics
    /// At start-up, if either variable is missing: the function cannot work without them.
    pub fn from_env() -> Self {
        Self {
            users: required_env("USERS_TABLE"),
            emails: required_env("EMAILS_TABLE"),
        }
    }
}

/// Reads a configuration variable that must be set; for use at start-up only.
///
/// # Panics
/// If the variable is missing or empty, naming it.
pub fn required_env(name: &str) -> String {
    match std::env::var(name) {
        Ok(value) if !value.is_empty() => value,
        _ => panic!("environment variable {name} must be set"),
    }
}

//! The business metric an HTTP function's answer counts, from its status alone (so it counts
//! exactly what the client was told): a user created, changed or deleted; a request refused, by
//! why (the field was invalid, the user unknown, the email taken); a request that failed.

use lambda_http::{Body, Response};
use users_core::Metrics;

/// What an HTTP function does, for the metric names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Create,
    Change,
    Delete,
    /// GET /users/{id} and its history: reads count only when they fail.
    Read,
}

/// The metric and outcome an answer counts, if any.
pub fn metric_of(
    operation: Operation,
    status: u16,
) -> Option<(&'static str, Option<&'static str>)> {
    match (operation, status) {
        (Operation::Create, 200..=299) => Some(("UsersCreated", None)),
        (Operation::Change, 200..=299) => Some(("UsersChanged", None)),
        (Operation::Delete, 200..=299) => Some(("UsersDeleted", None)),
        (Operation::Read, 200..=299) => None,
        (_, 404) => Some(("UsersRefused", Some("not_found"))),
        (_, 409) => Some(("UsersRefused", Some("taken"))),
        (_, 400..=499) => Some(("UsersRefused", Some("invalid"))),
        (_, 503) => Some(("RequestsFailed", Some("unavailable"))),
        (_, _) => Some(("RequestsFailed", Some("error"))),
    }
}

/// Counts an answer (see [`metric_of`]).
pub fn count_answer(metrics: &Metrics, operation: Operation, response: &Response<Body>) {
    if let Some((metric, outcome)) = metric_of(operation, response.status().as_u16()) {
        match outcome {
            Some(outcome) => metrics.count(metric, 1, &[("Outcome", outcome)]),
            None => metrics.count(metric, 1, &[]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_answer_counts_what_the_client_was_told() {
        assert_eq!(
            metric_of(Operation::Create, 201),
            Some(("UsersCreated", None))
        );
        assert_eq!(
            metric_of(Operation::Change, 200),
            Some(("UsersChanged", None))
        );
        assert_eq!(
            metric_of(Operation::Delete, 200),
            Some(("UsersDeleted", None))
        );
        assert_eq!(metric_of(Operation::Read, 200), None);
        assert_eq!(
            metric_of(Operation::Create, 409),
            Some(("UsersRefused", Some("taken")))
        );
        assert_eq!(
            metric_of(Operation::Create, 400),
            Some(("UsersRefused", Some("invalid")))
        );
        assert_eq!(
            metric_of(Operation::Create, 413),
            Some(("UsersRefused", Some("invalid")))
        );
        assert_eq!(
            metric_of(Operation::Delete, 404),
            Some(("UsersRefused", Some("not_found")))
        );
        assert_eq!(
            metric_of(Operation::Read, 503),
            Some(("RequestsFailed", Some("unavailable")))
        );
        assert_eq!(
            metric_of(Operation::Change, 500),
            Some(("RequestsFailed", Some("error")))
        );
    }
}

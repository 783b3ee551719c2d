//! The time an invocation has left. Lambda kills a function at its deadline, and a killed HTTP
//! function answers nothing (API Gateway then sends its own 5xx) while a killed stream function
//! fails its whole batch. So every DynamoDB call is bounded by the deadline less a margin to
//! answer, and a call still waiting then becomes [`Error::DeadlineExceeded`].

use crate::error::Error;
use std::future::Future;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::time::Instant;

/// Time kept back from the deadline to build and send the answer (a JSON body, or a stream
/// batch's failures) and for the runtime to post it: ample even at 128 MB's CPU share.
pub const ANSWER_MARGIN: Duration = Duration::from_millis(500);

/// September 2001 in milliseconds since the epoch: no real deadline is earlier.
const EARLIEST_PLAUSIBLE_DEADLINE: u64 = 1_000_000_000_000;

/// When the work of an invocation must be over, if there is a deadline at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline(Option<Instant>);

impl Deadline {
    /// No deadline: a handler called outside Lambda (a test, a hand-made context).
    pub fn none() -> Self {
        Self(None)
    }

    /// From the deadline Lambda gives an invocation (milliseconds since the Unix epoch), less
    /// [`ANSWER_MARGIN`]. A value that cannot be such a time means no deadline: zero is what a
    /// default `Context` holds, and `cargo lambda watch` sends a duration (600000) instead.
    pub fn from_lambda(deadline_epoch_millis: u64) -> Self {
        if deadline_epoch_millis < EARLIEST_PLAUSIBLE_DEADLINE {
            return Self::none();
        }
        let deadline = UNIX_EPOCH + Duration::from_millis(deadline_epoch_millis);
        let left = deadline
            .duration_since(SystemTime::now())
            .unwrap_or_default();
        Self(Some(Instant::now() + left.saturating_sub(ANSWER_MARGIN)))
    }

    /// A deadline `reserve` earlier, for a step that must leave time for the ones after it.
    pub fn earlier_by(self, reserve: Duration) -> Self {
        Self(
            self.0
                .map(|at| at.checked_sub(reserve).unwrap_or_else(Instant::now)),
        )
    }

    /// The time left, if there is a deadline (zero once it has passed).
    pub fn remaining(self) -> Option<Duration> {
        self.0
            .map(|at| at.saturating_duration_since(Instant::now()))
    }

    /// Runs a DynamoDB operation, giving up (and dropping its request) when the deadline comes.
    pub async fn bound<T>(
        self,
        operation: impl Future<Output = Result<T, Error>>,
    ) -> Result<T, Error> {
        match self.0 {
            None => operation.await,
            Some(at) => tokio::time::timeout_at(at, operation)
                .await
                .unwrap_or(Err(Error::DeadlineExceeded)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn epoch_millis_in(from_now: Duration) -> u64 {
        let at = SystemTime::now() + from_now;
        at.duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
    }

    #[tokio::test]
    async fn an_operation_that_outlives_the_deadline_is_cut_short() {
        let deadline = Deadline::from_lambda(epoch_millis_in(Duration::from_millis(700)));
        let started = Instant::now();
        let result = deadline
            .bound(async {
                tokio::time::sleep(Duration::from_secs(30)).await;
                Ok(())
            })
            .await;
        assert!(matches!(result, Err(Error::DeadlineExceeded)));
        // 700 ms to the deadline, less the 500 ms margin.
        assert!(
            started.elapsed() < Duration::from_millis(600),
            "{:?}",
            started.elapsed()
        );
    }

    #[tokio::test]
    async fn an_operation_within_the_deadline_keeps_its_result() {
        let deadline = Deadline::from_lambda(epoch_millis_in(Duration::from_secs(10)));
        assert_eq!(deadline.bound(async { Ok(7) }).await.unwrap(), 7);
        let failed = deadline
            .bound(async { Err::<(), _>(Error::EmailTaken) })
            .await;
        assert!(matches!(failed, Err(Error::EmailTaken)));
    }

    #[test]
    fn a_deadline_earlier_by_a_reserve_leaves_that_much_less_and_none_stays_none() {
        let deadline = Deadline::from_lambda(epoch_millis_in(Duration::from_secs(10)));
        let left = deadline.remaining().unwrap();
        let earlier = deadline
            .earlier_by(Duration::from_secs(2))
            .remaining()
            .unwrap();
        assert!(
            left - earlier >= Duration::from_millis(1990),
            "{left:?} {earlier:?}"
        );
        assert_eq!(
            deadline.earlier_by(Duration::from_secs(3600)).remaining(),
            Some(Duration::ZERO)
        );
        assert_eq!(
            Deadline::none().earlier_by(Duration::from_secs(1)),
            Deadline::none()
        );
        assert_eq!(Deadline::none().remaining(), None);
    }

    #[tokio::test]
    async fn a_passed_deadline_gives_up_at_once_and_none_never_does() {
        let passed = Deadline::from_lambda(epoch_millis_in(Duration::ZERO) - 1000);
        let result = passed
            .bound(std::future::pending::<Result<(), Error>>())
            .await;
        assert!(matches!(result, Err(Error::DeadlineExceeded)));
        assert_eq!(Deadline::from_lambda(0), Deadline::none());
        // What cargo lambda watch sends: a duration, not a time.
        assert_eq!(Deadline::from_lambda(600_000), Deadline::none());
        assert_eq!(Deadline::none().bound(async { Ok(1) }).await.unwrap(), 1);
    }
}

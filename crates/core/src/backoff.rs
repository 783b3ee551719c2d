//! Waits between the retries this crate makes itself (cancelled transactions, unprocessed batch
//! writes). The SDK's own retries already wait with jitter; these must too, or two requests that
//! collided once would retry in step and collide again.

use std::time::Duration;

/// Exponential backoff with full jitter: before retry `n` (1 for the first), a random wait
/// between zero and `min(cap, first * 2^(n-1))`. Full jitter spreads colliding clients best for
/// the least total wait (the AWS Architecture Blog's "Exponential Backoff And Jitter").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub first: Duration,
    pub cap: Duration,
}

impl Backoff {
    /// The longest wait before retry `retry` (1-based).
    fn ceiling(self, retry: u32) -> Duration {
        let doubled = self.first.saturating_mul(
            1_u32
                .checked_shl(retry.saturating_sub(1))
                .unwrap_or(u32::MAX),
        );
        doubled.min(self.cap)
    }

    /// A random wait before retry `retry` (1-based).
    pub fn delay(self, retry: u32) -> Duration {
        let ceiling = u64::try_from(self.ceiling(retry).as_micros()).unwrap_or(u64::MAX);
        Duration::from_micros(fastrand::u64(0..=ceiling))
    }

    /// Sleeps for [`Backoff::delay`]. Callers run under a [`crate::Deadline`], which cuts the
    /// wait short when the invocation's time is up.
    pub async fn wait(self, retry: u32) {
        tokio::time::sleep(self.delay(retry)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BACKOFF: Backoff = Backoff {
        first: Duration::from_millis(20),
        cap: Duration::from_millis(300),
    };

    #[test]
    fn the_ceiling_doubles_up_to_the_cap() {
        let ceilings: Vec<u128> = (1..=6).map(|n| BACKOFF.ceiling(n).as_millis()).collect();
        assert_eq!(ceilings, [20, 40, 80, 160, 300, 300]);
        assert_eq!(BACKOFF.ceiling(u32::MAX), BACKOFF.cap);
    }

    #[test]
    fn delays_are_spread_between_zero_and_the_ceiling() {
        let delays: Vec<Duration> = (0..200).map(|_| BACKOFF.delay(3)).collect();
        assert!(delays.iter().all(|d| *d <= Duration::from_millis(80)));
        // Jitter: colliding clients do not all wait the same time.
        let distinct: std::collections::HashSet<_> = delays.iter().collect();
        assert!(distinct.len() > 100, "{} distinct delays", distinct.len());
        assert!(delays.iter().any(|d| *d < Duration::from_millis(40)));
        assert!(delays.iter().any(|d| *d > Duration::from_millis(40)));
    }
}

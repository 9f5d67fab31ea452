//! How long to wait between connection attempts.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use backon::{Backoff, BackoffBuilder};

type Factory = dyn Fn() -> Box<dyn Backoff> + Send + Sync;

/// The delays between reconnection attempts, built on `backon`.
///
/// The sequence starts again after a session that consumed messages, and
/// the first attempt after such a session happens at once, as in eventail.
#[derive(Clone)]
pub struct ReconnectPolicy(Arc<Factory>);

impl ReconnectPolicy {
    /// eventail's policy: 1 s more after each failed attempt, at most 30 s.
    pub fn eventail() -> ReconnectPolicy {
        ReconnectPolicy::linear(Duration::from_secs(1), Duration::from_secs(30))
    }

    /// `step`, `2 × step`, `3 × step`, ... up to `max`.
    pub fn linear(step: Duration, max: Duration) -> ReconnectPolicy {
        ReconnectPolicy::from_builder(Linear {
            step,
            max,
            attempt: 0,
        })
    }

    /// Any `backon` policy, for example
    /// `backon::ExponentialBuilder::default().without_max_times()`. A policy
    /// that runs out of delays keeps using its last one: the service never
    /// gives up on the broker.
    pub fn from_builder<B>(builder: B) -> ReconnectPolicy
    where
        B: BackoffBuilder + Clone + 'static,
        B::Backoff: 'static,
    {
        ReconnectPolicy(Arc::new(move || Box::new(builder.clone().build())))
    }

    pub(crate) fn delays(&self) -> Delays {
        Delays {
            inner: (self.0)(),
            last: Duration::from_secs(1),
        }
    }
}

impl Default for ReconnectPolicy {
    fn default() -> Self {
        ReconnectPolicy::eventail()
    }
}

impl fmt::Debug for ReconnectPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ReconnectPolicy")
    }
}

/// An endless sequence of delays.
pub(crate) struct Delays {
    inner: Box<dyn Backoff>,
    last: Duration,
}

impl Delays {
    pub(crate) fn next_delay(&mut self) -> Duration {
        if let Some(d) = self.inner.next() {
            self.last = d;
        }
        self.last
    }
}

#[derive(Clone)]
struct Linear {
    step: Duration,
    max: Duration,
    attempt: u32,
}

impl Iterator for Linear {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        self.attempt = self.attempt.saturating_add(1);
        Some(self.step.saturating_mul(self.attempt).min(self.max))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eventail_policy_grows_by_one_second_up_to_thirty() {
        let mut d = ReconnectPolicy::eventail().delays();
        let first: Vec<u64> = (0..3).map(|_| d.next_delay().as_secs()).collect();
        assert_eq!(first, [1, 2, 3]);
        for _ in 0..40 {
            d.next_delay();
        }
        assert_eq!(d.next_delay(), Duration::from_secs(30));
        // A fresh sequence starts over.
        assert_eq!(
            ReconnectPolicy::eventail().delays().next_delay(),
            Duration::from_secs(1)
        );
    }

    #[test]
    fn finite_backon_policies_keep_their_last_delay() {
        let policy = ReconnectPolicy::from_builder(
            backon::ConstantBuilder::default()
                .with_delay(Duration::from_millis(5))
                .with_max_times(2),
        );
        let mut d = policy.delays();
        for _ in 0..5 {
            assert_eq!(d.next_delay(), Duration::from_millis(5));
        }
    }
}

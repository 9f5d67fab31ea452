//! The schedule of fixed-rate mode, and a precise alarm clock for it.
//!
//! tokio's timers tick in whole milliseconds, so a command due in 0.3 ms
//! would leave up to a millisecond late, and since latency is measured
//! from the scheduled time, that lateness would be charged to the service.
//! A plain thread sleeping with the OS's high-resolution timer wakes within
//! about a tenth of a millisecond, and nudges the async loop through a
//! channel.

use std::thread;
use std::time::{Duration, Instant};

use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

/// Command `n` is due at `start + n / rate`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Schedule {
    start: Instant,
    per_second: f64,
}

impl Schedule {
    /// `per_second` commands per second from `start` on.
    pub(crate) fn new(start: Instant, per_second: f64) -> Schedule {
        Schedule { start, per_second }
    }

    /// When command `n` is due.
    pub(crate) fn due(&self, n: u64) -> Instant {
        self.start + Duration::from_secs_f64(n as f64 / self.per_second)
    }

    /// Starts a thread that sends `()` at each due time, until the
    /// receiver is dropped (it notices at the next due time).
    pub(crate) fn alarms(self) -> std::io::Result<UnboundedReceiver<()>> {
        let (tx, rx) = unbounded_channel();
        thread::Builder::new()
            .name("bench-schedule".into())
            .spawn(move || {
                for n in 0.. {
                    let due = self.due(n);
                    let now = Instant::now();
                    if due > now {
                        thread::sleep(due - now);
                    }
                    if tx.send(()).is_err() {
                        break;
                    }
                }
            })?;
        Ok(rx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_times_are_evenly_spaced_from_the_start() {
        let t0 = Instant::now();
        let s = Schedule::new(t0, 400.0);
        assert_eq!(s.due(0), t0);
        assert_eq!(s.due(1), t0 + Duration::from_micros(2500));
        assert_eq!(s.due(400), t0 + Duration::from_secs(1));
    }

    #[tokio::test]
    async fn alarms_ring_until_dropped() {
        let mut rx = Schedule::new(Instant::now(), 1000.0).alarms().unwrap();
        for _ in 0..3 {
            assert_eq!(rx.recv().await, Some(()));
        }
        drop(rx);
    }
}

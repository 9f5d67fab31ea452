//! What became of each command: the in-flight window, the latency
//! histogram and the counters. No I/O, so every rule is unit-tested.
//!
//! Commands are numbered 0, 1, 2... in send order. The window holds the
//! start time of every command from the oldest unsettled one on; a command
//! is settled by its result, by a failure (returned, nacked) or by its
//! timeout. Since every command has the same timeout, the oldest one is
//! always the next to expire. Each command's fate is kept in one byte, so
//! a late or a second result is told apart from an unknown one.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// The fate of one command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    InFlight,
    Answered,
    TimedOut,
    Failed,
}

/// The counters of a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    /// Commands published.
    pub(crate) sent: u64,
    /// Results with status `success`.
    pub(crate) ok: u64,
    /// Results with any other status.
    pub(crate) error_results: u64,
    /// Commands nacked by the broker.
    pub(crate) nacked: u64,
    /// Commands with no result within the timeout.
    pub(crate) timeouts: u64,
    /// Results that came after their command's timeout.
    pub(crate) late: u64,
    /// Second (or later) results for one command.
    pub(crate) duplicates: u64,
    /// Results whose correlation id is not one of this run's.
    pub(crate) unknown: u64,
}

/// Tracks the commands of one run.
#[derive(Debug)]
pub(crate) struct Tracker {
    timeout: Duration,
    /// The number of the first command in `window`.
    base: u64,
    /// Start times (send or scheduled time) from `base` on; `None` once settled.
    window: VecDeque<Option<Instant>>,
    in_flight: usize,
    fates: Vec<Fate>,
    /// Round trips of the results received in time, in microseconds.
    latency: Histogram<u64>,
    counts: Counts,
    first_start: Option<Instant>,
    last_result: Option<Instant>,
}

/// The longest round trip the histogram holds: an hour, in microseconds.
const MAX_LATENCY_US: u64 = 3_600_000_000;

impl Tracker {
    /// A tracker for commands that time out after `timeout`.
    pub(crate) fn new(timeout: Duration) -> Tracker {
        Tracker {
            timeout,
            base: 0,
            window: VecDeque::new(),
            in_flight: 0,
            fates: Vec::new(),
            // Three significant digits: 0.1% resolution at any scale.
            latency: Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)
                .expect("constant histogram bounds are valid"),
            counts: Counts::default(),
            first_start: None,
            last_result: None,
        }
    }

    /// The number the next command gets.
    pub(crate) fn next(&self) -> u64 {
        self.counts.sent
    }

    /// Records that the next command started at `start` (its send time, or
    /// its scheduled time in fixed-rate mode); returns its number.
    pub(crate) fn sent(&mut self, start: Instant) -> u64 {
        let n = self.counts.sent;
        self.counts.sent += 1;
        self.fates.push(Fate::InFlight);
        self.window.push_back(Some(start));
        self.in_flight += 1;
        self.first_start.get_or_insert(start);
        n
    }

    /// Commands sent and not settled yet.
    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// A result for command `n` arrived at `now`.
    pub(crate) fn result(&mut self, n: u64, success: bool, now: Instant) {
        match self.fates.get(n as usize).copied() {
            None => self.counts.unknown += 1,
            Some(Fate::Answered) => self.counts.duplicates += 1,
            Some(Fate::TimedOut) => self.counts.late += 1,
            // A result after a failure is a broker oddity; count it once.
            Some(Fate::Failed) => self.counts.duplicates += 1,
            Some(Fate::InFlight) => {
                let start = self.settle(n, Fate::Answered);
                if let Some(start) = start {
                    let micros = now.saturating_duration_since(start).as_micros();
                    let micros = u64::try_from(micros).unwrap_or(MAX_LATENCY_US);
                    self.latency
                        .saturating_record(micros.clamp(1, MAX_LATENCY_US));
                }
                if success {
                    self.counts.ok += 1;
                } else {
                    self.counts.error_results += 1;
                }
                self.last_result = Some(now);
            }
        }
    }

    /// A result whose correlation id is not one of ours.
    pub(crate) fn unknown(&mut self) {
        self.counts.unknown += 1;
    }

    /// The broker refused command `n` (publisher nack).
    pub(crate) fn nacked(&mut self, n: u64) {
        if self.fates.get(n as usize) != Some(&Fate::InFlight) {
            return;
        }
        self.settle(n, Fate::Failed);
        self.counts.nacked += 1;
    }

    /// Settles every command whose timeout has passed at `now`.
    pub(crate) fn expire(&mut self, now: Instant) {
        while let Some(&front) = self.window.front() {
            match front {
                Some(start) if now.saturating_duration_since(start) < self.timeout => break,
                Some(_) => {
                    self.fates[self.base as usize] = Fate::TimedOut;
                    self.counts.timeouts += 1;
                    self.in_flight -= 1;
                }
                None => {}
            }
            self.window.pop_front();
            self.base += 1;
        }
    }

    /// When the oldest command in flight times out.
    pub(crate) fn next_expiry(&self) -> Option<Instant> {
        self.window
            .iter()
            .flatten()
            .next()
            .map(|s| *s + self.timeout)
    }

    fn settle(&mut self, n: u64, fate: Fate) -> Option<Instant> {
        let index = usize::try_from(n.checked_sub(self.base)?).ok()?;
        let start = self.window.get_mut(index)?.take();
        self.fates[n as usize] = fate;
        self.in_flight -= 1;
        while self.window.front() == Some(&None) {
            self.window.pop_front();
            self.base += 1;
        }
        start
    }

    /// The counters so far.
    pub(crate) fn counts(&self) -> Counts {
        self.counts
    }

    /// The latency histogram, in microseconds.
    pub(crate) fn latency(&self) -> &Histogram<u64> {
        &self.latency
    }

    /// From the first start to the last result received in time.
    pub(crate) fn elapsed(&self) -> Duration {
        match (self.first_start, self.last_result) {
            (Some(first), Some(last)) => last.saturating_duration_since(first),
            _ => Duration::ZERO,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn results_settle_commands_and_record_their_latency() {
        let t0 = Instant::now();
        let mut t = Tracker::new(100 * MS);
        assert_eq!(t.sent(t0), 0);
        assert_eq!(t.sent(t0 + MS), 1);
        assert_eq!(t.in_flight(), 2);
        t.result(1, true, t0 + 3 * MS);
        t.result(0, false, t0 + 5 * MS);
        assert_eq!(t.in_flight(), 0);
        let c = t.counts();
        assert_eq!((c.sent, c.ok, c.error_results), (2, 1, 1));
        assert_eq!(t.latency().len(), 2);
        // The histogram keeps three significant digits.
        assert!(t.latency().equivalent(t.latency().max(), 5000));
        assert!(t.latency().equivalent(t.latency().min(), 2000));
        assert_eq!(t.elapsed(), 5 * MS);
        assert_eq!(t.next_expiry(), None);
    }

    #[test]
    fn timeouts_late_results_duplicates_and_strangers() {
        let t0 = Instant::now();
        let mut t = Tracker::new(10 * MS);
        t.sent(t0);
        t.sent(t0 + 5 * MS);
        assert_eq!(t.next_expiry(), Some(t0 + 10 * MS));
        t.expire(t0 + 9 * MS);
        assert_eq!(t.in_flight(), 2);
        t.expire(t0 + 10 * MS);
        assert_eq!(t.in_flight(), 1);
        assert_eq!(t.next_expiry(), Some(t0 + 15 * MS));
        t.result(0, true, t0 + 11 * MS);
        t.result(1, true, t0 + 12 * MS);
        t.result(1, true, t0 + 13 * MS);
        t.result(7, true, t0 + 13 * MS);
        let c = t.counts();
        assert_eq!(c.timeouts, 1);
        assert_eq!(c.late, 1);
        assert_eq!(c.ok, 1);
        assert_eq!(c.duplicates, 1);
        assert_eq!(c.unknown, 1);
        assert_eq!(t.latency().len(), 1, "only results in time are timed");
    }

    #[test]
    fn nacks_free_their_slot_once() {
        let t0 = Instant::now();
        let mut t = Tracker::new(10 * MS);
        t.sent(t0);
        t.sent(t0);
        t.nacked(0);
        t.nacked(0);
        t.nacked(1);
        t.result(1, true, t0 + MS);
        let c = t.counts();
        assert_eq!((c.nacked, c.ok, c.duplicates), (2, 0, 1));
        assert_eq!(t.in_flight(), 0);
        t.expire(t0 + 20 * MS);
        assert_eq!(t.counts().timeouts, 0);
    }
}

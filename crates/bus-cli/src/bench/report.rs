//! The outcome of a run, as text for people and as one JSON object.

use std::fmt::Write as _;
use std::time::Duration;

use serde_json::json;

use super::Mode;
use super::tracker::{Counts, Tracker};

/// Round-trip percentiles, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub(crate) struct Latency {
    pub(crate) p50: f64,
    pub(crate) p90: f64,
    pub(crate) p99: f64,
    pub(crate) p999: f64,
    pub(crate) max: f64,
    pub(crate) mean: f64,
}

/// What a run measured.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Report {
    /// `SERVICE.COMMAND`.
    pub(crate) command: String,
    /// Closed loop or fixed rate.
    pub(crate) mode: Mode,
    /// What became of the commands.
    pub(crate) counts: Counts,
    /// From the first command's start to the last result in time.
    pub(crate) elapsed: Duration,
    /// Round trips of the results received in time.
    pub(crate) latency: Latency,
}

impl Report {
    /// The report of a finished run.
    pub(crate) fn new(command: &str, mode: Mode, tracker: &Tracker) -> Report {
        let h = tracker.latency();
        let ms = |micros: u64| micros as f64 / 1000.0;
        let latency = if h.is_empty() {
            Latency::default()
        } else {
            Latency {
                p50: ms(h.value_at_quantile(0.50)),
                p90: ms(h.value_at_quantile(0.90)),
                p99: ms(h.value_at_quantile(0.99)),
                p999: ms(h.value_at_quantile(0.999)),
                max: ms(h.max()),
                mean: h.mean() / 1000.0,
            }
        };
        Report {
            command: command.to_owned(),
            mode,
            counts: tracker.counts(),
            elapsed: tracker.elapsed(),
            latency,
        }
    }

    /// Results received in time.
    pub(crate) fn results(&self) -> u64 {
        self.counts.ok + self.counts.error_results
    }

    /// Results per second.
    pub(crate) fn throughput(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.results() as f64 / secs
        } else {
            0.0
        }
    }

    /// Commands that failed: error results, or refused by the broker.
    pub(crate) fn errors(&self) -> u64 {
        self.counts.error_results + self.counts.nacked
    }

    /// Whether every command got a success result, once.
    pub(crate) fn clean(&self) -> bool {
        let c = &self.counts;
        self.errors() == 0 && c.timeouts == 0 && c.duplicates == 0 && c.unknown == 0
    }

    /// One JSON object with every figure; times in milliseconds.
    pub(crate) fn to_json(&self) -> serde_json::Value {
        let (concurrency, rate) = match self.mode {
            Mode::Closed { concurrency } => (Some(concurrency), None),
            Mode::Rate { per_second } => (None, Some(per_second)),
        };
        let c = &self.counts;
        let l = &self.latency;
        json!({
            "command": self.command,
            "mode": self.mode.name(),
            "concurrency": concurrency,
            "rate": rate,
            "sent": c.sent,
            "results": self.results(),
            "ok": c.ok,
            "elapsed_s": self.elapsed.as_secs_f64(),
            "throughput": self.throughput(),
            "latency_ms": {
                "p50": l.p50, "p90": l.p90, "p99": l.p99, "p99.9": l.p999,
                "max": l.max, "mean": l.mean,
            },
            "errors": self.errors(),
            "error_results": c.error_results,
            "nacked": c.nacked,
            "timeouts": c.timeouts,
            "late": c.late,
            "duplicates": c.duplicates,
            "unknown": c.unknown,
        })
    }

    /// A few aligned lines, each ending with a newline.
    pub(crate) fn to_text(&self) -> String {
        let c = &self.counts;
        let l = &self.latency;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{}: {} commands sent, {}",
            self.command,
            c.sent,
            self.mode.describe()
        );
        let _ = writeln!(
            out,
            "  throughput  {:.0} commands/s ({} results in {:.3} s)",
            self.throughput(),
            self.results(),
            self.elapsed.as_secs_f64()
        );
        let _ = writeln!(
            out,
            "  latency     p50 {}  p90 {}  p99 {}  p99.9 {}  max {}",
            ms(l.p50),
            ms(l.p90),
            ms(l.p99),
            ms(l.p999),
            ms(l.max)
        );
        let _ = write!(
            out,
            "  errors      {} (error results {}, nacked {})  timeouts {}  duplicates {}",
            self.errors(),
            c.error_results,
            c.nacked,
            c.timeouts,
            c.duplicates
        );
        if c.late > 0 {
            let _ = write!(out, "  late results {}", c.late);
        }
        if c.unknown > 0 {
            let _ = write!(out, "  unknown results {}", c.unknown);
        }
        out.push('\n');
        out
    }
}

/// Milliseconds with three significant digits.
fn ms(value: f64) -> String {
    if value >= 100.0 {
        format!("{value:.0} ms")
    } else if value >= 10.0 {
        format!("{value:.1} ms")
    } else {
        format!("{value:.2} ms")
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    #[test]
    fn figures_in_text_and_json() {
        let t0 = Instant::now();
        let mut tracker = Tracker::new(Duration::from_secs(1));
        for i in 0..4 {
            tracker.sent(t0 + Duration::from_millis(i));
        }
        for i in 0..4 {
            tracker.result(i, i != 3, t0 + Duration::from_millis(2 * i + 1));
        }
        let report = Report::new(
            "pong.EchoMessage",
            Mode::Closed { concurrency: 4 },
            &tracker,
        );
        assert_eq!(report.results(), 4);
        assert_eq!(report.errors(), 1);
        assert!(!report.clean());
        assert_eq!(report.elapsed, Duration::from_millis(7));
        let json = report.to_json();
        assert_eq!(json["mode"], "closed");
        assert_eq!(json["concurrency"], 4);
        assert_eq!(json["rate"], serde_json::Value::Null);
        assert_eq!(json["ok"], 3);
        // Three significant digits.
        let close =
            |v: &serde_json::Value, ms: f64| (v.as_f64().unwrap() - ms).abs() <= ms / 1000.0;
        assert!(close(&json["latency_ms"]["max"], 4.0), "{json}");
        assert!(close(&json["latency_ms"]["p50"], 2.0), "{json}");
        let text = report.to_text();
        assert!(
            text.contains("571 commands/s (4 results in 0.007 s)"),
            "{text}"
        );
        assert!(text.contains("p50 2.00 ms"), "{text}");
        assert!(text.contains("errors      1 (error results 1"), "{text}");
    }
}

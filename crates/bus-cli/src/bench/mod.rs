//! `bus bench`: how fast is a service? Sends one command many times and
//! reports throughput, round-trip latency percentiles, errors, timeouts
//! and duplicates.
//!
//! Two modes:
//! - closed loop (`--concurrency W`): W commands in flight; a new one
//!   leaves as soon as a result (or a timeout) frees a slot;
//! - fixed rate (`--rate R`): commands leave on a schedule, whatever the
//!   service does, and latency is measured from each command's *scheduled*
//!   time, so a stall is charged to every command it delayed instead of
//!   being hidden by the sender waiting (coordinated omission).
//!
//! The generator drives amqprs itself rather than going through
//! `bus_service::Client`, so that its own cost and its timing stay small
//! and exact (see `docs/decisions.md`): `load.rs` talks to the broker,
//! `tracker.rs` keeps the books, `report.rs` prints them, `ticker.rs`
//! keeps the schedule.

mod load;
mod report;
mod ticker;
mod tracker;

use std::time::Duration;

use bus_core::Codec;

use crate::broker::{self, Brokers};
use crate::cli::BenchArgs;
use crate::exit::{self, CliError};
use crate::output::Output;
use crate::payload;
use crate::send::check_command;

pub(crate) use report::Report;

/// How commands are paced.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Mode {
    /// A fixed number of commands in flight.
    Closed {
        /// Commands in flight.
        concurrency: usize,
    },
    /// Commands sent on a schedule.
    Rate {
        /// Commands per second.
        per_second: f64,
    },
}

impl Mode {
    /// `closed` or `rate`, for JSON.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Mode::Closed { .. } => "closed",
            Mode::Rate { .. } => "rate",
        }
    }

    /// For the report's first line.
    pub(crate) fn describe(&self) -> String {
        match self {
            Mode::Closed { concurrency } => format!("closed loop, {concurrency} in flight"),
            Mode::Rate { per_second } => format!("fixed rate, {per_second} per second"),
        }
    }
}

/// What to send, how, and for how long.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    /// `SERVICE.COMMAND`.
    pub(crate) command: String,
    /// The codec of `body`.
    pub(crate) codec: Codec,
    /// The encoded payload, the same for every command.
    pub(crate) body: Vec<u8>,
    /// Closed loop or fixed rate.
    pub(crate) mode: Mode,
    /// Stop sending after this many commands.
    pub(crate) count: Option<u64>,
    /// Stop sending after this long.
    pub(crate) duration: Option<Duration>,
    /// How long a result may take before the command counts as timed out.
    pub(crate) timeout: Duration,
}

/// Commands sent when neither `--count` nor `--duration` is given.
pub(crate) const DEFAULT_COUNT: u64 = 1000;

/// Runs the benchmark and prints its report. Exit code 0 when every
/// command got a success result, 2 when some timed out (and nothing
/// else went wrong), 1 otherwise.
pub(crate) async fn run(
    args: BenchArgs,
    brokers: &Brokers,
    out: &mut Output,
) -> Result<u8, CliError> {
    let plan = plan(&args)?;
    let connection = brokers.connect("bench").await?;
    let result = load::run(&connection, &plan).await;
    broker::close(connection).await;
    let report = Report::new(&plan.command, plan.mode, &result?);
    if out.is_json() {
        out.record(&report.to_json())?;
    } else {
        out.text(&report.to_text())?;
    }
    Ok(if report.clean() {
        exit::OK
    } else if report.errors() == 0 && report.counts.duplicates == 0 {
        exit::TIMEOUT
    } else {
        exit::FAILURE
    })
}

/// Checks the arguments and reads the payload.
fn plan(args: &BenchArgs) -> Result<Plan, CliError> {
    check_command(&args.command)?;
    let mode = match args.rate {
        Some(r) if r.is_finite() && r > 0.0 => Mode::Rate { per_second: r },
        Some(r) => return Err(CliError::Usage(format!("--rate: invalid rate {r}"))),
        None if args.concurrency == 0 => {
            return Err(CliError::Usage("--concurrency: must be at least 1".into()));
        }
        None => Mode::Closed {
            concurrency: args.concurrency,
        },
    };
    let duration = args
        .duration
        .map(|d| seconds("--duration", d))
        .transpose()?;
    let count = match (args.count, duration) {
        (Some(0), _) => return Err(CliError::Usage("--count: must be at least 1".into())),
        (None, None) => Some(DEFAULT_COUNT),
        (count, _) => count,
    };
    let codec = Codec::from(args.codec);
    Ok(Plan {
        command: args.command.clone(),
        codec,
        body: payload::encode(&payload::read(&args.payload)?, codec)?,
        mode,
        count,
        duration,
        timeout: seconds("--timeout", args.timeout)?,
    })
}

/// A positive number of seconds.
fn seconds(option: &str, value: f64) -> Result<Duration, CliError> {
    Duration::try_from_secs_f64(value)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| CliError::Usage(format!("{option}: invalid number of seconds {value}")))
}

//! `cargo xtask bench`: our `pong` against a raw amqprs echo and against
//! eventail's Python pong, on the same workload, and the whole-process
//! time of `bus publish` and `bus send` against eventail's scripts.
//! Results go to `docs/performance.md`.
//!
//! The services run one at a time (they are all the logical service
//! `pong`), and in turn within each round, so that a change of load on the
//! machine touches them all alike; `pong.commands` is deleted after each.
//! Phase 1 measures throughput at W = 200 (with the service's CPU time)
//! and latency at W = 1; phase 2 measures latency at a fixed rate that
//! every candidate sustains: half the slowest one's median throughput.

mod doc;
mod load;
mod procfs;
mod python;
mod rabbit;
mod services;
mod whole;

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::time::Duration;

use clap::Args;

use crate::broker::{self, Target};
use crate::paths;
use load::Load;
use rabbit::Rabbit;
use services::{Candidate, QUEUE, Running};

/// Options of `cargo xtask bench`.
#[derive(Args)]
pub(crate) struct BenchArgs {
    /// Measured runs per figure; each figure is their median.
    #[arg(long, default_value_t = 5, value_name = "N")]
    runs: usize,
    /// Seconds of each throughput and fixed-rate run.
    #[arg(long, default_value_t = 3, value_name = "SECONDS")]
    seconds: u64,
    /// Leave eventail out even when Python is available.
    #[arg(long)]
    no_python: bool,
    /// The file whose generated section is replaced.
    #[arg(long, default_value = "docs/performance.md", value_name = "FILE")]
    output: PathBuf,
    /// Seconds to wait for a started broker to accept AMQP connections.
    #[arg(long, default_value_t = 90, value_name = "SECONDS")]
    timeout: u64,
}

/// Commands of the W = 1 runs.
const W1_COUNT: &str = "1500";
/// Warm-up commands after each start, not measured.
const WARMUP: [&str; 4] = ["--count", "1000", "--concurrency", "50"];

/// Everything measured for one candidate, one entry per run.
#[derive(Debug, Default, Clone)]
pub(crate) struct Samples {
    pub(crate) throughput: Vec<f64>,
    /// Service CPU seconds per 1000 commands.
    pub(crate) cpu: Vec<f64>,
    pub(crate) w1_p50: Vec<f64>,
    pub(crate) w1_p99: Vec<f64>,
    pub(crate) rate_p50: Vec<f64>,
    pub(crate) rate_p99: Vec<f64>,
    /// Idle resident memory, MB (10^6 bytes).
    pub(crate) rss_mb: Vec<f64>,
    /// Errors and timeouts over every run, warm-ups included.
    pub(crate) errors: u64,
    pub(crate) timeouts: u64,
}

/// The median; NaN for no samples.
pub(crate) fn median(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    }
}

pub(crate) fn run(target: &Target, args: &BenchArgs) -> Result<ExitCode, String> {
    broker::ensure(target, Duration::from_secs(args.timeout))?;
    let load_start = procfs::load_average();
    build()?;
    let release = paths::target_dir().join("release");
    let root = paths::workspace_root();
    let mut candidates = vec![
        Candidate::new(
            "ours",
            "ours (`pong`)",
            release.join("examples").join("pong"),
            vec![],
        ),
        Candidate::new("raw", "raw amqprs", release.join("raw-echo"), vec![]),
    ];
    let venv = if args.no_python {
        Err("--no-python".to_owned())
    } else {
        python::venv()
    };
    match &venv {
        Ok(venv) => candidates.push(Candidate::new(
            "eventail",
            "eventail 2.3.6",
            venv.python(),
            vec![OsString::from(root.join("bench").join("eventail_pong.py"))],
        )),
        Err(why) => eprintln!("==> bench: SKIPPING eventail's Python pong: {why}"),
    }
    let rabbit = Rabbit::connect(&target.url)?;
    let logs = paths::target_dir().join("bench");
    std::fs::create_dir_all(&logs).map_err(|e| format!("cannot create {}: {e}", logs.display()))?;
    let bench = Bench {
        url: &target.raw,
        rabbit: &rabbit,
        logs,
        load: Load {
            bus: release.join("bus"),
            url: target.raw.clone(),
        },
        seconds: args.seconds.to_string(),
    };
    let mut samples = vec![Samples::default(); candidates.len()];

    // Phase 1: throughput with CPU time, and latency at W = 1.
    bench.rounds(
        args.runs,
        "throughput and W=1",
        &candidates,
        &mut samples,
        |svc, s| bench.throughput_and_w1(svc, s),
    )?;

    // Phase 2: latency at a rate every candidate sustains.
    let slowest = samples
        .iter()
        .map(|s| median(&s.throughput))
        .fold(f64::INFINITY, f64::min);
    let rate = round_rate(slowest / 2.0);
    let what = format!("{rate} commands/s");
    bench.rounds(args.runs, &what, &candidates, &mut samples, |_, s| {
        bench.at_rate(rate, s)
    })?;

    // Whole-process timing, with our pong answering `bus send`.
    eprintln!("==> bench: whole-process timing of bus publish/send and eventail's scripts");
    let timing = bench.with_service(&candidates[0], "ours-timing", |_| {
        whole::measure(&bench.load, venv.as_ref().ok(), &bench.logs)
    })?;

    let (model, cores) = procfs::machine();
    let report = doc::Report {
        date: today(),
        model,
        cores,
        broker: format!(
            "RabbitMQ {} at {}, virtual host `{}`",
            rabbit.version,
            target.url.address(),
            target.url.vhost
        ),
        runs: args.runs,
        seconds: args.seconds,
        rate,
        load: (load_start, procfs::load_average()),
        python_skipped: venv.as_ref().err().cloned(),
        labels: candidates.iter().map(|c| c.label).collect(),
        samples,
        timing,
    };
    rabbit.close();
    let text = report.markdown();
    println!("{text}");
    let output = root.join(&args.output);
    doc::write_section(&output, &text)?;
    eprintln!("==> bench: results written to {}", output.display());
    Ok(ExitCode::SUCCESS)
}

/// What every measurement needs.
struct Bench<'a> {
    /// The broker URL for the services, password included (never printed).
    url: &'a str,
    rabbit: &'a Rabbit,
    /// Where the services' output goes.
    logs: PathBuf,
    load: Load,
    /// `--seconds`, as an argument of `bus bench`.
    seconds: String,
}

impl Bench<'_> {
    /// Starts `c`, runs `measure` on it, stops it and deletes its queue.
    fn with_service<T>(
        &self,
        c: &Candidate,
        log: &str,
        measure: impl FnOnce(&Running) -> Result<T, String>,
    ) -> Result<T, String> {
        let svc = c.start(self.url, self.rabbit, &self.logs.join(format!("{log}.log")))?;
        let result = measure(&svc);
        svc.stop();
        self.rabbit.delete_unused(QUEUE)?;
        result
    }

    /// `runs` rounds, each measuring every candidate in turn.
    fn rounds(
        &self,
        runs: usize,
        what: &str,
        candidates: &[Candidate],
        samples: &mut [Samples],
        mut measure: impl FnMut(&Running, &mut Samples) -> Result<(), String>,
    ) -> Result<(), String> {
        for round in 1..=runs {
            for (c, s) in candidates.iter().zip(samples.iter_mut()) {
                eprintln!(
                    "==> bench: round {round}/{runs}, {}: {what} (load {:.2})",
                    c.label,
                    procfs::load_average()
                );
                self.with_service(c, c.key, |svc| measure(svc, s))?;
            }
        }
        Ok(())
    }

    /// Idle RSS, throughput at W = 200 with the service's CPU time, and
    /// latency at W = 1.
    fn throughput_and_w1(&self, svc: &Running, s: &mut Samples) -> Result<(), String> {
        std::thread::sleep(Duration::from_secs(1));
        s.rss_mb
            .push(procfs::rss_kb(svc.pid)? as f64 * 1024.0 / 1e6);
        count(s, self.load.run(&WARMUP)?);
        let before = procfs::cpu_ticks(svc.pid)?;
        let t = count(
            s,
            self.load
                .run(&["--concurrency", "200", "--duration", &self.seconds])?,
        );
        let ticks = procfs::cpu_ticks(svc.pid)? - before;
        let cpu =
            ticks as f64 / procfs::ticks_per_second() as f64 / t.results.max(1) as f64 * 1000.0;
        s.throughput.push(t.throughput);
        s.cpu.push(cpu);
        let w1 = count(
            s,
            self.load
                .run(&["--concurrency", "1", "--count", W1_COUNT])?,
        );
        s.w1_p50.push(w1.p50);
        s.w1_p99.push(w1.p99);
        eprintln!(
            "    {:.0} commands/s, {cpu:.3} s CPU per 1000, W=1 p50 {:.3} ms",
            t.throughput, w1.p50
        );
        Ok(())
    }

    /// Latency at a fixed rate.
    fn at_rate(&self, rate: u64, s: &mut Samples) -> Result<(), String> {
        count(s, self.load.run(&WARMUP)?);
        let r = count(
            s,
            self.load
                .run(&["--rate", &rate.to_string(), "--duration", &self.seconds])?,
        );
        s.rate_p50.push(r.p50);
        s.rate_p99.push(r.p99);
        Ok(())
    }
}

/// Adds a run's errors and timeouts to the candidate's tally.
fn count(s: &mut Samples, outcome: load::Outcome) -> load::Outcome {
    s.errors += outcome.errors;
    s.timeouts += outcome.timeouts;
    outcome
}

/// Two significant digits, rounded down: a rate that reads as chosen.
fn round_rate(rate: f64) -> u64 {
    if !rate.is_finite() || rate < 1.0 {
        return 1;
    }
    let digits = rate.log10().floor() as i32;
    let unit = 10f64.powi((digits - 1).max(0));
    ((rate / unit).floor() * unit) as u64
}

/// Builds, in release, the `bus` command, our `pong` and the raw echo.
fn build() -> Result<(), String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    for args in [
        &["build", "--release", "-p", "bus-cli", "-p", "raw-echo"][..],
        &[
            "build",
            "--release",
            "-p",
            "bus-service",
            "--example",
            "pong",
        ][..],
    ] {
        eprintln!("==> bench: cargo {}", args.join(" "));
        let status = Command::new(&cargo)
            .args(args)
            .current_dir(paths::workspace_root())
            .status()
            .map_err(|e| format!("cannot run cargo: {e}"))?;
        if !status.success() {
            return Err(format!("cargo {} failed ({status})", args.join(" ")));
        }
    }
    Ok(())
}

/// Today's date and time, UTC.
fn today() -> String {
    Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown date".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn rates_read_as_chosen() {
        assert_eq!(round_rate(2345.6), 2300);
        assert_eq!(round_rate(987.0), 980);
        assert_eq!(round_rate(42.9), 42);
        assert_eq!(round_rate(7.5), 7);
        assert_eq!(round_rate(f64::INFINITY), 1);
    }
}

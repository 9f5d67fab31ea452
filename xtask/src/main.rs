//! Project automation, run as `cargo xtask <command>`.
//!
//! - `cargo xtask broker up|down|status` finds, starts, stops or describes
//!   the RabbitMQ broker the tests use (see [`broker`]).
//! - `cargo xtask demo` gets that broker and shows `pong` and `ping` at
//!   work with `bus logger` and `bus send` (see [`demo`]).
//! - `cargo xtask test` gets that broker, then runs every test of the
//!   workspace, the interoperability suite last (see [`mod@test`]).
//! - `cargo xtask interop` runs the interoperability suite with eventail
//!   2.3.6 alone (see [`interop`]).
//! - `cargo xtask bench` measures our `pong` against a raw amqprs echo and
//!   eventail, and writes `docs/performance.md` (see [`mod@bench`]).
//!
//! Every failure ends with one line on stderr and a non-zero exit code.

mod bench;
mod broker;
mod demo;
mod interop;
mod launch;
mod paths;
mod probe;
mod pyenv;
mod state;
mod test;

use std::process::ExitCode;
use std::time::Duration;

use bus_core::BrokerUrl;
use clap::{Args, Parser, Subcommand};

/// The broker URL when neither `--url` nor `$AMQP_URL` is given. Matches
/// the default of the test support crate.
const DEFAULT_AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

#[derive(Parser)]
#[command(
    name = "xtask",
    bin_name = "cargo xtask",
    about = "Project automation for bus."
)]
struct Cli {
    /// The broker URL; by default the local broker at 127.0.0.1:5672 with
    /// the guest account. Its password is never printed.
    #[arg(long, global = true, env = "AMQP_URL", hide_env_values = true,
          default_value = DEFAULT_AMQP_URL, hide_default_value = true)]
    url: String,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Find, start, stop or describe the test broker.
    Broker {
        #[command(subcommand)]
        action: BrokerAction,
    },
    /// Get a broker (as `broker up`), build and run the `pong` and `ping`
    /// examples with `bus logger` showing their logs, send one command with
    /// `bus send`, then stop everything.
    Demo(DemoArgs),
    /// Get a broker (as `broker up`), then run all unit, integration and doc
    /// tests, then the interoperability suite (skipped without python3).
    Test(WaitArgs),
    /// Get a broker, set up the Python venv with eventail 2.3.6
    /// (target/pyref), build `bus` and the examples, and run the
    /// interoperability suite: one PASS/FAIL line per scenario.
    Interop(InteropArgs),
    /// Benchmark our pong against a raw amqprs echo and eventail's pong
    /// (release builds), and write the results to docs/performance.md.
    Bench(bench::BenchArgs),
}

#[derive(Args)]
struct InteropArgs {
    #[command(flatten)]
    wait: WaitArgs,
    /// Run only the scenarios whose name contains one of these words.
    #[arg(value_name = "FILTER")]
    filters: Vec<String>,
}

#[derive(Args)]
struct DemoArgs {
    #[command(flatten)]
    wait: WaitArgs,
    /// Seconds to watch the services before sending the command.
    #[arg(long, default_value_t = 10, value_name = "SECONDS")]
    watch: u64,
}

#[derive(Subcommand)]
enum BrokerAction {
    /// Use the broker at the URL if it answers AMQP; otherwise start one
    /// (Docker, then a local rabbitmq-server) and wait until it answers.
    Up(WaitArgs),
    /// Stop the broker, only if `broker up` started it.
    Down,
    /// Tell whether the broker answers, its version, and who started it.
    /// Exits with 1 when it does not answer.
    Status,
}

#[derive(Args)]
struct WaitArgs {
    /// Seconds to wait for a started broker to accept AMQP connections.
    #[arg(long, default_value_t = 90, value_name = "SECONDS")]
    timeout: u64,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode, String> {
    let url: BrokerUrl = cli
        .url
        .parse()
        .map_err(|e| format!("invalid broker URL: {e}"))?;
    let target = broker::Target { raw: cli.url, url };
    match cli.command {
        Command::Broker { action } => match action {
            BrokerAction::Up(args) => {
                broker::up(&target, Duration::from_secs(args.timeout))?;
                Ok(ExitCode::SUCCESS)
            }
            BrokerAction::Down => {
                broker::down(&target)?;
                Ok(ExitCode::SUCCESS)
            }
            BrokerAction::Status => broker::status(&target),
        },
        Command::Demo(args) => demo::run(
            &target,
            Duration::from_secs(args.wait.timeout),
            Duration::from_secs(args.watch),
        ),
        Command::Test(args) => test::run(&target, Duration::from_secs(args.timeout)),
        Command::Interop(args) => interop::run(
            &target,
            Duration::from_secs(args.wait.timeout),
            &args.filters,
        ),
        Command::Bench(args) => bench::run(&target, &args),
    }
}

//! The `bus` command: eventail's debugging tools in one binary — live logs
//! and traffic, publishing events and configurations, sending commands,
//! inspecting queues and replaying dead letters.
//!
//! `main` parses the command line, runs the subcommand on a
//! single-threaded tokio runtime and turns its outcome into one line on
//! standard error and an exit code (see `exit.rs` and `docs/cli.md`).

mod bench;
mod broker;
mod cli;
mod clock;
mod confirm;
mod exit;
mod filter;
mod inspect;
mod logger;
mod monitor;
mod output;
mod payload;
mod publish;
mod queue;
mod resurrect;
mod save;
mod send;
mod view;
mod watch;

use std::process::ExitCode;

use clap::{CommandFactory, Parser};

use crate::broker::Brokers;
use crate::cli::{Cli, ColorWhen, Command};
use crate::exit::CliError;
use crate::output::{BAD, Output, paint};

fn main() -> ExitCode {
    // A bug must still end with one line and a documented code, not a
    // backtrace: print the panic briefly; `catch_unwind` below maps it to 70.
    std::panic::set_hook(Box::new(|info| {
        eprintln!("bus: internal error: {info}");
    }));
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) if !error.use_stderr() => {
            // --help, --version.
            let _ = error.print();
            return ExitCode::from(exit::OK);
        }
        Err(error) => {
            report(&CliError::Usage(format!(
                "{}; see --help",
                usage_line(&error)
            )));
            // clap's own code for usage errors is 2, which is `send`'s
            // timeout here: usage errors are 64, as in sysexits.h.
            return ExitCode::from(exit::USAGE);
        }
    };
    match cli.global.color {
        ColorWhen::Always => anstream::ColorChoice::Always.write_global(),
        ColorWhen::Never => anstream::ColorChoice::Never.write_global(),
        ColorWhen::Auto => {}
    }
    init_tracing(cli.global.verbose);
    let outcome = std::panic::catch_unwind(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| CliError::Internal(format!("cannot start the runtime: {e}")))
            .and_then(|runtime| runtime.block_on(run(cli)))
    });
    let code = match outcome {
        Ok(Ok(code)) => code,
        Ok(Err(error)) if error.is_broken_pipe() => exit::OK,
        Ok(Err(error)) => {
            report(&error);
            error.code()
        }
        Err(_) => exit::SOFTWARE,
    };
    ExitCode::from(code)
}

/// Prints the one line every failure ends with.
fn report(error: &CliError) {
    let mut err = anstream::stderr();
    let _ = std::io::Write::write_fmt(
        &mut err,
        format_args!("bus: {} {error}\n", paint(BAD, "error:")),
    );
}

/// clap's message on one line: its first paragraph, without the `error:`
/// prefix (the usage and tips that follow are in `--help`).
fn usage_line(error: &clap::Error) -> String {
    let rendered = error.render().to_string();
    let first: Vec<&str> = rendered
        .lines()
        .map(str::trim)
        .take_while(|line| !line.is_empty())
        .collect();
    let line = first.join(" ");
    line.strip_prefix("error: ").unwrap_or(&line).to_owned()
}

/// `-v` shows bus's own diagnostics, `-vv` everyone's, `-vvv` traces;
/// `RUST_LOG` overrides. Diagnostics go to standard error.
fn init_tracing(verbose: u8) {
    let from_env = std::env::var("RUST_LOG").ok();
    let filter = match (from_env, verbose) {
        (Some(filter), _) => filter,
        (None, 0) => return,
        (None, 1) => "warn,bus=debug,bus_cli=debug,bus_service=debug".to_owned(),
        (None, 2) => "debug".to_owned(),
        (None, _) => "trace".to_owned(),
    };
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .try_init();
}

async fn run(cli: Cli) -> Result<u8, CliError> {
    let mut out = Output::new(cli.global.json);
    if let Command::Completions(args) = &cli.command {
        // Into memory first: clap_complete panics on a failed write.
        let mut script = Vec::new();
        clap_complete::generate(args.shell, &mut Cli::command(), "bus", &mut script);
        out.text(&String::from_utf8_lossy(&script))?;
        return Ok(exit::OK);
    }
    let brokers = Brokers::new(&cli.global.urls)?;
    match cli.command {
        Command::Logger(args) => logger::run(args, &brokers, &mut out).await,
        Command::Monitor(args) => monitor::run(args, &brokers, &mut out).await,
        Command::Publish(args) => publish::publish(args, &brokers, &mut out).await,
        Command::Send(args) => send::run(args, &brokers, &mut out).await,
        Command::Config(args) => publish::config(args, &brokers, &mut out).await,
        Command::Inspect(args) => inspect::run(args, &brokers, &mut out).await,
        Command::Resurrect(args) => resurrect::run(args, &brokers, &mut out).await,
        Command::Bench(args) => bench::run(args, &brokers, &mut out).await,
        Command::Completions(_) => Ok(exit::OK),
    }
}

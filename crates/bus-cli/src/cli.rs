//! The command line: every subcommand, its arguments and its help.

use std::path::PathBuf;

use bus_core::{Codec, LogLevel};
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::filter::FieldFilter;

const ABOUT: &str = "Watch, publish, send, inspect and replay messages on an eventail bus.";

const AFTER_HELP: &str = "\
Examples:
  bus logger --level WARNING            live logs, warnings and worse
  bus monitor --events 'billing.#'      live billing events
  bus publish billing.InvoicePaid invoice.json
  bus send pong.EchoMessage --data '{\"message\": \"hi\"}'
  bus inspect dead-letters --count 5
  bus resurrect dead-letters --filter 'pong.#' --dry-run
  bus --json monitor | jq .payload

Every subcommand has its own --help with examples.
";

/// The `bus` command.
#[derive(Debug, Parser)]
#[command(
    name = "bus",
    version,
    about = ABOUT,
    after_help = AFTER_HELP,
    after_long_help = format!("{AFTER_HELP}\n{}\n", crate::exit::TABLE),
    propagate_version = true,
)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) global: Global,
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// Options every subcommand takes.
#[derive(Debug, Args)]
#[command(next_help_heading = "Global options")]
pub(crate) struct Global {
    /// Broker URL; repeat for several brokers, tried in turn.
    /// [default: the local broker, amqp://localhost:5672/%2f as guest]
    #[arg(
        long = "url",
        value_name = "URL",
        env = "AMQP_URL",
        hide_env_values = true,
        global = true
    )]
    pub(crate) urls: Vec<String>,

    /// Write one JSON object per line (NDJSON), for jq.
    #[arg(long, global = true)]
    pub(crate) json: bool,

    /// Colour: auto (on a terminal, unless NO_COLOR is set), always or never.
    #[arg(long, value_enum, value_name = "WHEN", default_value_t = ColorWhen::Auto, global = true)]
    pub(crate) color: ColorWhen,

    /// Diagnostics on standard error: -v for bus, -vv for everything, -vvv to trace.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub(crate) verbose: u8,
}

/// When to colour the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ColorWhen {
    /// On a terminal, unless `NO_COLOR` is set.
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

/// The payload codec on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum CodecArg {
    /// application/cbor (eventail's default).
    Cbor,
    /// application/json.
    Json,
}

impl From<CodecArg> for Codec {
    fn from(c: CodecArg) -> Codec {
        match c {
            CodecArg::Cbor => Codec::Cbor,
            CodecArg::Json => Codec::Json,
        }
    }
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Live logs from the `logs` exchange.
    #[command(after_help = LOGGER_HELP)]
    Logger(LoggerArgs),
    /// Live traffic: events, commands, results and configurations.
    #[command(after_help = MONITOR_HELP)]
    Monitor(MonitorArgs),
    /// Publish an event, persistent, and wait for the broker's confirm.
    #[command(after_help = PUBLISH_HELP)]
    Publish(PublishArgs),
    /// Send a command and wait for its result.
    #[command(after_help = SEND_HELP)]
    Send(SendArgs),
    /// Publish a configuration message.
    #[command(after_help = CONFIG_HELP)]
    Config(ConfigArgs),
    /// Show the messages in a queue without removing them.
    #[command(after_help = INSPECT_HELP)]
    Inspect(InspectArgs),
    /// Move dead letters back to the exchange they first died from.
    #[command(after_help = RESURRECT_HELP)]
    Resurrect(ResurrectArgs),
    /// Measure a service: throughput and round-trip latency of one command.
    #[command(after_help = BENCH_HELP)]
    Bench(BenchArgs),
    /// Print shell completions, e.g. `bus completions bash > /etc/bash_completion.d/bus`.
    Completions(CompletionsArgs),
}

/// `--count` and `--timeout` for the live views.
#[derive(Debug, Args)]
pub(crate) struct Limits {
    /// Exit after showing N messages.
    #[arg(long, value_name = "N")]
    pub(crate) count: Option<u64>,
    /// Exit after SECS seconds (exit code 2 if --count was not reached).
    #[arg(long, value_name = "SECS")]
    pub(crate) timeout: Option<f64>,
}

const LOGGER_HELP: &str = "\
Each record shows its time (UTC), level, service@host, short message and
conversation id; the full message follows, indented. The logger uses an
exclusive, auto-deleted queue of its own and reconnects after a connection
loss.

Examples:
  bus logger                                 everything
  bus logger --filter 'billing.*' 'pong.*'   two services
  bus logger --level ERROR                   ERROR, CRITICAL, ALERT, EMERGENCY
  bus --json logger | jq -r .payload.short_message";

/// `bus logger`.
#[derive(Debug, Args)]
pub(crate) struct LoggerArgs {
    /// Routing-key patterns on `logs` (`<service>.<LEVEL>`).
    #[arg(long, value_name = "PATTERN", num_args = 1.., default_value = "#")]
    pub(crate) filter: Vec<String>,
    /// Show this level and worse: EMERGENCY, ALERT, CRITICAL, ERROR, WARNING,
    /// NOTICE, INFO, DEBUG (or 0-7).
    #[arg(long, value_name = "LEVEL", value_parser = parse_level)]
    pub(crate) level: Option<LogLevel>,
    #[command(flatten)]
    pub(crate) limits: Limits,
}

fn parse_level(s: &str) -> Result<LogLevel, String> {
    s.parse()
        .map_err(|e: bus_core::UnknownLogLevel| e.to_string())
}

const MONITOR_HELP: &str = "\
With no --events, --commands or --configurations, everything is shown. An
option given without patterns means `#`. Results travel on `commands`, so
--commands also shows results. The monitor uses an exclusive, auto-deleted
queue of its own (it never takes messages from a service), acknowledges
nothing, publishes nothing, and reconnects after a connection loss.
Messages that break the protocol are shown as `invalid`, with the reason.

Examples:
  bus monitor                                      all traffic
  bus monitor --events 'billing.#' --commands      billing events, all commands
  bus monitor --filter-fields client_id=123        payloads with client_id 123
  bus monitor --events --save                      save each event payload as CBOR
  bus --json monitor --count 1 --timeout 10        one message as JSON, for scripts";

/// `bus monitor`.
#[derive(Debug, Args)]
pub(crate) struct MonitorArgs {
    /// Event patterns (`#` if given without any).
    #[arg(long, value_name = "PATTERN", num_args = 0..)]
    pub(crate) events: Option<Vec<String>>,
    /// Command (and result) patterns (`#` if given without any).
    #[arg(long, value_name = "PATTERN", num_args = 0..)]
    pub(crate) commands: Option<Vec<String>>,
    /// Configuration patterns (`#` if given without any).
    #[arg(long, value_name = "PATTERN", num_args = 0..)]
    pub(crate) configurations: Option<Vec<String>>,
    /// Save each payload as `<key>.<conversation_id>.cbor` (`.json` with
    /// --json) in the current directory, never overwriting a file.
    #[arg(long)]
    pub(crate) save: bool,
    /// Keep only payloads whose top-level fields have these values
    /// (`field=value`; the value is read as JSON if it can be, else as text).
    #[arg(long, value_name = "FIELD=VALUE", num_args = 1.., value_parser = FieldFilter::parse)]
    pub(crate) filter_fields: Vec<FieldFilter>,
    #[command(flatten)]
    pub(crate) limits: Limits,
}

/// Where a payload comes from.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub(crate) struct PayloadArgs {
    /// A `.json` or `.cbor` file (chosen by extension), or `-` for standard input.
    #[arg(value_name = "PAYLOAD")]
    pub(crate) file: Option<PathBuf>,
    /// The payload as inline JSON.
    #[arg(long, value_name = "JSON")]
    pub(crate) data: Option<String>,
}

const PUBLISH_HELP: &str = "\
The event is persistent and published with publisher confirms: bus reports
the broker's confirm, and exits with 75 if the broker refuses (nacks) it.

Examples:
  bus publish billing.InvoicePaid invoice.json
  bus publish billing.InvoicePaid --data '{\"id\": 7}' --conversation-id c-42
  cat invoice.cbor | bus publish billing.InvoicePaid -
  bus publish billing.InvoicePaid invoice.json --mandatory   exit 3 if nobody listens";

/// `bus publish`.
#[derive(Debug, Args)]
pub(crate) struct PublishArgs {
    /// The event name (routing key), e.g. `billing.InvoicePaid`.
    pub(crate) event: String,
    #[command(flatten)]
    pub(crate) payload: PayloadArgs,
    /// The conversation id [default: a fresh one, printed].
    #[arg(long, value_name = "ID")]
    pub(crate) conversation_id: Option<String>,
    /// Ask the broker to return the event if no queue is bound for it (exit 3).
    #[arg(long)]
    pub(crate) mandatory: bool,
    /// The codec to publish with.
    #[arg(long, value_enum, default_value_t = CodecArg::Cbor)]
    pub(crate) codec: CodecArg,
}

const SEND_HELP: &str = "\
The command goes out mandatory, with a reply_to bound to an exclusive queue
of bus's own; the result shows its status, ids, meta and payload.
Exit codes: 0 on a success result, 1 on an error result, 2 when no result
comes within --timeout, 3 when no service listens to the command.

Examples:
  bus send pong.EchoMessage --data '{\"message\": \"hi\"}'
  bus send pong.EchoMessage message.json --timeout 5
  bus --json send pong.EchoMessage message.cbor | jq .payload";

/// `bus send`.
#[derive(Debug, Args)]
pub(crate) struct SendArgs {
    /// The command, `SERVICE.COMMAND`, e.g. `pong.EchoMessage`.
    #[arg(value_name = "SERVICE.COMMAND")]
    pub(crate) command: String,
    #[command(flatten)]
    pub(crate) payload: PayloadArgs,
    /// Seconds to wait for the result.
    #[arg(long, value_name = "SECS", default_value_t = 30.0)]
    pub(crate) timeout: f64,
    /// The conversation id [default: a fresh one].
    #[arg(long, value_name = "ID")]
    pub(crate) conversation_id: Option<String>,
    /// The codec to send with.
    #[arg(long, value_enum, default_value_t = CodecArg::Cbor)]
    pub(crate) codec: CodecArg,
}

const CONFIG_HELP: &str = "\
Configurations go to every instance subscribed to NAME, each on its own
exclusive queue (eventail's publish_configuration.py).

Examples:
  bus config pong.Settings settings.json
  bus config pong.Settings --data '{\"timeout\": 30}'";

/// `bus config`.
#[derive(Debug, Args)]
pub(crate) struct ConfigArgs {
    /// The configuration name (routing key).
    pub(crate) name: String,
    #[command(flatten)]
    pub(crate) payload: PayloadArgs,
    /// The codec to publish with.
    #[arg(long, value_enum, default_value_t = CodecArg::Cbor)]
    pub(crate) codec: CodecArg,
}

const INSPECT_HELP: &str = "\
Messages are fetched with basic.get and put back (nack with requeue) in
their place once shown.

WARNING: RabbitMQ marks every inspected message as redelivered. Under the
retry-once policy of eventail and bus, a redelivered message that fails is
dead-lettered at once: inspecting a service's queue costs its messages their
retry. Inspect dead-letter queues freely.

Examples:
  bus inspect dead-letters                 every message
  bus inspect dead-letters --count 3 --save
  bus --json inspect dead-letters | jq '.headers[\"x-death\"]'";

/// `bus inspect`.
#[derive(Debug, Args)]
pub(crate) struct InspectArgs {
    /// The queue.
    pub(crate) queue: String,
    /// Show at most N messages [default: all].
    #[arg(long, value_name = "N")]
    pub(crate) count: Option<u64>,
    /// Save each payload in its original format as
    /// `<key>.<conversation_id>.<cbor|json>`, never overwriting a file.
    #[arg(long)]
    pub(crate) save: bool,
}

const RESURRECT_HELP: &str = "\
Each dead letter is republished, persistent and mandatory, to its
x-first-death-exchange with its routing key, properties and headers, on a
publisher-confirm channel. It is acked in the dead-letter queue only once the
broker confirms the copy; a copy that is nacked or returned (unroutable)
leaves the original where it was. Messages not selected are left in place.
Only the messages present at the start are looked at, so letters that die
again are not replayed twice.

Examples:
  bus resurrect dead-letters --dry-run               what would move
  bus resurrect dead-letters --filter 'pong.#' billing.InvoicePaid
  bus resurrect dead-letters --count 100 --batch-size 50";

/// `bus resurrect`.
#[derive(Debug, Args)]
pub(crate) struct ResurrectArgs {
    /// The dead-letter queue.
    pub(crate) queue: String,
    /// Look at the first N messages only [default: all].
    #[arg(long, value_name = "N")]
    pub(crate) count: Option<u64>,
    /// Messages republished before waiting for the broker's confirms.
    #[arg(long, value_name = "B", default_value_t = 10)]
    pub(crate) batch_size: u16,
    /// Routing keys (or topic patterns) to move [default: all].
    #[arg(long, value_name = "KEY", num_args = 1..)]
    pub(crate) filter: Vec<String>,
    /// Show what would move; move nothing.
    #[arg(long)]
    pub(crate) dry_run: bool,
}

const BENCH_HELP: &str = "\
Sends the command again and again, each with a unique correlation id and a
reply_to bound to an exclusive queue of bus's own, and reports throughput,
round-trip latency (p50, p90, p99, p99.9, max), errors, timeouts and
duplicate results. Every command is persistent and mandatory, as `bus send`
sends it; the run stops at once (exit 3) if no service listens.

Closed loop (the default): W commands in flight; each result or timeout
lets the next one go. Fixed rate (--rate): commands leave on a schedule
whatever the service does, and latency is measured from each command's
scheduled time, so a stall counts against every command it delayed.
Without --count or --duration, 1000 commands are sent.
Exit codes: 0 when every command got a success result, 2 when some timed
out, 1 on error results, nacks or duplicates, 3 when no service listens.

Examples:
  bus bench pong.EchoMessage --data '{\"message\": \"hi\"}'
  bus bench pong.EchoMessage message.json --concurrency 200 --duration 10
  bus bench pong.EchoMessage message.json --rate 500 --duration 30
  bus --json bench pong.EchoMessage message.json --count 10000 | jq .throughput";

/// `bus bench`.
#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    /// The command, `SERVICE.COMMAND`, e.g. `pong.EchoMessage`.
    #[arg(value_name = "SERVICE.COMMAND")]
    pub(crate) command: String,
    #[command(flatten)]
    pub(crate) payload: PayloadArgs,
    /// Send N commands [default: 1000 unless --duration is given].
    #[arg(long, value_name = "N")]
    pub(crate) count: Option<u64>,
    /// Stop sending after SECS seconds (and after --count, if also given).
    #[arg(long, value_name = "SECS")]
    pub(crate) duration: Option<f64>,
    /// Commands in flight, in closed-loop mode.
    #[arg(long, value_name = "W", default_value_t = 10, conflicts_with = "rate")]
    pub(crate) concurrency: usize,
    /// Fixed-rate mode: R commands per second, on a schedule.
    #[arg(long, value_name = "R")]
    pub(crate) rate: Option<f64>,
    /// Seconds to wait for each result before counting a timeout.
    #[arg(long, value_name = "SECS", default_value_t = 30.0)]
    pub(crate) timeout: f64,
    /// The codec to send with.
    #[arg(long, value_enum, default_value_t = CodecArg::Cbor)]
    pub(crate) codec: CodecArg,
}

/// `bus completions`.
#[derive(Debug, Args)]
pub(crate) struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    pub(crate) shell: clap_complete::Shell,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }
}

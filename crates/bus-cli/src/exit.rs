//! Exit codes, and the errors that lead to them.
//!
//! The codes above 63 are the BSD `sysexits.h` ones, so scripts can tell a
//! typo from a broker that is down. The table is repeated in `bus --help`
//! and in `docs/cli.md`; keep the three in step.

use std::path::PathBuf;

use bus_core::{DecodeError, EncodeError, PayloadFileError, RoutingKeyError, UrlError};
use bus_service::ConnectError;

/// Success.
pub(crate) const OK: u8 = 0;
/// `send` got an `error` result; `resurrect` could not move every message;
/// `bench` saw error results, nacks or duplicates.
pub(crate) const FAILURE: u8 = 1;
/// `send` got no result in time; `logger`/`monitor` with `--count` and
/// `--timeout` saw fewer messages than asked; `bench` had timeouts.
pub(crate) const TIMEOUT: u8 = 2;
/// No queue is bound for the message (`send`, `publish --mandatory`).
pub(crate) const UNROUTABLE: u8 = 3;
/// The command line is wrong (EX_USAGE).
pub(crate) const USAGE: u8 = 64;
/// A payload cannot be read as JSON/CBOR, or encoded (EX_DATAERR).
pub(crate) const DATA: u8 = 65;
/// A payload file or a queue does not exist (EX_NOINPUT).
pub(crate) const NO_INPUT: u8 = 66;
/// No broker could be reached (EX_UNAVAILABLE).
pub(crate) const UNAVAILABLE: u8 = 69;
/// A bug in bus (EX_SOFTWARE).
pub(crate) const SOFTWARE: u8 = 70;
/// A file cannot be written by `--save` (EX_CANTCREAT).
pub(crate) const CANT_CREATE: u8 = 73;
/// Writing the output failed (EX_IOERR).
pub(crate) const IO: u8 = 74;
/// The broker refused (nacked) a message; try again later (EX_TEMPFAIL).
pub(crate) const NACKED: u8 = 75;
/// The broker refused the credentials, the vhost or an operation (EX_NOPERM).
pub(crate) const NO_PERM: u8 = 77;

/// The table shown at the end of `bus --help`.
pub(crate) const TABLE: &str = "\
Exit codes:
   0  success
   1  send: the service answered with an error; resurrect: some messages failed;
      bench: error results, nacks or duplicates
   2  timeout: send got no result; logger/monitor --count not reached by --timeout;
      bench: some commands got no result in time
   3  unroutable: no queue is bound for the command (or the --mandatory event)
  64  usage: bad arguments, broker URL, routing key or pattern
  65  bad payload: not valid JSON/CBOR, unknown file extension, not encodable
  66  not found: the payload file or the queue does not exist
  69  broker unavailable: connection refused, unknown host, not AMQP, lost
  70  internal error (a bug: please report it)
  73  cannot create a --save file
  74  cannot write the output
  75  the broker refused (nacked) the message: try again later
  77  access refused: user, password, vhost or permissions";

/// Why a command failed: one line for the user, and an exit code.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CliError {
    /// Arguments that parse but make no sense.
    #[error("{0}")]
    Usage(String),
    /// A `--url` (or `AMQP_URL`) that does not parse. Never shows the password.
    #[error("invalid broker URL #{index}: {source}")]
    Url {
        /// 1-based position among the URLs.
        index: usize,
        /// Why.
        source: UrlError,
    },
    /// A routing key or pattern that the broker would refuse.
    #[error("invalid {what} {key:?}: {source}")]
    RoutingKey {
        /// "event name", "pattern"...
        what: &'static str,
        /// The key.
        key: String,
        /// Why.
        source: RoutingKeyError,
    },
    /// A payload file that cannot be used.
    #[error(transparent)]
    PayloadFile(#[from] PayloadFileError),
    /// `--data` that is not JSON.
    #[error("--data: {0}")]
    InlineData(DecodeError),
    /// A payload that the chosen codec cannot write (e.g. bytes as JSON).
    #[error("cannot encode the payload: {0}")]
    Encode(#[from] EncodeError),
    /// No broker, or not the right one.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// The broker failed an operation, or the connection was lost.
    #[error("{0}")]
    Broker(String),
    /// The broker refused an operation for lack of permissions.
    #[error("access refused: {0}")]
    AccessRefused(String),
    /// The queue to inspect or resurrect does not exist.
    #[error("no queue named {0:?}")]
    QueueNotFound(String),
    /// Nothing came back in time.
    #[error("{0}")]
    Timeout(String),
    /// No queue was bound for the message.
    #[error("{0}")]
    Unroutable(String),
    /// The broker nacked the message.
    #[error("the broker refused {0} (nack): try again later")]
    Nacked(String),
    /// A `--save` file cannot be written.
    #[error("cannot write {path}: {source}")]
    Save {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Standard output failed.
    #[error("cannot write the output: {0}")]
    Output(#[from] std::io::Error),
    /// A bug.
    #[error("internal error: {0}")]
    Internal(String),
}

impl CliError {
    /// The exit code for this error.
    pub(crate) fn code(&self) -> u8 {
        match self {
            CliError::Usage(_) | CliError::Url { .. } | CliError::RoutingKey { .. } => USAGE,
            CliError::PayloadFile(PayloadFileError::Unreadable { .. }) => NO_INPUT,
            CliError::PayloadFile(_) | CliError::InlineData(_) | CliError::Encode(_) => DATA,
            CliError::Connect(ConnectError::AccessRefused { .. }) | CliError::AccessRefused(_) => {
                NO_PERM
            }
            CliError::Connect(_) | CliError::Broker(_) => UNAVAILABLE,
            CliError::QueueNotFound(_) => NO_INPUT,
            CliError::Timeout(_) => TIMEOUT,
            CliError::Unroutable(_) => UNROUTABLE,
            CliError::Nacked(_) => NACKED,
            CliError::Save { .. } => CANT_CREATE,
            CliError::Output(_) => IO,
            CliError::Internal(_) => SOFTWARE,
        }
    }

    /// Whether the error is a closed output pipe (`bus monitor | head`):
    /// the reader is done, which is not a failure.
    pub(crate) fn is_broken_pipe(&self) -> bool {
        matches!(self, CliError::Output(e) if e.kind() == std::io::ErrorKind::BrokenPipe)
    }

    /// Reads the broker's reason for closing a channel or connection
    /// during an operation on `queue`.
    pub(crate) fn from_close(code: u16, text: &str, queue: Option<&str>) -> CliError {
        match (code, queue) {
            (404, Some(queue)) => CliError::QueueNotFound(queue.to_owned()),
            (403, _) => CliError::AccessRefused(text.to_owned()),
            _ => CliError::Broker(format!("the broker refused: {code} {text}")),
        }
    }

    /// Reads an amqprs error raised by an operation on `queue`.
    pub(crate) fn from_amqp(error: amqprs::error::Error, queue: Option<&str>) -> CliError {
        let text = error.to_string();
        if text.contains("NOT_FOUND") {
            if let Some(queue) = queue {
                return CliError::QueueNotFound(queue.to_owned());
            }
        }
        if text.contains("ACCESS_REFUSED") {
            return CliError::AccessRefused(text);
        }
        CliError::Broker(format!("broker error: {text}"))
    }
}

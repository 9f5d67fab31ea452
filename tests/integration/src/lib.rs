//! The fault-injection harness of the integration tests.
//!
//! A fault test runs an [`echo`] service (in this process, or as the
//! `fault-echo` binary so that it can be killed), sends it numbered
//! commands with a [`sender::Sender`], collects the results with a
//! [`collector::Collector`], injects a fault, and checks with a
//! [`tally::Tally`] that every command was answered: sent, received,
//! unique, duplicates, lost.
//!
//! Every name comes from [`bus_test_support::unique`], so fault tests run
//! side by side with every other test, except those that disturb the whole
//! broker (see `tests/faults_global.rs`).

pub mod broker;
pub mod child;
pub mod collector;
pub mod echo;
pub mod proxy;
pub mod rig;
pub mod sender;
pub mod states;
pub mod tally;
pub mod trace;

/// Shows the runtime's tracing on the test output when `RUST_LOG` is set,
/// to debug a failing fault test; does nothing otherwise.
pub fn init_tracing() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
}

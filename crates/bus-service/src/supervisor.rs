//! The supervisor: connects (round robin over the broker URLs, with
//! backoff), runs a session, and starts again when it ends, until the
//! service is told to stop.

use std::time::{Duration, Instant};

use bus_core::LogLevel;
use tokio::sync::mpsc;

use crate::connect;
use crate::context::Control;
use crate::error::RunError;
use crate::health::ServiceState;
use crate::runtime::Runtime;
use crate::service::Service;
use crate::session::{self, EndCause};

/// A session shorter than this does not reset the backoff, so a broker
/// that drops us right after we subscribe cannot cause a tight loop.
const STABLE_SESSION: Duration = Duration::from_secs(1);

pub(crate) async fn supervise<S: Service>(
    rt: Runtime<S>,
    mut control: mpsc::UnboundedReceiver<Control>,
) -> Result<(), RunError> {
    let mut outcome = Ok(());
    let shutdown = rt.shared.shutdown.clone();
    let health = rt.shared.health.clone();
    let logger = rt.shared.logger.clone();
    let name = rt.config.connection_name();
    let mut delays = rt.config.reconnect.delays();
    let mut attempt: usize = 0;
    let mut sessions: u64 = 0;
    loop {
        if shutdown.is_cancelled() {
            break;
        }
        let url = &rt.config.urls[attempt % rt.config.urls.len()];
        attempt += 1;
        let opened = tokio::select! {
            opened = connect::open(url, &name, rt.config.heartbeat, rt.config.connection_timeout) => opened,
            () = shutdown.cancelled() => break,
        };
        let connection = match opened {
            Ok(connection) => connection,
            Err(error) => {
                health.set_last_error(error.clone());
                if rt.config.fail_fast && sessions == 0 && attempt >= rt.config.urls.len() {
                    outcome = Err(RunError::Connect(error));
                    break;
                }
                let delay = delays.next_delay();
                tracing::warn!(url = %url, %error, retry_in = ?delay, "cannot connect to the broker");
                tokio::select! {
                    () = tokio::time::sleep(delay) => continue,
                    () = shutdown.cancelled() => break,
                }
            }
        };
        sessions += 1;
        if sessions > 1 {
            health.count_reconnection();
        }
        tracing::info!(url = %url, connection = %name, session = sessions, "connected");
        let started = Instant::now();
        let end = session::run(&rt, connection, sessions, &mut control).await;
        if matches!(end.cause, EndCause::Stopped) {
            break;
        }
        health.set_state(ServiceState::Reconnecting);
        let cause = end.cause.to_string();
        tracing::warn!(url = %url, %cause, "session ended; reconnecting");
        // Buffered while offline, published once the next session is up.
        logger.simple(LogLevel::Warning, "Reconnecting", &cause, "");
        let delay = if end.consumed && started.elapsed() >= STABLE_SESSION {
            delays = rt.config.reconnect.delays();
            Duration::ZERO
        } else {
            delays.next_delay()
        };
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = shutdown.cancelled() => break,
        }
    }
    health.set_state(ServiceState::Stopped);
    rt.shared.timers.cancel_all();
    rt.shared.outbox.close();
    rt.log_channel.send_replace(None);
    outcome
}

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
use crate::reconnect::{Delays, ReconnectPolicy};
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
        let delay = delay_after_session(
            end.consumed,
            started.elapsed(),
            &mut delays,
            &rt.config.reconnect,
        );
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

/// The wait before reconnecting after a session ended. A session that
/// consumed and lasted starts the policy's sequence over, and the first
/// attempt is immediate, as in eventail; any other takes the next delay.
fn delay_after_session(
    consumed: bool,
    lasted: Duration,
    delays: &mut Delays,
    policy: &ReconnectPolicy,
) -> Duration {
    if consumed && lasted >= STABLE_SESSION {
        *delays = policy.delays();
        Duration::ZERO
    } else {
        delays.next_delay()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_that_consumed_resets_the_backoff() {
        let policy = ReconnectPolicy::eventail();
        let mut delays = policy.delays();
        let secs = |d: Duration| d.as_secs();
        // Three failed attempts: 1, 2, 3 s.
        for expected in 1..=3 {
            assert_eq!(secs(delays.next_delay()), expected);
        }
        let long = Duration::from_secs(60);
        assert_eq!(
            delay_after_session(true, long, &mut delays, &policy),
            Duration::ZERO
        );
        // The next failure starts from 1 s again.
        assert_eq!(secs(delays.next_delay()), 1);
    }

    #[test]
    fn a_session_that_did_not_consume_or_was_short_keeps_growing() {
        let policy = ReconnectPolicy::eventail();
        let mut delays = policy.delays();
        let long = Duration::from_secs(60);
        let short = Duration::from_millis(200);
        let got: Vec<u64> = [
            delay_after_session(false, long, &mut delays, &policy),
            delay_after_session(true, short, &mut delays, &policy),
            delay_after_session(false, short, &mut delays, &policy),
        ]
        .iter()
        .map(Duration::as_secs)
        .collect();
        assert_eq!(got, [1, 2, 3]);
    }
}

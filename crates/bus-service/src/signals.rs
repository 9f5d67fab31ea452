//! Unix signals: the first one stops the service gracefully, the second
//! exits at once.

use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio_util::sync::CancellationToken;

/// SIGTERM, SIGINT and SIGHUP, listened to from now on.
struct Termination(Vec<Signal>);

impl Termination {
    fn listen() -> Termination {
        let kinds = [
            SignalKind::terminate(),
            SignalKind::interrupt(),
            SignalKind::hangup(),
        ];
        let mut streams = Vec::new();
        for kind in kinds {
            match signal(kind) {
                Ok(stream) => streams.push(stream),
                Err(error) => tracing::warn!(%error, "cannot listen to a signal"),
            }
        }
        Termination(streams)
    }

    async fn next(&mut self) {
        if self.0.is_empty() {
            return std::future::pending().await;
        }
        let waits = self.0.iter_mut().map(|s| Box::pin(s.recv()));
        futures_util::future::select_all(waits).await;
    }
}

/// Waits for SIGTERM, SIGINT or SIGHUP.
pub async fn termination_signal() {
    Termination::listen().next().await;
}

/// Listens at once (a signal sent before the returned future first runs is
/// not lost) and with the same listeners for both signals, so a second
/// signal sent right after the first is not missed either.
pub(crate) fn stop_on_signals(token: CancellationToken) -> impl Future<Output = ()> + Send {
    let mut signals = Termination::listen();
    async move {
        signals.next().await;
        tracing::info!("signal received: stopping gracefully (send another to exit now)");
        token.cancel();
        signals.next().await;
        tracing::warn!("second signal: exiting now");
        std::process::exit(1);
    }
}

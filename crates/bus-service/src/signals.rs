//! Unix signals: the first one stops the service gracefully, the second
//! exits at once.

use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

/// Waits for SIGTERM, SIGINT or SIGHUP.
pub async fn termination_signal() {
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
    if streams.is_empty() {
        return std::future::pending().await;
    }
    let waits = streams.iter_mut().map(|s| Box::pin(s.recv()));
    futures_util::future::select_all(waits).await;
}

pub(crate) async fn stop_on_signals(token: CancellationToken) {
    termination_signal().await;
    tracing::info!("signal received: stopping gracefully (send another to exit now)");
    token.cancel();
    termination_signal().await;
    tracing::warn!("second signal: exiting now");
    std::process::exit(1);
}

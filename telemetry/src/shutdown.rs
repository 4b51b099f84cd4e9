//! Waiting for the signal to stop, and the one grace period every service
//! gives its in-flight work.

use std::time::Duration;

use tokio::task::{JoinError, JoinHandle};
use tokio_util::sync::CancellationToken;

/// A token cancelled on SIGTERM (Kubernetes) or Ctrl-C.
pub fn stop_on_signal() -> CancellationToken {
    let stop = CancellationToken::new();
    tokio::spawn({
        let stop = stop.clone();
        async move {
            shutdown_signal().await;
            stop.cancel();
        }
    });
    stop
}

/// Waits for `stop`, then up to `grace` for `serving` (which saw the same
/// token) to finish its in-flight `what`. None, with a warning, when the
/// grace period ran out first: the process exits anyway.
pub async fn drain<T>(
    serving: JoinHandle<T>,
    stop: &CancellationToken,
    grace: Duration,
    what: &str,
) -> Result<Option<T>, JoinError> {
    stop.cancelled().await;
    match tokio::time::timeout(grace, serving).await {
        Ok(joined) => joined.map(Some),
        Err(_) => {
            tracing::warn!(
                ?grace,
                "{what} still running after the grace period; exiting"
            );
            Ok(None)
        }
    }
}

/// Completes on SIGTERM (Kubernetes) or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(%err, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut sig) => {
                sig.recv().await;
            }
            Err(err) => {
                tracing::error!(%err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("Ctrl-C received"),
        () = term => tracing::info!("SIGTERM received"),
    }
}

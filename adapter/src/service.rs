//! One adapter: from its options to bound sockets, then serving until
//! stopped, with the grace period. `adapter serve` and `fulfil up` both
//! start it this way, so they share every default.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::ServeArgs;
use crate::fulfilment_client::FulfilmentClient;
use crate::metrics::Metrics;
use crate::server::{self, AppState};
use crate::source::Sources;

/// An adapter with its sockets bound, ready to serve.
#[derive(Debug)]
pub struct Adapter {
    listener: TcpListener,
    ops: Option<TcpListener>,
    state: AppState,
    grace: Duration,
}

impl Adapter {
    /// Checks the options, loads the sources and the credentials, and binds
    /// the listeners; any problem fails here, before a webhook is taken.
    pub async fn bind(args: &ServeArgs) -> anyhow::Result<Self> {
        let limits = args.http_limits()?;
        let sources = Sources::new(args.sources.load()?)?;
        let security = args.fulfilment_security.load()?;
        let (tls, token) = (security.tls.any(), security.token.is_some());
        let fulfilment = FulfilmentClient::with_security(
            &args.fulfilment_url,
            args.fulfilment_timeout(),
            args.fulfilment_retry_budget(),
            security,
        )?;
        let listener = TcpListener::bind(args.addr).await?;
        let addr = listener.local_addr()?;
        let names: Vec<String> = sources
            .summary()
            .into_iter()
            .map(|(name, _)| name)
            .collect();
        tracing::info!(%addr, fulfilment = %args.fulfilment_url, fulfilment_tls_files = tls, fulfilment_token = token, sources = %names.join(","), "HTTP server listening");
        let ops = match args.ops_addr {
            Some(at) => {
                let ops = TcpListener::bind(at).await?;
                tracing::info!(addr = %ops.local_addr()?, "ops listening (/metrics)");
                Some(ops)
            }
            None => None,
        };
        Ok(Adapter {
            listener,
            ops,
            state: AppState::new(sources, fulfilment, limits, Metrics::default()),
            grace: Duration::from_secs(args.shutdown_grace_secs),
        })
    }

    /// The webhook listener's address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `stop` is cancelled, then lets in-flight webhooks
    /// finish within the grace period. The ops port stays up through the
    /// drain, until this returns.
    pub async fn run(self, stop: CancellationToken) -> anyhow::Result<()> {
        let metrics = self.state.metrics.clone();
        let server = tokio::spawn(server::serve(
            self.listener,
            self.state,
            stop.clone().cancelled_owned(),
        ));
        let ops_stop = CancellationToken::new();
        let ops = self.ops.map(|listener| {
            tokio::spawn(server::serve_ops(
                listener,
                metrics,
                ops_stop.clone().cancelled_owned(),
            ))
        });
        let drained = fulfil_telemetry::drain(server, &stop, self.grace, "webhooks").await;
        ops_stop.cancel();
        if let Some(ops) = ops {
            ops.await??;
        }
        if let Some(served) = drained? {
            served?;
        }
        tracing::info!("stopped");
        Ok(())
    }
}

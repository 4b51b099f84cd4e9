//! One fulfilment process: from its options to an open database and bound
//! sockets, then serving until stopped, with the grace period.
//! `fulfilment serve` and `fulfil up` both start it this way.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::{ServeArgs, redacted_url};
use crate::server::{self, Listeners, ServeOptions};
use crate::storage::Database;

/// A fulfilment service with its database open and its sockets bound.
#[derive(Debug)]
pub struct Fulfilment {
    listeners: Listeners,
    db: Database,
    options: ServeOptions,
    addr: SocketAddr,
    grace: Duration,
}

impl Fulfilment {
    /// Checks the options and the security files first (a bad value fails
    /// the start before anything else happens), then opens and migrates
    /// the database and binds the listeners.
    pub async fn bind(args: &ServeArgs) -> anyhow::Result<Self> {
        let options = args.serve_options().map_err(anyhow::Error::msg)?;
        let tls = args.tls.load(args.ingest_addr.is_some())?;
        let auth = args.auth.load()?;
        let checkout = args.checkout.load()?;
        log_checkout(&checkout);
        log_security(tls.as_ref(), &auth);
        auth.load_keys().await;
        let config = args.database.to_config();
        let db = server::open_database(&config, args.writer_config()).await?;
        let api = TcpListener::bind(args.grpc_addr).await?;
        let addr = api.local_addr()?;
        let ingest = match args.ingest_addr {
            Some(at) => Some(TcpListener::bind(at).await?),
            None => None,
        };
        let ops = match args.ops_addr {
            Some(at) => Some(TcpListener::bind(at).await?),
            None => None,
        };
        let ingest_addr = ingest.as_ref().map(TcpListener::local_addr).transpose()?;
        let ops_addr = ops.as_ref().map(TcpListener::local_addr).transpose()?;
        tracing::info!(
            %addr,
            ingest_addr = ingest_addr.map(tracing::field::display),
            ops_addr = ops_addr.map(tracing::field::display),
            database = %redacted_url(&config.url),
            backend = ?db.backend(),
            "gRPC server listening"
        );
        Ok(Fulfilment {
            listeners: Listeners { api, ingest, ops },
            db,
            options: ServeOptions {
                tls,
                auth,
                checkout,
                ..options
            },
            addr,
            grace: Duration::from_secs(args.shutdown_grace_secs),
        })
    }

    /// The gRPC API's address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until `stop` is cancelled, then lets in-flight calls finish
    /// within the grace period.
    pub async fn run(self, stop: CancellationToken) -> anyhow::Result<()> {
        let server = tokio::spawn(server::serve(
            self.listeners,
            self.db,
            self.options,
            stop.clone().cancelled_owned(),
        ));
        if let Some(served) = fulfil_telemetry::drain(server, &stop, self.grace, "calls").await? {
            served?;
        }
        tracing::info!("stopped");
        Ok(())
    }
}

/// Says how the listeners are protected; loudly when calls are not.
fn log_security(tls: Option<&server::tls::TlsConfig>, auth: &crate::auth::Authenticator) {
    match auth.verifier() {
        None => tracing::warn!(
            "authorization is OFF: the gRPC API is unauthenticated and any caller may read, create, cancel, fulfil and pay any order. \
             Turn it on with FULFIL_AUTH_JWT_ISSUER, FULFIL_AUTH_JWT_AUDIENCE and FULFIL_AUTH_JWT_JWKS_URL \
             (or FULFIL_AUTH_JWT_PUBLIC_KEYS_FILE, or FULFIL_AUTH_JWT_HS256_SECRET); see the Security section of the README"
        ),
        Some(verifier) => {
            let kinds: Vec<String> = verifier
                .keys()
                .iter()
                .map(|k| match &k.kid {
                    Some(kid) => format!("{:?}({kid})", k.kind),
                    None => format!("{:?}", k.kind),
                })
                .collect();
            tracing::info!(
                issuer = verifier.issuer(),
                audience = verifier.audience(),
                keys = %kinds.join(","),
                jwks = verifier.jwks().map(|j| tracing::field::display(j.display_url())),
                customer_claim = verifier.customer_claim(),
                "authorization on: gRPC calls need a bearer JWT"
            );
        }
    }
    match tls {
        Some(tls) => tracing::info!(
            client_certificates_on_ingest = tls.requires_client_certificates(),
            "TLS on for the API and ingest listeners"
        ),
        None if auth.is_on() => tracing::warn!(
            "TLS is off: bearer tokens cross the network in clear text unless something else encrypts it; set FULFIL_TLS_CERT_FILE and FULFIL_TLS_KEY_FILE"
        ),
        None => tracing::info!("TLS off"),
    }
}

/// Says what checkout can do; never the key.
fn log_checkout(setup: &crate::checkout::CheckoutSetup) {
    match &setup.stripe {
        Some(stripe) => tracing::info!(
            api = %stripe.config().base_url,
            api_version = %stripe.config().api_version,
            catalogue_products = setup.catalogue.as_ref().map(|c| c.get().len()),
            "checkout on: Stripe"
        ),
        None => tracing::info!(
            "checkout off: CreateCheckout answers CHECKOUT_NOT_CONFIGURED until FULFIL_STRIPE_SECRET_KEY(_FILE) is set"
        ),
    }
}

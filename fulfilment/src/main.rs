//! The `fulfilment` binary: `serve` and `migrate`.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use fulfilment::config::{Cli, Command, redacted_url};
use fulfilment::{server, storage};
use tokio::net::TcpListener;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let telemetry = match fulfil_telemetry::init("fulfilment", cli.log_format) {
        Ok(telemetry) => telemetry,
        Err(err) => {
            eprintln!("fulfilment: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Command::Serve(args) => serve(*args).await,
        Command::Migrate(args) => migrate(args).await,
    };
    telemetry.shutdown().await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = %format!("{err:#}"), "fulfilment failed");
            ExitCode::FAILURE
        }
    }
}

async fn migrate(args: fulfilment::config::DatabaseArgs) -> anyhow::Result<()> {
    let config = args.to_config();
    let conn = storage::connect(&config).await?;
    storage::migrate(&conn).await?;
    tracing::info!(database = %redacted_url(&config.url), "migrations applied");
    Ok(())
}

async fn serve(args: fulfilment::config::ServeArgs) -> anyhow::Result<()> {
    // Settings first: a bad value or file fails the start before anything
    // else happens.
    let options = args.serve_options().map_err(anyhow::Error::msg)?;
    let tls = args.tls.load(args.ingest_addr.is_some())?;
    let auth = args.auth.load()?;
    log_security(tls.as_ref(), &auth);
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

    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(server::serve(
        server::Listeners { api, ingest, ops },
        db,
        server::ServeOptions {
            tls,
            auth,
            ..options
        },
        async move {
            let _ = stop_rx.await;
        },
    ));
    fulfil_telemetry::shutdown_signal().await;
    let _ = stop_tx.send(());
    let grace = Duration::from_secs(args.shutdown_grace_secs);
    match tokio::time::timeout(grace, server).await {
        Ok(joined) => joined??,
        Err(_) => tracing::warn!(
            ?grace,
            "calls still running after the grace period; exiting"
        ),
    }
    tracing::info!("stopped");
    Ok(())
}

/// Says how the listeners are protected; loudly when calls are not.
fn log_security(tls: Option<&server::tls::TlsConfig>, auth: &fulfilment::auth::Authenticator) {
    match auth.verifier() {
        None => tracing::warn!(
            "authorization is OFF: the gRPC API is unauthenticated and any caller may read, create, cancel, fulfil and pay any order. \
             Turn it on with FULFIL_AUTH_JWT_ISSUER, FULFIL_AUTH_JWT_AUDIENCE and FULFIL_AUTH_JWT_PUBLIC_KEYS_FILE \
             (or FULFIL_AUTH_JWT_HS256_SECRET); see the Security section of the README"
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

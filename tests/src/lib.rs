//! Helpers for end-to-end tests: start Fulfil's real binaries as child
//! processes, find the address they bound, and stop them with SIGTERM.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// How long a binary may take to report that it listens.
pub const START_DEADLINE: Duration = Duration::from_secs(30);

/// Path of a workspace binary, built next to this test executable by
/// `cargo test --workspace` (every package with integration tests gets its
/// binaries built).
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> -> target/<profile>/<name>
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target directory");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: run the tests with `cargo test --workspace` (or `cargo build --bins` first)",
        path.display()
    );
    path
}

/// A running binary with its log on stdout.
pub struct Process {
    child: Child,
    /// The address it reported listening on.
    pub addr: SocketAddr,
    /// Every log line so far (also forwarded to the test's stderr).
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    _log_reader: tokio::task::JoinHandle<()>,
}

impl Process {
    /// Starts `bin` with `args` and `envs` in `dir`, and waits (with a
    /// deadline) for its JSON log line `listening_message` carrying `addr`.
    pub async fn start(
        bin: &Path,
        args: &[&str],
        envs: &[(&str, String)],
        dir: &Path,
        listening_message: &str,
    ) -> Process {
        let mut child = Command::new(bin)
            .args(args)
            .envs(envs.iter().map(|(k, v)| (*k, v.as_str())))
            .env("FULFIL_LOG_FORMAT", "json")
            .current_dir(dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", bin.display()));
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout).lines();
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let addr = tokio::time::timeout(START_DEADLINE, async {
            while let Ok(Some(line)) = lines.next_line().await {
                eprintln!(
                    "[{}] {line}",
                    bin.file_name().and_then(|n| n.to_str()).unwrap_or("bin")
                );
                log.lock().expect("log").push(line.clone());
                let Ok(json) = serde_json::from_str::<serde_json::Value>(&line) else {
                    continue;
                };
                if json["message"] == listening_message
                    && let Some(addr) = json["addr"].as_str().and_then(|a| a.parse().ok())
                {
                    return Some(addr);
                }
            }
            None
        })
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| {
            panic!(
                "{} did not report {listening_message:?} in time",
                bin.display()
            )
        });
        let name = bin
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("bin")
            .to_owned();
        let reader = tokio::spawn({
            let log = log.clone();
            async move {
                while let Ok(Some(line)) = lines.next_line().await {
                    eprintln!("[{name}] {line}");
                    log.lock().expect("log").push(line);
                }
            }
        });
        Process {
            child,
            addr,
            log,
            _log_reader: reader,
        }
    }

    /// Every log line the process has written so far.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().expect("log").clone()
    }

    /// The address the process reported under `field` in its JSON log line
    /// `message` (e.g. `ops_addr`), if it did.
    pub fn logged_addr(&self, message: &str, field: &str) -> Option<SocketAddr> {
        self.log().iter().find_map(|line| {
            let json: serde_json::Value = serde_json::from_str(line).ok()?;
            (json["message"] == message)
                .then(|| json[field].as_str()?.parse().ok())
                .flatten()
        })
    }

    /// Sends SIGTERM and waits (with a deadline) for the exit status.
    pub async fn terminate(mut self) -> std::process::ExitStatus {
        self.stop().await
    }

    /// Like [`Process::terminate`], keeping the process's log readable.
    pub async fn stop(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().expect("process still running");
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -TERM {pid} failed");
        let status = tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("process exits within 30 s of SIGTERM")
            .expect("wait for process");
        // The last lines are read once stdout closes.
        let _ = tokio::time::timeout(Duration::from_secs(5), &mut self._log_reader).await;
        status
    }
}

/// Starts `fulfilment serve` on port 0 with an SQLite database in `dir`.
pub async fn start_fulfilment(dir: &Path, envs: &[(&str, String)]) -> Process {
    let mut all = vec![("FULFIL_GRPC_ADDR", "127.0.0.1:0".to_owned())];
    all.extend(envs.iter().cloned());
    Process::start(
        &binary("fulfilment"),
        &["serve"],
        &all,
        dir,
        "gRPC server listening",
    )
    .await
}

/// Starts `adapter serve` on port 0, sending to `fulfilment` (an address),
/// with the sources document `sources_toml`.
pub async fn start_adapter(
    dir: &Path,
    fulfilment: SocketAddr,
    sources_toml: &str,
    envs: &[(&str, String)],
) -> Process {
    let mut all = vec![
        ("FULFIL_ADAPTER_ADDR", "127.0.0.1:0".to_owned()),
        ("FULFIL_FULFILMENT_URL", format!("http://{fulfilment}")),
        ("FULFIL_SOURCES_TOML", sources_toml.to_owned()),
    ];
    all.extend(envs.iter().cloned());
    Process::start(
        &binary("adapter"),
        &["serve"],
        &all,
        dir,
        "HTTP server listening",
    )
    .await
}

/// An HTTP client. Installs the process's TLS crypto provider (ring) first:
/// the workspace builds reqwest without one, to avoid a second C-built
/// crypto library.
pub fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

/// Seconds since the Unix epoch, for signature timestamps.
pub fn unix_now() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs(),
    )
    .expect("time")
}

/// A realistic Stripe `payment_intent.succeeded` event, built from Stripe's
/// fixture, paying `amount` (EUR cents) for `order_id`.
pub fn stripe_payment_succeeded(event_id: &str, order_id: &str, amount: i64) -> serde_json::Value {
    use serde_json::json;
    let mut object: serde_json::Value = serde_json::from_str(include_str!(
        "../../adapter/testdata/stripe/payment_intent.json"
    ))
    .expect("fixture");
    object["id"] = json!(format!("pi_{order_id}"));
    object["amount"] = json!(amount);
    object["amount_received"] = json!(amount);
    object["currency"] = json!("eur");
    object["status"] = json!("succeeded");
    object["metadata"] = json!({ "order_id": order_id });
    let mut event: serde_json::Value =
        serde_json::from_str(include_str!("../../adapter/testdata/stripe/event.json"))
            .expect("fixture");
    event["id"] = json!(event_id);
    event["type"] = json!("payment_intent.succeeded");
    event["created"] = json!(unix_now());
    event["data"] = json!({ "object": object });
    event
}

//! Configuration pieces every gRPC service shares, flattened into each binary's own `Config`.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use tonic::transport::{Certificate, Identity, ServerTlsConfig};

/// How a gRPC server protects itself and drains: the same knobs for every service.
#[derive(clap::Args, Debug, Clone)]
pub struct ServeArgs {
    /// Longest time one call may take before it is answered DEADLINE_EXCEEDED (milliseconds).
    #[arg(long, env = "REQUEST_TIMEOUT_MS", default_value_t = 5_000)]
    pub request_timeout_ms: u64,
    /// Calls handled at once; further calls are shed with RESOURCE_EXHAUSTED.
    #[arg(long, env = "CONCURRENCY_LIMIT", default_value_t = 256)]
    pub concurrency_limit: usize,
    /// Server streams (live feeds, health watches) open at once; further ones are shed with
    /// RESOURCE_EXHAUSTED. Counted apart from CONCURRENCY_LIMIT so streams cannot starve calls.
    #[arg(long, env = "STREAM_LIMIT", default_value_t = 1_024)]
    pub stream_limit: usize,
    /// On SIGTERM/SIGINT: health turns NOT_SERVING, then in-flight calls get this long to finish
    /// (milliseconds) before the process exits.
    #[arg(long, env = "DRAIN_TIMEOUT_MS", default_value_t = 10_000)]
    pub drain_timeout_ms: u64,
    /// Pause between NOT_SERVING and closing the listener, so load balancers stop sending
    /// (milliseconds). Zero in tests.
    #[arg(long, env = "SHUTDOWN_DELAY_MS", default_value_t = 0)]
    pub shutdown_delay_ms: u64,
    /// A JSON file of faults to inject (drills), re-read when it changes; see `/faults` on the
    /// admin port for the format. Unset: faults only through the admin port.
    #[arg(long, env = "FAULTS_FILE")]
    pub faults_file: Option<std::path::PathBuf>,
    /// Serve TLS with this certificate chain (PEM); needs --tls-key. Unset: plaintext.
    #[arg(long, env = "TLS_CERT_FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(long, env = "TLS_KEY_FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Mutual TLS: clients must present a certificate signed by this CA (PEM); needs --tls-cert.
    #[arg(long, env = "TLS_CLIENT_CA_FILE", requires = "tls_cert")]
    pub tls_client_ca: Option<PathBuf>,
}

impl ServeArgs {
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }
    pub fn drain_timeout(&self) -> Duration {
        Duration::from_millis(self.drain_timeout_ms)
    }
    pub fn shutdown_delay(&self) -> Duration {
        Duration::from_millis(self.shutdown_delay_ms)
    }

    /// The server's TLS settings, `None` when --tls-cert is unset (plaintext); a file that cannot
    /// be read or holds no PEM of the right kind is an error naming its flag.
    pub fn tls(&self) -> Result<Option<ServerTlsConfig>, TlsFileError> {
        let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) else {
            return match (&self.tls_cert, &self.tls_key, &self.tls_client_ca) {
                (Some(_), None, _) => Err(TlsFileError::missing("--tls-key", "--tls-cert")),
                (None, Some(_), _) => Err(TlsFileError::missing("--tls-cert", "--tls-key")),
                (None, None, Some(_)) => {
                    Err(TlsFileError::missing("--tls-cert", "--tls-client-ca"))
                }
                _ => Ok(None),
            };
        };
        let identity = Identity::from_pem(
            read_pem("--tls-cert", cert, Pem::Certificate)?,
            read_pem("--tls-key", key, Pem::PrivateKey)?,
        );
        let mut tls = ServerTlsConfig::new().identity(identity);
        if let Some(ca) = &self.tls_client_ca {
            tls = tls.client_ca_root(Certificate::from_pem(read_pem(
                "--tls-client-ca",
                ca,
                Pem::Certificate,
            )?));
        }
        Ok(Some(tls))
    }
}

/// What a PEM file named by a TLS flag must hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pem {
    /// One or more `CERTIFICATE` blocks.
    Certificate,
    /// A `PRIVATE KEY`, `RSA PRIVATE KEY` or `EC PRIVATE KEY` block.
    PrivateKey,
}

/// A TLS file that cannot be used, or a TLS flag given without the one it needs.
#[derive(Debug, thiserror::Error)]
#[error("{flag}: {why}")]
pub struct TlsFileError {
    pub flag: &'static str,
    pub why: String,
}

impl TlsFileError {
    fn missing(flag: &'static str, by: &str) -> Self {
        Self {
            flag,
            why: format!("must be set together with {by}"),
        }
    }
}

/// Reads the PEM file given to `flag`, checking that it holds what `kind` says (the contents are
/// parsed for real when the TLS configuration is built).
pub fn read_pem(flag: &'static str, path: &Path, kind: Pem) -> Result<Vec<u8>, TlsFileError> {
    let bytes = std::fs::read(path).map_err(|e| TlsFileError {
        flag,
        why: format!("cannot read {}: {e}", path.display()),
    })?;
    let text = String::from_utf8_lossy(&bytes);
    let found = match kind {
        Pem::Certificate => text.contains("-----BEGIN CERTIFICATE-----"),
        Pem::PrivateKey => text
            .lines()
            .any(|l| l.starts_with("-----BEGIN ") && l.ends_with("PRIVATE KEY-----")),
    };
    if !found {
        let what = match kind {
            Pem::Certificate => "a PEM certificate (-----BEGIN CERTIFICATE-----)",
            Pem::PrivateKey => "a PEM private key (-----BEGIN PRIVATE KEY-----)",
        };
        return Err(TlsFileError {
            flag,
            why: format!("{} does not hold {what}", path.display()),
        });
    }
    Ok(bytes)
}

impl Default for ServeArgs {
    fn default() -> Self {
        Self {
            request_timeout_ms: 5_000,
            concurrency_limit: 256,
            stream_limit: 1_024,
            drain_timeout_ms: 10_000,
            shutdown_delay_ms: 0,
            faults_file: None,
            tls_cert: None,
            tls_key: None,
            tls_client_ca: None,
        }
    }
}

/// How logs are written.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// JSON lines when stdout is not a terminal (containers), human-readable otherwise.
    #[default]
    Auto,
    /// One JSON object per line.
    Json,
    /// Human-readable text.
    Text,
}

/// Logging and tracing settings shared by every binary.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct TelemetryArgs {
    /// Log format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Auto)]
    pub log_format: LogFormat,
    /// Log filter in `tracing` EnvFilter syntax. Targets and levels only (`info`,
    /// `warn,gateway=debug`) are decided once per callsite; span and field directives
    /// (`[grpc.server]=debug`) work too, at the price of a lookup on every span's entry and exit.
    #[arg(long, env = "RUST_LOG", default_value = "info")]
    pub log_filter: String,
    /// Share of successful, fast requests that get an access-log line (0.0-1.0); errors and
    /// requests slower than ACCESS_LOG_SLOW_MS are always logged, and metrics count everything.
    #[arg(long, env = "ACCESS_LOG_SAMPLE", default_value_t = 0.05)]
    pub access_log_sample: f64,
    /// Requests at least this slow (milliseconds) are always logged.
    #[arg(long, env = "ACCESS_LOG_SLOW_MS", default_value_t = 100)]
    pub access_log_slow_ms: u64,
}

/// clap value parser for secrets: keeps them out of `Debug` output and logs.
pub fn secret(value: &str) -> Result<secrecy::SecretString, std::convert::Infallible> {
    Ok(secrecy::SecretString::from(value.to_owned()))
}

//! Configuration pieces every gRPC service shares, flattened into each binary's own `Config`.

use std::time::Duration;

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
    /// Log filter in `tracing` EnvFilter syntax.
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

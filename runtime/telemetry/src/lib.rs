//! How a weft process is observed, in one place for the server, the CLI and the workers:
//!
//! - [`logs`]: `tracing` output as plain text or one JSON object per line;
//! - [`metrics`]: the Prometheus recorder behind the `metrics` facade, and its exposition;
//! - [`traces`]: OpenTelemetry spans exported over OTLP, and the W3C trace context that
//!   carries a trace from a caller through a run to an activity worker.
//!
//! Nothing here sends anything anywhere unless asked: metrics stay in memory until scraped,
//! and traces are exported only when an OTLP endpoint is configured.

pub mod logs;
pub mod metrics;
pub mod traces;

/// Why telemetry could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("cannot set up the OTLP trace exporter for {endpoint}: {reason}")]
    Otlp { endpoint: String, reason: String },
    #[error("cannot set up Prometheus metrics: {0}")]
    Metrics(String),
    #[error("unknown log format `{0}`: use `text` or `json`")]
    LogFormat(String),
}

//! Prometheus metrics. Code records through the `metrics` facade (`metrics::counter!` ...);
//! until [`install`] or [`serve`] installs the recorder those calls cost next to nothing,
//! which is how `--no-metrics` turns them off.
//!
//! Histograms are exposed as Prometheus histograms (not summaries) with fixed buckets, so
//! they aggregate across servers: names ending in `_seconds` get [`SECONDS_BUCKETS`], names
//! ending in `_size` get [`SIZE_BUCKETS`].

use std::net::SocketAddr;
use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::TelemetryError;

/// Upper bounds of latency histograms, from half a millisecond to a minute.
pub const SECONDS_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];
/// Upper bounds of size histograms (batch sizes).
pub const SIZE_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

fn builder() -> Result<PrometheusBuilder, TelemetryError> {
    let error = |e: metrics_exporter_prometheus::BuildError| TelemetryError::Metrics(e.to_string());
    PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
        .map_err(error)?
        .set_buckets_for_metric(Matcher::Suffix("_size".into()), SIZE_BUCKETS)
        .map_err(error)
}

/// Installs the process-wide recorder; [`render`] then gives the exposition. A second call
/// keeps the first recorder.
pub fn install() -> Result<(), TelemetryError> {
    if HANDLE.get().is_some() {
        return Ok(());
    }
    let recorder = builder()?.build_recorder();
    let handle = recorder.handle();
    if metrics::set_global_recorder(recorder).is_ok() {
        let _ = HANDLE.set(handle);
    }
    Ok(())
}

/// Installs the recorder and serves `GET /metrics` (any path, in fact) on `addr`, for
/// processes without an HTTP server of their own (workers). Call inside a Tokio runtime.
pub fn serve(addr: SocketAddr) -> Result<(), TelemetryError> {
    if HANDLE.get().is_some() {
        return Err(TelemetryError::Metrics(
            "metrics are already installed in this process".into(),
        ));
    }
    let (recorder, exporter) = builder()?
        .with_http_listener(addr)
        .build()
        .map_err(|e| TelemetryError::Metrics(format!("cannot listen on {addr}: {e}")))?;
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder).map_err(|e| TelemetryError::Metrics(e.to_string()))?;
    let _ = HANDLE.set(handle);
    tokio::spawn(async move {
        if let Err(e) = exporter.await {
            tracing::error!(error = ?e, "the metrics listener stopped");
        }
    });
    Ok(())
}

/// Whether a recorder is installed (metrics are on).
pub fn enabled() -> bool {
    HANDLE.get().is_some()
}

/// The Prometheus text exposition of every metric recorded so far; `None` when metrics are
/// off.
pub fn render() -> Option<String> {
    let handle = HANDLE.get()?;
    handle.run_upkeep();
    Some(handle.render())
}

/// The content type of [`render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

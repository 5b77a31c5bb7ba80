//! OpenTelemetry traces over OTLP/gRPC, and the W3C trace context that links them.
//!
//! Two kinds of span are made here:
//! - live spans ([`start`]) for work that begins and ends in one process (an RPC, an
//!   activity on a worker);
//! - finished spans ([`record`]) for work whose start and end are known only later, maybe on
//!   another node: a run (from its start to its close) and an activity attempt (from its claim
//!   to its result). Their span ids are derived from what identifies them
//!   ([`derived_span_id`]), so children made before they end, in other processes or after a
//!   restart, already point at them.
//!
//! When no endpoint is configured nothing is installed and every call here returns at once.

use std::cell::Cell;
use std::sync::OnceLock;
use std::time::SystemTime;

use opentelemetry::trace::{
    Span as _, SpanContext, SpanKind, Status, TraceContextExt, TraceFlags, TraceId, TraceState,
    Tracer as _, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::trace::{IdGenerator, RandomIdGenerator, SdkTracer, SdkTracerProvider};
use sha2::{Digest, Sha256};

use crate::TelemetryError;

/// The standard environment variable for the collector's address.
pub const ENDPOINT_ENV: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";

static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();
static TRACER: OnceLock<SdkTracer> = OnceLock::new();

/// The collector endpoint: the explicit one, else `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, else
/// `OTEL_EXPORTER_OTLP_ENDPOINT`; `None` (tracing off) when none is set.
pub fn endpoint(explicit: Option<String>) -> Option<String> {
    explicit
        .or_else(|| std::env::var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").ok())
        .or_else(|| std::env::var(ENDPOINT_ENV).ok())
        .filter(|e| !e.trim().is_empty())
}

/// Exports this process's spans to the OTLP/gRPC collector at `endpoint`
/// (`http://host:4317`) as service `service_name` (unless `OTEL_SERVICE_NAME` says
/// otherwise). Call inside a Tokio runtime. A second call keeps the first exporter.
pub fn install(endpoint: &str, service_name: &str) -> Result<(), TelemetryError> {
    if PROVIDER.get().is_some() {
        return Ok(());
    }
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .build()
        .map_err(|e| TelemetryError::Otlp {
            endpoint: endpoint.to_owned(),
            reason: e.to_string(),
        })?;
    let mut resource = opentelemetry_sdk::Resource::builder();
    if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name(service_name.to_owned());
    }
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_id_generator(Ids::default())
        .with_resource(resource.build())
        .build();
    let tracer = provider.tracer("weft");
    if PROVIDER.set(provider.clone()).is_ok() {
        let _ = TRACER.set(tracer);
        opentelemetry::global::set_tracer_provider(provider);
    }
    Ok(())
}

/// Sends the spans still buffered; call before the process exits.
pub fn flush() {
    if let Some(provider) = PROVIDER.get() {
        let _ = provider.force_flush();
    }
}

/// Whether spans are exported.
pub fn enabled() -> bool {
    TRACER.get().is_some()
}

thread_local! {
    /// The span id [`Ids`] hands out next, set by [`record`] for a span whose id is derived.
    static NEXT_SPAN_ID: Cell<Option<SpanId>> = const { Cell::new(None) };
}

/// Random ids, except a span id [`record`] asked for.
#[derive(Debug, Default)]
struct Ids(RandomIdGenerator);

impl IdGenerator for Ids {
    fn new_trace_id(&self) -> TraceId {
        self.0.new_trace_id()
    }

    fn new_span_id(&self) -> SpanId {
        NEXT_SPAN_ID
            .with(Cell::take)
            .unwrap_or_else(|| self.0.new_span_id())
    }
}

/// A span id fixed by what the span stands for (a run id; a task and attempt), so every
/// process that knows those computes the same id.
pub fn derived_span_id(parts: &[&str]) -> SpanId {
    let mut hash = Sha256::new();
    for part in parts {
        hash.update((part.len() as u64).to_le_bytes());
        hash.update(part.as_bytes());
    }
    let digest = hash.finalize();
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    if bytes == [0; 8] {
        bytes[7] = 1; // the all-zero id is invalid
    }
    SpanId::from_bytes(bytes)
}

/// Where a span sits in a trace: the W3C `traceparent` of a span, as stored with runs and
/// tasks and sent to workers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceContext {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub sampled: bool,
}

impl TraceContext {
    /// Parses `00-<32 hex trace id>-<16 hex span id>-<2 hex flags>`; `None` for anything
    /// else, an all-zero id included (the W3C rule: ignore a malformed header).
    pub fn parse(traceparent: &str) -> Option<Self> {
        let mut parts = traceparent.trim().split('-');
        let (version, trace, span, flags) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        if version.len() != 2 || version == "ff" || trace.len() != 32 || span.len() != 16 {
            return None;
        }
        if version == "00" && parts.next().is_some() {
            return None;
        }
        let lower_hex = |s: &str| s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if !lower_hex(version) || !lower_hex(trace) || !lower_hex(span) || !lower_hex(flags) {
            return None;
        }
        let trace_id = TraceId::from_hex(trace).ok()?;
        let span_id = SpanId::from_hex(span).ok()?;
        let flags = u8::from_str_radix(flags, 16).ok()?;
        if trace_id == TraceId::INVALID || span_id == SpanId::INVALID {
            return None;
        }
        Some(TraceContext {
            trace_id,
            span_id,
            sampled: flags & 1 == 1,
        })
    }

    /// The `traceparent` header value.
    pub fn traceparent(&self) -> String {
        format!(
            "00-{}-{}-{:02x}",
            self.trace_id,
            self.span_id,
            u8::from(self.sampled)
        )
    }

    /// The same trace, at another span.
    pub fn at(&self, span_id: SpanId) -> Self {
        TraceContext { span_id, ..*self }
    }

    /// The span that `cx` is in, if it is a valid one.
    pub fn of(cx: &Context) -> Option<Self> {
        let span = cx.span();
        let sc = span.span_context();
        sc.is_valid().then(|| TraceContext {
            trace_id: sc.trace_id(),
            span_id: sc.span_id(),
            sampled: sc.is_sampled(),
        })
    }

    /// A context whose parent is this (remote) span.
    pub fn context(&self) -> Context {
        let flags = if self.sampled {
            TraceFlags::SAMPLED
        } else {
            TraceFlags::default()
        };
        Context::new().with_remote_span_context(SpanContext::new(
            self.trace_id,
            self.span_id,
            flags,
            true,
            TraceState::default(),
        ))
    }
}

/// Starts a live span under `parent` (an empty context makes a new trace); `None` when
/// tracing is off. End it with [`finish`].
pub fn start(
    name: impl Into<std::borrow::Cow<'static, str>>,
    kind: SpanKind,
    parent: &Context,
    attributes: Vec<KeyValue>,
) -> Option<Context> {
    let tracer = TRACER.get()?;
    let span = tracer
        .span_builder(name)
        .with_kind(kind)
        .with_attributes(attributes)
        .start_with_context(tracer, parent);
    Some(parent.with_span(span))
}

/// Ends the span of `cx` (from [`start`]), marking it failed with `error` if given.
pub fn finish(cx: &Context, attributes: Vec<KeyValue>, error: Option<String>) {
    let span = cx.span();
    for attribute in attributes {
        span.set_attribute(attribute);
    }
    if let Some(error) = error {
        span.set_status(Status::error(error));
    }
    span.end();
}

/// A span whose start and end are both known, for [`record`].
pub struct Finished<'a> {
    pub name: String,
    pub kind: SpanKind,
    pub parent: &'a TraceContext,
    /// Its own id; random when `None`.
    pub span_id: Option<SpanId>,
    pub start: SystemTime,
    pub end: SystemTime,
    pub attributes: Vec<KeyValue>,
    pub error: Option<String>,
}

/// Exports a span that has already ended (a run, an attempt, an activation).
pub fn record(span: Finished<'_>) {
    let Some(tracer) = TRACER.get() else {
        return;
    };
    if !span.parent.sampled {
        return;
    }
    NEXT_SPAN_ID.with(|next| next.set(span.span_id));
    let mut live = tracer
        .span_builder(span.name)
        .with_kind(span.kind)
        .with_start_time(span.start)
        .with_attributes(span.attributes)
        .start_with_context(tracer, &span.parent.context());
    NEXT_SPAN_ID.with(|next| next.set(None));
    if let Some(error) = span.error {
        live.set_status(Status::error(error));
    }
    live.end_with_timestamp(span.end);
}

/// Milliseconds since the Unix epoch as a [`SystemTime`].
pub fn time_ms(ms: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(ms)
}

pub use opentelemetry::trace::{SpanId, SpanKind as Kind};
pub use opentelemetry::{Context as OtelContext, KeyValue as Attribute};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_round_trips_and_malformed_ones_are_ignored() {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let cx = TraceContext::parse(tp).unwrap();
        assert!(cx.sampled);
        assert_eq!(cx.traceparent(), tp);
        let unsampled = TraceContext::parse(&tp.replace("-01", "-00")).unwrap();
        assert!(!unsampled.sampled);
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-xyz92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert_eq!(TraceContext::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn derived_ids_are_stable_and_distinct() {
        let a = derived_span_id(&["run", "r1"]);
        assert_eq!(a, derived_span_id(&["run", "r1"]));
        assert_ne!(a, derived_span_id(&["run", "r2"]));
        // Part boundaries count: ("ab","c") is not ("a","bc").
        assert_ne!(derived_span_id(&["ab", "c"]), derived_span_id(&["a", "bc"]));
        assert_ne!(a, SpanId::INVALID);
    }
}

//! A real OTLP/gRPC trace receiver for tests (the trace service of `opentelemetry-proto`,
//! served by tonic on a port of its own), and what the tests ask of the spans it received:
//! a trace once its named spans have all arrived, a span's parent, its attributes.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;

/// Every span received, with the service that sent it.
#[derive(Clone, Default)]
pub struct Collector {
    spans: Arc<Mutex<Vec<Received>>>,
}

/// A span and the `service.name` of the process that exported it.
#[derive(Clone, Debug)]
pub struct Received {
    pub service: String,
    pub span: Span,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Received {
    pub fn id(&self) -> String {
        hex(&self.span.span_id)
    }

    pub fn parent(&self) -> String {
        hex(&self.span.parent_span_id)
    }

    pub fn trace_id(&self) -> String {
        hex(&self.span.trace_id)
    }

    /// A string attribute's value.
    pub fn attribute(&self, key: &str) -> Option<String> {
        self.span
            .attributes
            .iter()
            .find(|a| a.key == key)
            .and_then(|a| match a.value.as_ref()?.value.as_ref()? {
                AnyValue::StringValue(v) => Some(v.clone()),
                _ => None,
            })
    }
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut spans = self.spans.lock().unwrap_or_else(PoisonError::into_inner);
        for resource_spans in request.into_inner().resource_spans {
            let service = resource_spans
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|a| a.key == "service.name")
                .and_then(|a| match a.value.as_ref()?.value.as_ref()? {
                    AnyValue::StringValue(s) => Some(s.clone()),
                    _ => None,
                })
                .unwrap_or_default();
            for scope in resource_spans.scope_spans {
                for span in scope.spans {
                    spans.push(Received {
                        service: service.clone(),
                        span,
                    });
                }
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

impl Collector {
    /// A collector listening on a port of its own (call inside a Tokio runtime), and its
    /// endpoint (`http://127.0.0.1:port`).
    pub async fn start() -> (Collector, String) {
        let collector = Collector::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a port for the collector");
        let endpoint = format!(
            "http://{}",
            listener.local_addr().expect("the collector's address")
        );
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(TraceServiceServer::new(collector.clone()))
                .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
        );
        (collector, endpoint)
    }

    /// Everything received so far.
    pub fn received(&self) -> Vec<Received> {
        self.spans
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The trace id of the first span named `name`, once one has arrived (within 30 s).
    pub async fn trace_of(&self, name: &str) -> String {
        for _ in 0..600 {
            if let Some(span) = self.received().iter().find(|s| s.span.name == name) {
                return span.trace_id();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no span `{name}` arrived; received: {:#?}", self.names());
    }

    /// The spans of `trace_id`, once the ones named in `wanted` have all arrived (within
    /// 15 s; `flush` is called between looks, to push this process's own spans out).
    pub async fn trace(&self, trace_id: &str, wanted: &[&str], flush: impl Fn()) -> Vec<Received> {
        for _ in 0..300 {
            let spans: Vec<Received> = self
                .received()
                .into_iter()
                .filter(|s| s.trace_id() == trace_id)
                .collect();
            if wanted
                .iter()
                .all(|name| spans.iter().any(|s| s.span.name == *name))
            {
                return spans;
            }
            flush();
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "spans {wanted:?} of trace {trace_id} did not all arrive; received: {:#?}",
            self.names()
        );
    }

    fn names(&self) -> Vec<String> {
        self.received()
            .iter()
            .map(|s| format!("{}: {} ({})", s.service, s.span.name, s.trace_id()))
            .collect()
    }
}

/// The one span named `name` among `spans`.
pub fn one<'a>(spans: &'a [Received], name: &str) -> &'a Received {
    let found: Vec<&Received> = spans.iter().filter(|s| s.span.name == name).collect();
    assert_eq!(found.len(), 1, "one span `{name}` in {spans:#?}");
    found[0]
}

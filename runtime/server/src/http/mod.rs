//! The HTTP side of the server: the JSON API under `/api/v1/` and the console (a web UI whose
//! assets are compiled into the binary) at `/`.
//!
//! Served beside gRPC on the same port by default (tonic accepts HTTP/1.1 and h2c and routes
//! by path), or on a listener of its own (`--http`). Every API handler turns its request into
//! the gRPC request message and calls the same `WorkflowService` implementation the gRPC API
//! uses, so one place decides what a request may do and what it answers.
//!
//! - `api`: the JSON API and how gRPC statuses become HTTP errors;
//! - `/metrics`: the Prometheus exposition (see `telemetry`);
//! - `assets`: the console's HTML, CSS and JavaScript.

mod api;
mod assets;

use std::sync::Arc;

use crate::workflow_service::WorkflowApi;

/// The API, the console and the metrics as one router.
pub(crate) fn router(api: Arc<WorkflowApi>) -> axum::Router {
    let metrics_api = api.clone();
    assets::routes().merge(api::routes(api)).route(
        "/metrics",
        axum::routing::get(move |headers: axum::http::HeaderMap| {
            metrics(metrics_api.clone(), headers)
        }),
    )
}

async fn metrics(
    api: Arc<WorkflowApi>,
    headers: axum::http::HeaderMap,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    match api.metrics_text(api::grpc_request(&headers, ())).await {
        Err(status) => api::ApiError::from(status).into_response(),
        Ok(Some(text)) => (
            [(
                axum::http::header::CONTENT_TYPE,
                weft_telemetry::metrics::CONTENT_TYPE,
            )],
            text,
        )
            .into_response(),
        Ok(None) => (
            axum::http::StatusCode::NOT_FOUND,
            "metrics are off on this server (started with --no-metrics or `metrics = false`)\n",
        )
            .into_response(),
    }
}

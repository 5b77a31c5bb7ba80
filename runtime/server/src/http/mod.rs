//! The HTTP side of the server: the JSON API under `/api/v1/` and the console (a web UI whose
//! assets are compiled into the binary) at `/`.
//!
//! Served beside gRPC on the same port by default (tonic accepts HTTP/1.1 and h2c and routes
//! by path), or on a listener of its own (`--http`). Every API handler turns its request into
//! the gRPC request message and calls the same `WorkflowService` implementation the gRPC API
//! uses, so one place decides what a request may do and what it answers.
//!
//! - `api`: the JSON API and how gRPC statuses become HTTP errors;
//! - `assets`: the console's HTML, CSS and JavaScript.

mod api;
mod assets;

use std::sync::Arc;

use crate::workflow_service::WorkflowApi;

/// The API and the console as one router.
pub(crate) fn router(api: Arc<WorkflowApi>) -> axum::Router {
    assets::routes().merge(api::routes(api))
}

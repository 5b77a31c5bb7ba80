//! The JSON API (`/api/v1/`): the gRPC `WorkflowService` over HTTP for browsers and curl.
//!
//! Each handler builds the gRPC request message, calls the service, and writes the answer as
//! JSON. Payloads holding JSON are written as that JSON, however it was laid out; other bytes
//! as the history file writes them (`{"$bytes": base64}`). A failure is `{"error": {"code": "NOT_FOUND", "message": ...}}`
//! with the gRPC code's usual HTTP status.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use tonic::Code;
use weft_engine::weft_history::Payload;

use crate::MAX_COMPONENT_BYTES;
use crate::proto::{self, workflow_service_server::WorkflowService};
use crate::workflow_service::WorkflowApi;

type Api = State<Arc<WorkflowApi>>;

pub(super) fn routes(api: Arc<WorkflowApi>) -> axum::Router {
    axum::Router::new()
        .route("/api/v1/runs", get(list_runs))
        .route("/api/v1/runs/counts", get(count_runs))
        .route("/api/v1/workflows", post(start))
        .route("/api/v1/workflows/{id}", get(describe))
        .route("/api/v1/workflows/{id}/history", get(history))
        .route("/api/v1/workflows/{id}/history.json", get(history_file))
        .route("/api/v1/workflows/{id}/result", get(result))
        .route("/api/v1/workflows/{id}/signal", post(signal))
        .route("/api/v1/workflows/{id}/cancel", post(cancel))
        .route("/api/v1/workflows/{id}/terminate", post(terminate))
        .route(
            "/api/v1/modules",
            get(modules)
                .post(upload)
                .layer(DefaultBodyLimit::max(MAX_COMPONENT_BYTES + 1024)),
        )
        .route("/api/v1/queues", get(queues))
        .route("/api/v1/login", post(login))
        .route("/api/v1/logout", post(logout))
        .route("/api/v1/{*rest}", axum::routing::any(unknown_endpoint))
        .with_state(api)
}

/// An API failure: a gRPC status, answered as JSON with the matching HTTP status.
pub(super) struct ApiError(tonic::Status);

impl From<tonic::Status> for ApiError {
    fn from(status: tonic::Status) -> Self {
        ApiError(status)
    }
}

fn bad_request(message: impl Into<String>) -> ApiError {
    ApiError(tonic::Status::invalid_argument(message))
}

/// The HTTP status for a gRPC code (the mapping of `google.rpc.Code`).
fn http_status(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => {
            StatusCode::BAD_REQUEST
        }
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Cancelled => StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::Unknown | Code::Internal | Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// `NOT_FOUND` for `Code::NotFound`, as grpcurl and the gRPC docs spell codes.
fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": {
            "code": code_name(self.0.code()),
            "message": self.0.message(),
        }});
        (http_status(self.0.code()), Json(body)).into_response()
    }
}

type ApiResult = Result<Json<Value>, ApiError>;

/// The gRPC request for `message`, carrying the HTTP request's credentials and trace context
/// as gRPC metadata,
/// so whatever checks a gRPC call checks an HTTP one the same way.
pub(super) fn grpc_request<T>(headers: &HeaderMap, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    // The header, else the console's `weft_token` cookie.
    let cookie = || {
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .find_map(|c| c.trim().strip_prefix("weft_token="))
            .map(|t| format!("Bearer {t}"))
    };
    if let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(cookie)
        .and_then(|v| v.parse().ok())
    {
        request.metadata_mut().insert("authorization", value);
    }
    // Set by the request layer to the API call's own span: runs started here join its trace.
    if let Some(value) = headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
    {
        request.metadata_mut().insert("traceparent", value);
    }
    request
}

/// A payload as the console and API readers see it: JSON as JSON, however it is laid out.
fn payload(bytes: Vec<u8>) -> Value {
    Payload(bytes).to_display_json()
}

/// A JSON value as payload bytes (compact JSON); absent is `null`.
fn payload_bytes(value: Option<&Value>) -> Vec<u8> {
    serde_json::to_vec(value.unwrap_or(&Value::Null)).unwrap_or_default()
}

fn status_name(status: i32) -> &'static str {
    match proto::RunStatus::try_from(status) {
        Ok(proto::RunStatus::Running) => "running",
        Ok(proto::RunStatus::Completed) => "completed",
        Ok(proto::RunStatus::Failed) => "failed",
        Ok(proto::RunStatus::ContinuedAsNew) => "continued_as_new",
        Ok(proto::RunStatus::Terminated) => "terminated",
        Ok(proto::RunStatus::Cancelled) => "cancelled",
        Ok(proto::RunStatus::Unspecified) | Err(_) => "unspecified",
    }
}

fn parse_status(name: &str) -> Result<proto::RunStatus, ApiError> {
    Ok(match name {
        "" => proto::RunStatus::Unspecified,
        "running" => proto::RunStatus::Running,
        "completed" => proto::RunStatus::Completed,
        "failed" => proto::RunStatus::Failed,
        "continued_as_new" => proto::RunStatus::ContinuedAsNew,
        "terminated" => proto::RunStatus::Terminated,
        "cancelled" => proto::RunStatus::Cancelled,
        other => {
            return Err(bad_request(format!(
                "status `{other}` is not one of running, completed, failed, continued_as_new, \
                 terminated, cancelled"
            )));
        }
    })
}

fn error_json(e: Option<proto::ErrorInfo>) -> Value {
    match e {
        Some(e) => json!({"kind": e.kind, "message": e.message, "attempts": e.attempts}),
        None => Value::Null,
    }
}

fn run_json(r: &proto::WorkflowRun) -> Value {
    json!({
        "workflow_id": r.workflow_id,
        "run_id": r.run_id,
        "workflow_type": r.workflow_type,
        "task_queue": r.task_queue,
        "status": status_name(r.status),
        "run_number": r.run_number,
        "module_id": r.module_id,
        "started_at_ms": r.started_at_ms,
        "closed_at_ms": if r.closed_at_ms == 0 { Value::Null } else { r.closed_at_ms.into() },
        "history_length": r.history_length,
        "parent_close_policy": nonempty(r.parent_close_policy.clone()),
    })
}

#[derive(Deserialize)]
struct ListQuery {
    #[serde(default)]
    status: String,
    #[serde(default, rename = "type")]
    workflow_type: String,
    #[serde(default)]
    prefix: String,
    #[serde(default)]
    page_size: u32,
    #[serde(default)]
    page_token: String,
}

async fn list_runs(State(api): Api, headers: HeaderMap, Query(q): Query<ListQuery>) -> ApiResult {
    let request = proto::ListWorkflowsRequest {
        status: parse_status(&q.status)? as i32,
        workflow_type: q.workflow_type,
        page_size: q.page_size,
        page_token: q.page_token,
        workflow_id_prefix: q.prefix,
    };
    let response = api
        .list_workflows(grpc_request(&headers, request))
        .await?
        .into_inner();
    Ok(Json(json!({
        "runs": response.runs.iter().map(run_json).collect::<Vec<_>>(),
        "next_page_token": response.next_page_token,
    })))
}

#[derive(Deserialize)]
struct CountQuery {
    #[serde(default, rename = "type")]
    workflow_type: String,
    #[serde(default)]
    prefix: String,
}

async fn count_runs(State(api): Api, headers: HeaderMap, Query(q): Query<CountQuery>) -> ApiResult {
    let request = proto::CountWorkflowsRequest {
        workflow_type: q.workflow_type,
        workflow_id_prefix: q.prefix,
    };
    let response = api
        .count_workflows(grpc_request(&headers, request))
        .await?
        .into_inner();
    let counts: serde_json::Map<String, Value> = response
        .counts
        .iter()
        .map(|c| (status_name(c.status).to_owned(), c.count.into()))
        .collect();
    Ok(Json(json!({"counts": counts, "total": response.total})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StartBody {
    workflow_type: String,
    workflow_id: String,
    #[serde(default)]
    input: Option<Value>,
    #[serde(default)]
    task_queue: String,
    #[serde(default)]
    return_existing: bool,
}

/// A JSON body, or a 400 that says what is wrong with it.
fn json_body<T: serde::de::DeserializeOwned>(body: &Bytes, what: &str) -> Result<T, ApiError> {
    let body: &[u8] = if body.is_empty() { b"{}" } else { body };
    serde_json::from_slice(body)
        .map_err(|e| bad_request(format!("the body of {what} is not the expected JSON: {e}")))
}

async fn start(State(api): Api, headers: HeaderMap, body: Bytes) -> ApiResult {
    let b: StartBody = json_body(&body, "a start")?;
    let request = proto::StartWorkflowRequest {
        workflow_type: b.workflow_type,
        workflow_id: b.workflow_id,
        input: payload_bytes(b.input.as_ref()),
        task_queue: b.task_queue,
        return_existing: b.return_existing,
    };
    let response = api
        .start_workflow(grpc_request(&headers, request))
        .await?
        .into_inner();
    Ok(Json(
        json!({"run_id": response.run_id, "existing": response.existing}),
    ))
}

#[derive(Deserialize)]
struct RunQuery {
    #[serde(default)]
    run_id: String,
    #[serde(default)]
    logs: bool,
}

async fn describe(
    State(api): Api,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<RunQuery>,
) -> ApiResult {
    let request = proto::DescribeWorkflowRequest {
        workflow_id: id,
        run_id: q.run_id,
    };
    let d = api
        .describe_workflow(grpc_request(&headers, request))
        .await?
        .into_inner();
    let run = d.run.as_ref().map(run_json).unwrap_or(Value::Null);
    let closed = d.run.as_ref().is_some_and(|r| r.closed_at_ms != 0);
    Ok(Json(json!({
        "run": run,
        "input": payload(d.input),
        "output": if closed && d.error.is_none() { payload(d.output) } else { Value::Null },
        "error": error_json(d.error),
        "pending_activities": d.pending_activities.into_iter().map(|a| json!({
            "handle": a.handle,
            "activity_name": a.activity_name,
            "task_queue": a.task_queue,
            "attempt": a.attempt,
            "scheduled_at_ms": a.scheduled_at_ms,
            "running": a.running,
            "claimed_at_ms": nonzero(a.claimed_at_ms),
            "last_heartbeat_ms": nonzero(a.last_heartbeat_ms),
            "heartbeat_details": if a.heartbeat_details.is_empty() { Value::Null } else { payload(a.heartbeat_details) },
            "last_failure": error_json(a.last_failure),
            "lease_until_ms": nonzero(a.lease_until_ms),
        })).collect::<Vec<_>>(),
        "pending_timers": d.pending_timers.into_iter().map(|t| json!({
            "handle": t.handle, "fire_at_ms": t.fire_at_ms,
        })).collect::<Vec<_>>(),
        "awaited_signals": d.awaited_signals.into_iter().map(|s| json!({
            "handle": s.handle, "name": s.name,
        })).collect::<Vec<_>>(),
        "retried_attempts": d.retried_attempts.into_iter().map(|a| json!({
            "handle": a.handle,
            "attempt": a.attempt,
            "started_at_ms": nonzero(a.started_at_ms),
            "ended_at_ms": a.ended_at_ms,
            "error_kind": a.error_kind,
            "error_message": a.error_message,
            "retry_at_ms": a.retry_at_ms,
        })).collect::<Vec<_>>(),
        "parent": if d.parent_run_id.is_empty() { Value::Null } else {
            json!({"workflow_id": d.parent_workflow_id, "run_id": d.parent_run_id})
        },
        "children": d.children.iter().map(run_json).collect::<Vec<_>>(),
        "previous_run_id": nonempty(d.previous_run_id),
        "next_run_id": nonempty(d.next_run_id),
    })))
}

fn nonzero(v: u64) -> Value {
    if v == 0 { Value::Null } else { v.into() }
}

fn nonempty(s: String) -> Value {
    if s.is_empty() { Value::Null } else { s.into() }
}

async fn fetch_history(
    api: &WorkflowApi,
    headers: &HeaderMap,
    id: String,
    q: RunQuery,
) -> Result<proto::GetHistoryResponse, ApiError> {
    let request = proto::GetHistoryRequest {
        workflow_id: id,
        run_id: q.run_id,
        include_logs: q.logs,
    };
    Ok(api
        .get_history(grpc_request(headers, request))
        .await?
        .into_inner())
}

/// The history as a JSON value with, on `?logs=true`, the guest's log lines.
async fn history(
    State(api): Api,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<RunQuery>,
) -> ApiResult {
    let h = fetch_history(&api, &headers, id, q).await?;
    let history: Value = serde_json::from_str(&h.history_json)
        .map_err(|e| ApiError(tonic::Status::internal(format!("history is not JSON: {e}"))))?;
    Ok(Json(json!({
        "history": history,
        "logs": h.logs.into_iter().map(|l| json!({
            "after_event": l.after_event, "level": l.level, "message": l.message,
        })).collect::<Vec<_>>(),
        "logs_error": nonempty(h.logs_error),
    })))
}

/// The history file exactly as `weft history --json` prints it, as a download.
async fn history_file(
    State(api): Api,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(mut q): Query<RunQuery>,
) -> Result<Response, ApiError> {
    q.logs = false;
    let h = fetch_history(&api, &headers, id, q).await?;
    let run_id = serde_json::from_str::<Value>(&h.history_json)
        .ok()
        .and_then(|v| v.get("run_id")?.as_str().map(str::to_owned))
        .unwrap_or_default();
    // Run ids are server-made (hex and dashes); keep the file name to those characters.
    let file: String = run_id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect();
    let disposition = format!("attachment; filename=\"history-{file}.json\"");
    Ok((
        [
            (header::CONTENT_TYPE, "application/json".to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        format!("{}\n", h.history_json),
    )
        .into_response())
}

#[derive(Deserialize)]
struct ResultQuery {
    #[serde(default)]
    run_id: String,
    #[serde(default)]
    wait: bool,
    #[serde(default)]
    timeout_ms: u32,
}

async fn result(
    State(api): Api,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<ResultQuery>,
) -> ApiResult {
    let request = proto::GetWorkflowResultRequest {
        workflow_id: id,
        run_id: q.run_id,
        wait: q.wait,
        wait_timeout_ms: q.timeout_ms,
    };
    let r = api
        .get_workflow_result(grpc_request(&headers, request))
        .await?
        .into_inner();
    let completed = r.status == proto::RunStatus::Completed as i32;
    Ok(Json(json!({
        "run_id": r.run_id,
        "status": status_name(r.status),
        "output": if completed { payload(r.output) } else { Value::Null },
        "error": error_json(r.error),
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignalBody {
    name: String,
    #[serde(default)]
    payload: Option<Value>,
}

async fn signal(
    State(api): Api,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    let b: SignalBody = json_body(&body, "a signal")?;
    let request = proto::SignalWorkflowRequest {
        workflow_id: id,
        signal_name: b.name,
        payload: payload_bytes(b.payload.as_ref()),
    };
    api.signal_workflow(grpc_request(&headers, request)).await?;
    Ok(Json(json!({})))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ReasonBody {
    #[serde(default)]
    reason: String,
}

async fn cancel(
    State(api): Api,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    let b: ReasonBody = json_body(&body, "a cancel")?;
    let request = proto::CancelWorkflowRequest {
        workflow_id: id,
        reason: b.reason,
    };
    let r = api
        .cancel_workflow(grpc_request(&headers, request))
        .await?
        .into_inner();
    Ok(Json(
        json!({"run_id": r.run_id, "newly_requested": r.newly_requested}),
    ))
}

async fn terminate(
    State(api): Api,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    let b: ReasonBody = json_body(&body, "a terminate")?;
    let request = proto::TerminateWorkflowRequest {
        workflow_id: id,
        reason: b.reason,
    };
    api.terminate_workflow(grpc_request(&headers, request))
        .await?;
    Ok(Json(json!({})))
}

async fn modules(State(api): Api, headers: HeaderMap) -> ApiResult {
    let r = api
        .list_modules(grpc_request(&headers, proto::ListModulesRequest {}))
        .await?
        .into_inner();
    Ok(Json(json!({
        "modules": r.modules.into_iter().map(|m| json!({
            "workflow_type": m.workflow_type,
            "module_id": m.module_id,
            "size_bytes": m.size_bytes,
            "uploaded_at_ms": m.uploaded_at_ms,
            "newest": m.newest,
            "running_runs": m.running_runs,
            "closed_runs": m.closed_runs,
        })).collect::<Vec<_>>(),
    })))
}

#[derive(Deserialize)]
struct UploadQuery {
    #[serde(default, rename = "type")]
    workflow_type: String,
}

/// `POST /api/v1/modules?type=T` with the component's bytes as the body.
async fn upload(
    State(api): Api,
    headers: HeaderMap,
    Query(q): Query<UploadQuery>,
    body: Bytes,
) -> ApiResult {
    let request = proto::UploadModuleRequest {
        vet_recent: 0,
        workflow_type: q.workflow_type,
        component: body.to_vec(),
    };
    let r = api
        .upload_module(grpc_request(&headers, request))
        .await?
        .into_inner();
    Ok(Json(json!({"module_id": r.module_id})))
}

async fn queues(State(api): Api, headers: HeaderMap) -> ApiResult {
    let r = api
        .list_task_queues(grpc_request(&headers, proto::ListTaskQueuesRequest {}))
        .await?
        .into_inner();
    Ok(Json(json!({
        "queues": r.queues.into_iter().map(|q| json!({
            "name": q.name,
            "ready_tasks": q.ready_tasks,
            "running_tasks": q.running_tasks,
            "backing_off_tasks": q.backing_off_tasks,
            "oldest_ready_age_ms": q.oldest_ready_age_ms,
            "workers": q.workers.into_iter().map(|w| json!({
                "worker_id": w.worker_id, "last_poll_ms": w.last_poll_ms,
            })).collect::<Vec<_>>(),
            "activities": q.activities.into_iter().map(|a| json!({
                "activity_name": a.activity_name,
                "completed": a.completed,
                "failed": a.failed,
                "timed_out": a.timed_out,
                "last_at_ms": nonzero(a.last_at_ms),
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })))
}

#[derive(Deserialize)]
struct Login {
    token: String,
}

/// The console's sign-in: checks the token and keeps it in an HttpOnly, same-site cookie, so
/// the page's script never holds it and other sites cannot send it.
async fn login(State(api): Api, Json(body): Json<Login>) -> Result<Response, ApiError> {
    let principal = api.check_token(body.token.trim()).await?;
    let token = body.token.trim();
    if !token
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return Err(ApiError(tonic::Status::unauthenticated("unknown token")));
    }
    let secure = if api.secure_cookies() { "; Secure" } else { "" };
    let cookie = format!("weft_token={token}; Path=/; HttpOnly; SameSite=Strict{secure}");
    Ok((
        [(header::SET_COOKIE, cookie)],
        Json(json!({"name": principal.name, "role": principal.role.as_str()})),
    )
        .into_response())
}

async fn logout() -> Response {
    (
        [(
            header::SET_COOKIE,
            "weft_token=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0",
        )],
        Json(json!({})),
    )
        .into_response()
}

async fn unknown_endpoint(uri: axum::http::Uri) -> ApiError {
    ApiError(tonic::Status::not_found(format!(
        "no API endpoint `{}`; the endpoints are listed in README.md (\"The console and its API\")",
        uri.path()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_code_maps_to_an_http_status_and_a_name() {
        assert_eq!(http_status(Code::NotFound), StatusCode::NOT_FOUND);
        assert_eq!(http_status(Code::InvalidArgument), StatusCode::BAD_REQUEST);
        assert_eq!(http_status(Code::AlreadyExists), StatusCode::CONFLICT);
        assert_eq!(
            http_status(Code::FailedPrecondition),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(code_name(Code::FailedPrecondition), "FAILED_PRECONDITION");
        assert_eq!(
            parse_status("nope").err().map(|e| e.0.code()),
            Some(Code::InvalidArgument)
        );
    }
}

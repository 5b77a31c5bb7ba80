//! Fuzz targets: whatever bytes arrive, weft answers with an error and never panics.
//!
//! Run by `cargo test` for one second each (bolero's random engine on the stable toolchain),
//! starting from the committed corpus in `tests/__fuzz__/<target>/corpus/`. Longer:
//! `BOLERO_RANDOM_TEST_TIME_MS=600000 cargo test --release -p weft-fuzz -- <target>` (see
//! fuzz/README.md). A crash found is fixed and its input added to the corpus, so it is
//! replayed by every later run.

use std::sync::OnceLock;
use std::time::Duration;

use prost::Message;
use weft_history::{ErrorInfo, History, Payload};
use weft_proto::{self as proto};

/// History files: parsed or refused, never a panic; a parsed one checks or is refused, and
/// writes back to a file that parses to the same history.
#[test]
fn history_file() {
    bolero::check!().for_each(|bytes: &[u8]| {
        if let Ok(history) = History::from_json(bytes) {
            let _ = history.check();
            let again = History::from_json(history.to_json_pretty().as_bytes())
                .expect("a history weft wrote parses");
            assert_eq!(again, history);
        }
    });
}

/// Payloads and error infos as JSON (what the API and history files carry).
#[test]
fn payload_json() {
    bolero::check!().for_each(|bytes: &[u8]| {
        if let Ok(payload) = serde_json::from_slice::<Payload>(bytes) {
            let json = serde_json::to_vec(&payload).expect("a payload encodes");
            let again: Payload = serde_json::from_slice(&json).expect("and decodes");
            assert_eq!(again, payload);
        }
        let _ = serde_json::from_slice::<ErrorInfo>(bytes);
    });
}

fn engine() -> &'static weft_engine::Engine {
    static ENGINE: OnceLock<weft_engine::Engine> = OnceLock::new();
    ENGINE.get_or_init(|| weft_engine::Engine::new(Default::default()).expect("an engine"))
}

/// Component validation on arbitrary bytes.
#[test]
fn component_bytes() {
    bolero::check!().for_each(|bytes: &[u8]| {
        let _ = engine().load(bytes);
    });
}

/// Component validation on structurally valid Wasm modules (wasm-smith), which must be
/// refused as not being weft components, by name.
#[test]
fn smith_modules() {
    bolero::check!().for_each(|bytes: &[u8]| {
        let mut u = arbitrary::Unstructured::new(bytes);
        if let Ok(module) = wasm_smith::Module::new(wasm_smith::Config::default(), &mut u) {
            match engine().load(&module.to_bytes()) {
                Ok(_) => panic!("a core module is not a component"),
                Err(error) => assert!(!error.to_string().is_empty()),
            }
        }
    });
}

/// Component validation on structurally valid components (wasm-smith) with arbitrary imports
/// and exports: accepted only if they match the workflow world, never a panic.
#[test]
fn smith_components() {
    bolero::check!().for_each(|bytes: &[u8]| {
        let mut u = arbitrary::Unstructured::new(bytes);
        if let Ok(component) = wasm_smith::Component::new(wasm_smith::Config::default(), &mut u)
            && let Err(error) = engine().load(&component.to_bytes())
        {
            assert!(!error.to_string().is_empty());
        }
    });
}

/// A server over a fresh SQLite file, in this process, and clients of it.
struct Fixture {
    runtime: tokio::runtime::Runtime,
    workflows: proto::workflow_service_client::WorkflowServiceClient<tonic::transport::Channel>,
    workers: proto::worker_service_client::WorkerServiceClient<tonic::transport::Channel>,
    admin: proto::admin_service_client::AdminServiceClient<tonic::transport::Channel>,
    _dir: tempfile::TempDir,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let config = weft_server::ServerConfig {
            database: format!("sqlite:{}", dir.path().join("weft.db").display()),
            ..Default::default()
        };
        let (workflows, workers, admin) = runtime.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let url = format!("http://{}", listener.local_addr().unwrap());
            tokio::spawn(weft_server::serve(config, listener, std::future::pending()));
            let channel = loop {
                match tonic::transport::Endpoint::from_shared(url.clone())
                    .unwrap()
                    .connect()
                    .await
                {
                    Ok(c) => break c,
                    Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                }
            };
            (
                proto::workflow_service_client::WorkflowServiceClient::new(channel.clone())
                    .max_encoding_message_size(usize::MAX),
                proto::worker_service_client::WorkerServiceClient::new(channel.clone()),
                proto::admin_service_client::AdminServiceClient::new(channel),
            )
        });
        Fixture {
            runtime,
            workflows,
            workers,
            admin,
            _dir: dir,
        }
    })
}

/// Every gRPC request: the first byte picks the method, the rest is decoded as its message
/// and sent to a real server. Whatever it holds, the answer is a status a client can act on,
/// never INTERNAL or UNKNOWN (a panic answers INTERNAL), and the server keeps serving.
#[test]
fn grpc_requests() {
    // A failed input is reported, not recovered from: the fixture need not be unwind safe.
    let f = std::panic::AssertUnwindSafe(fixture());
    bolero::check!().for_each(|bytes: &[u8]| {
        let Some((&method, body)) = bytes.split_first() else {
            return;
        };
        let (mut w, mut k, mut a) = (f.workflows.clone(), f.workers.clone(), f.admin.clone());
        let code = f.runtime.block_on(async move {
            macro_rules! call {
                ($client:ident . $rpc:ident($ty:ty) $(, |$m:ident| $fix:expr)?) => {{
                    let Ok(message) = <$ty>::decode(body) else { return None };
                    $(let mut $m = message; $fix; let message = $m;)?
                    match $client.$rpc(message).await {
                        Ok(_) => tonic::Code::Ok,
                        Err(status) => status.code(),
                    }
                }};
            }
            Some(match method % 19 {
                0 => call!(w.upload_module(proto::UploadModuleRequest)),
                1 => call!(w.start_workflow(proto::StartWorkflowRequest)),
                2 => call!(
                    w.get_workflow_result(proto::GetWorkflowResultRequest),
                    |m| m.wait = false
                ),
                3 => call!(w.describe_workflow(proto::DescribeWorkflowRequest)),
                4 => call!(w.list_workflows(proto::ListWorkflowsRequest)),
                5 => call!(w.get_history(proto::GetHistoryRequest)),
                6 => call!(w.signal_workflow(proto::SignalWorkflowRequest)),
                7 => call!(w.cancel_workflow(proto::CancelWorkflowRequest)),
                8 => call!(w.terminate_workflow(proto::TerminateWorkflowRequest)),
                9 => call!(w.count_workflows(proto::CountWorkflowsRequest)),
                10 => call!(w.list_modules(proto::ListModulesRequest)),
                11 => call!(w.list_task_queues(proto::ListTaskQueuesRequest)),
                12 => call!(k.poll_activity_task(proto::PollActivityTaskRequest), |m| {
                    m.poll_timeout_ms = 1
                }),
                13 => call!(k.complete_activity_task(proto::CompleteActivityTaskRequest)),
                14 => call!(k.fail_activity_task(proto::FailActivityTaskRequest)),
                15 => call!(k.record_heartbeat(proto::RecordHeartbeatRequest)),
                16 => call!(a.create_token(proto::CreateTokenRequest)),
                17 => call!(a.revoke_token(proto::RevokeTokenRequest)),
                _ => call!(a.list_audit(proto::ListAuditRequest)),
            })
        });
        if let Some(code) = code {
            assert!(
                !matches!(code, tonic::Code::Internal | tonic::Code::Unknown),
                "method {} answered {code:?}",
                method % 19
            );
        }
    });
    // Still serving.
    let f = fixture();
    let mut w = f.workflows.clone();
    f.runtime
        .block_on(w.list_modules(proto::ListModulesRequest {}))
        .expect("the server serves after the fuzzing");
}

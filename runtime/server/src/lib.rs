//! The weft server: keeps every run durable, runs workflow code on the engine, hands activity
//! tasks to native workers over gRPC, and fires timers and timeouts.
//!
//! - [`executor`]: the one owner of this node's runs; group-commits their steps;
//! - `workflow_service` / `worker_service`: the gRPC API (`proto/weft/v1/weft.proto`);
//! - `sweeper`: due timers and activity tasks whose lease ran out (retries, timeouts);
//! - `http`: the JSON API and the web console, beside gRPC on the same port or on their own;
//! - [`serve`]: wires them to a listener, with health and reflection services.

mod activity_policy;
mod admin_service;
pub mod auth;
pub mod close_waiters;
pub mod entropy;
pub mod executor;
mod http;
pub mod issued_claims;
pub mod pollers;
pub mod queue_activity;
mod rate;
mod run_cache;
mod start_checks;
mod sweeper;
pub mod telemetry;
pub mod worker_service;
pub mod workflow_service;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use weft_engine::{Clock, Engine, EngineConfig, SystemClock};
use weft_store::Store;

pub use admin_service::{audit_entry as admin_audit_entry, token_info as admin_token_info};
pub use executor::Executor;

pub use weft_proto as proto;

/// Largest payload (input, output, signal, heartbeat details) the API accepts.
pub const MAX_PAYLOAD_BYTES: usize = 2 << 20;
/// Largest component `UploadModule` accepts.
pub const MAX_COMPONENT_BYTES: usize = 64 << 20;

/// Why a server operation failed; mapped to a gRPC status.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("no module is registered for workflow type `{0}`; upload one with `weft upload`")]
    UnknownWorkflowType(String),
    #[error(
        "workflow `{workflow_id}` already has a running run ({run_id}); set return_existing to get it"
    )]
    AlreadyRunning { workflow_id: String, run_id: String },
    #[error("no run `{0}`")]
    UnknownRun(String),
    #[error("no workflow with id `{0}`")]
    UnknownWorkflow(String),
    #[error("run `{0}` is closed")]
    RunClosed(String),
    #[error("delivery refused: {0}")]
    Delivery(String),
    #[error("storage failed: {0}")]
    Storage(String),
    #[error("the server is shutting down")]
    ShuttingDown,
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<weft_store::StoreError> for ServerError {
    fn from(e: weft_store::StoreError) -> Self {
        ServerError::Storage(e.to_string())
    }
}

impl From<ServerError> for tonic::Status {
    fn from(e: ServerError) -> Self {
        let message = e.to_string();
        match e {
            ServerError::UnknownWorkflowType(_)
            | ServerError::UnknownRun(_)
            | ServerError::UnknownWorkflow(_) => tonic::Status::not_found(message),
            ServerError::AlreadyRunning { .. } => tonic::Status::already_exists(message),
            ServerError::RunClosed(_) | ServerError::Delivery(_) => {
                tonic::Status::failed_precondition(message)
            }
            ServerError::Storage(_) | ServerError::ShuttingDown => {
                tonic::Status::unavailable(message)
            }
            ServerError::Internal(_) => tonic::Status::internal(message),
        }
    }
}

/// How to run a server.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// `sqlite:path` or `postgres://...`.
    pub database: String,
    /// Runs kept in memory between activations; more are rebuilt from history on demand.
    pub max_cached_runs: usize,
    pub engine: EngineConfig,
    /// How often timers, expired tasks and routed commands are looked for.
    pub sweep_interval: Duration,
    /// This node's id among the nodes sharing the database; random when not set.
    pub node_id: Option<String>,
    /// Serve the console and the JSON API on this address of their own instead of beside
    /// gRPC on the main listener.
    pub http_listen: Option<SocketAddr>,
    /// Record metrics and serve them at `/metrics`.
    pub metrics: bool,
    /// Export traces to this OTLP/gRPC collector (`http://host:4317`); none when `None`.
    pub otlp_endpoint: Option<String>,
    /// Require a bearer token on every call (see [`auth`]).
    pub auth: bool,
    /// Serve on a non-loopback address without TLS and auth (refused otherwise).
    pub insecure: bool,
    /// TLS on every listener; `None`: plain text.
    pub tls: Option<TlsFiles>,
    /// Limits on what callers may ask.
    pub api_limits: ApiLimits,
    /// Client certificates (by common name) that stand for a role, with `auth` and mTLS.
    pub cert_roles: Vec<auth::CertRole>,
}

/// Instance slots the server's engine pools beyond one per cached run: runs being stepped,
/// queries and replays.
const POOL_HEADROOM: u32 = 1_024;

/// The server's engine: instance memory pooled (a slot per cached run plus
/// [`POOL_HEADROOM`]) unless the configuration chose, or the address space cannot hold the
/// pool, in which case instances are allocated on demand.
fn server_engine(config: &ServerConfig) -> Result<Engine, weft_engine::EngineError> {
    if config.engine.pooling_instances.is_some() {
        return Engine::new(config.engine.clone());
    }
    let slots = u32::try_from(config.max_cached_runs)
        .unwrap_or(u32::MAX)
        .saturating_add(POOL_HEADROOM);
    let pooled = EngineConfig {
        pooling_instances: Some(slots),
        ..config.engine.clone()
    };
    match Engine::new(pooled) {
        Ok(engine) => Ok(engine),
        Err(error) => {
            tracing::warn!(%error, slots,
                "cannot reserve the instance pool; allocating instances on demand (lower --max-cached-runs to pool)");
            Engine::new(config.engine.clone())
        }
    }
}

/// Limits on callers (per-run limits are in [`weft_engine::EngineConfig::limits`]).
#[derive(Clone, Debug)]
pub struct ApiLimits {
    /// Runs one token (or, without auth, everyone) may start per second; 0: no limit.
    pub starts_per_second_per_token: f64,
    /// Longest a module upload may spend compiling; a slower one is refused.
    pub module_compile_timeout: Duration,
    /// Module versions kept per workflow type; an upload past it is refused.
    pub max_module_versions: usize,
}

impl Default for ApiLimits {
    fn default() -> Self {
        ApiLimits {
            starts_per_second_per_token: 0.0,
            module_compile_timeout: Duration::from_secs(60),
            max_module_versions: 100,
        }
    }
}

/// PEM files for TLS.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    pub cert: std::path::PathBuf,
    pub key: std::path::PathBuf,
    /// Require client certificates signed by this CA (mutual TLS).
    pub client_ca: Option<std::path::PathBuf>,
}

impl TlsFiles {
    fn server_config(&self) -> Result<tonic::transport::ServerTlsConfig, StartError> {
        let read = |what: &str, path: &std::path::Path| {
            std::fs::read(path).map_err(|e| {
                StartError::Tls(format!("cannot read the {what} `{}`: {e}", path.display()))
            })
        };
        let identity = tonic::transport::Identity::from_pem(
            read("certificate (--tls-cert)", &self.cert)?,
            read("key (--tls-key)", &self.key)?,
        );
        let mut config = tonic::transport::ServerTlsConfig::new().identity(identity);
        if let Some(ca) = &self.client_ca {
            config = config.client_ca_root(tonic::transport::Certificate::from_pem(read(
                "client CA (--tls-client-ca)",
                ca,
            )?));
        }
        Ok(config)
    }
}

impl ServerConfig {
    /// What can be wrong with the settings themselves, found before anything is bound or
    /// opened: a client certificate mapped to a role that does not exist, or client
    /// certificates without mutual TLS to verify them.
    pub fn check(&self) -> Result<(), StartError> {
        for mapped in &self.cert_roles {
            if auth::Role::parse(&mapped.role).is_none() {
                return Err(StartError::Tls(format!(
                    "client certificate `{}` maps to unknown role `{}`: use admin, operator, reader or worker",
                    mapped.common_name, mapped.role
                )));
            }
        }
        if !self.cert_roles.is_empty() && self.tls.as_ref().is_none_or(|t| t.client_ca.is_none()) {
            return Err(StartError::Tls(
                "client_certs map certificates to roles, which needs mutual TLS: set tls_client_ca"
                    .into(),
            ));
        }
        Ok(())
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            database: "sqlite:weft.db".into(),
            max_cached_runs: 10_000,
            engine: EngineConfig::default(),
            sweep_interval: Duration::from_millis(20),
            node_id: None,
            http_listen: None,
            metrics: true,
            otlp_endpoint: None,
            auth: false,
            insecure: false,
            tls: None,
            api_limits: ApiLimits::default(),
            cert_roles: Vec::new(),
        }
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot open the database `{database}`: {error}")]
    Database {
        database: String,
        error: weft_store::StoreError,
    },
    #[error(transparent)]
    Engine(#[from] weft_engine::EngineError),
    #[error("cannot serve: {0}")]
    Serve(String),
    #[error(transparent)]
    Telemetry(#[from] weft_telemetry::TelemetryError),
    #[error(
        "refusing to serve on {addr} without TLS and tokens: anyone who reaches it could upload code and read every payload. \
         Turn both on (--tls-cert FILE --tls-key FILE --auth), serve on 127.0.0.1, \
         or pass --insecure to accept the risk"
    )]
    Unsafe { addr: SocketAddr },
    #[error("TLS: {0}")]
    Tls(String),
    #[error("cannot make the first admin token: {0}")]
    FirstToken(String),
    #[error("cannot listen for HTTP on {addr}: {error}")]
    HttpListen {
        addr: SocketAddr,
        error: std::io::Error,
    },
}

/// What a node needs to start.
pub struct NodeSetup {
    /// This node's id among the nodes sharing the database.
    pub node: String,
    pub engine: Engine,
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    pub max_cached_runs: usize,
    pub sweep_interval: Duration,
    pub auth: auth::Auth,
    pub api_limits: ApiLimits,
    /// Mark the console's cookie `Secure` (the server runs TLS).
    pub secure_cookies: bool,
}

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Store(#[from] weft_store::StoreError),
    #[error("cannot register the node: {0}")]
    Register(ServerError),
}

/// One node, started and wired, without a listener: its executor, its sweeper (spawned),
/// and the services that [`serve`] puts behind gRPC. The deterministic simulation
/// (`runtime/simulation`) calls the services in-process.
pub struct Node {
    pub executor: Executor,
    pub workflow: Arc<workflow_service::WorkflowApi>,
    pub worker: Arc<worker_service::WorkerApi>,
    admin: admin_service::AdminApi,
}

/// What this node's parts share, owned by the node: each part is handed the registries it
/// uses, so that no service reaches into another for them.
#[derive(Clone, Default)]
pub(crate) struct Registries {
    /// The pollers waiting on this node's task queues (the executor hands them tasks).
    pub pollers: Arc<pollers::Pollers>,
    /// The `GetWorkflowResult` calls waiting for runs to close.
    pub close_waiters: Arc<close_waiters::CloseWaiters>,
    /// The task claims this node handed to its workers.
    pub claims: Arc<issued_claims::IssuedClaims>,
    /// What this node saw of its queues' workers and attempts, for the console.
    pub queue_activity: Arc<queue_activity::QueueActivity>,
}

impl Node {
    /// Spawns the executor, takes over what the last process left (one node per SQLite
    /// file), registers the node's lease and spawns the sweeper.
    pub async fn start(setup: NodeSetup) -> Result<Node, NodeError> {
        let NodeSetup {
            node,
            engine,
            store,
            clock,
            max_cached_runs,
            sweep_interval,
            auth,
            api_limits,
            secure_cookies,
        } = setup;
        let registries = Registries::default();
        let executor = Executor::spawn(
            node.clone(),
            engine.clone(),
            store.clone(),
            clock.clone(),
            max_cached_runs,
            &registries,
        );
        if store.single_node() {
            // One server per SQLite file: whatever ran before is gone, its runs are ours now.
            store.adopt_orphans(&node, i64::MAX as u64).await?;
        }
        sweeper::keep_lease(store.as_ref(), &executor, clock.as_ref(), true)
            .await
            .map_err(NodeError::Register)?;
        tokio::spawn(sweeper::run(
            store.clone(),
            executor.clone(),
            registries.clone(),
            clock.clone(),
            sweep_interval,
        ));
        let workflow = Arc::new(
            workflow_service::WorkflowApi::new(
                engine,
                store.clone(),
                executor.clone(),
                registries.clone(),
                clock.clone(),
                auth.clone(),
                api_limits,
            )
            .with_secure_cookies(secure_cookies),
        );
        let admin = admin_service::AdminApi::new(store.clone(), auth.clone(), clock.clone());
        let worker = Arc::new(worker_service::WorkerApi::new(
            store,
            executor.clone(),
            registries,
            clock,
            auth,
        ));
        Ok(Node {
            executor,
            workflow,
            worker,
            admin,
        })
    }
}

/// Opens the database and serves the API on `listener` until `shutdown` resolves.
pub async fn serve(
    config: ServerConfig,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    config.check()?;
    // Safe by default: beyond loopback only with protection, or when told to anyway.
    let exposed = [listener.local_addr().ok(), config.http_listen]
        .into_iter()
        .flatten()
        .find(|a| !a.ip().is_loopback());
    if let Some(addr) = exposed {
        let protected = config.auth && config.tls.is_some();
        if !protected && !config.insecure {
            return Err(StartError::Unsafe { addr });
        }
        if !protected {
            tracing::warn!(%addr, auth = config.auth, tls = config.tls.is_some(),
                "--insecure: serving beyond loopback without TLS and tokens both on; what is off is open to the network");
        }
    }
    let tls = config
        .tls
        .as_ref()
        .map(TlsFiles::server_config)
        .transpose()?;
    // Bound first, like the gRPC listener: a busy address fails the start at once.
    let http_listener = match config.http_listen {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .map_err(|error| StartError::HttpListen { addr, error })?,
        ),
        None => None,
    };
    if config.metrics {
        weft_telemetry::metrics::install()?;
        telemetry::describe();
    }
    if let Some(endpoint) = &config.otlp_endpoint {
        weft_telemetry::traces::install(endpoint, "weft-server")?;
        tracing::info!(endpoint, "exporting traces over OTLP");
    }
    let store: Arc<dyn Store> =
        Arc::new(weft_store::open(&config.database).await.map_err(|error| {
            StartError::Database {
                database: config.database.clone(),
                error,
            }
        })?);
    let engine = server_engine(&config)?;
    let node = config
        .node_id
        .clone()
        .unwrap_or_else(|| format!("node-{:08x}", entropy::random_u64() & 0xffff_ffff));
    let auth = auth::Auth::with_certificates(
        store.clone(),
        config.auth,
        config.cert_roles.clone(),
        Arc::new(SystemClock),
    );
    let Node {
        workflow,
        worker,
        admin,
        ..
    } = Node::start(NodeSetup {
        node: node.clone(),
        engine,
        store: store.clone(),
        clock: Arc::new(SystemClock),
        max_cached_runs: config.max_cached_runs,
        sweep_interval: config.sweep_interval,
        auth: auth.clone(),
        api_limits: config.api_limits.clone(),
        secure_cookies: config.tls.is_some(),
    })
    .await
    .map_err(|error| match error {
        NodeError::Store(error) => StartError::Database {
            database: config.database.clone(),
            error,
        },
        NodeError::Register(e) => StartError::Serve(format!("cannot register node {node}: {e}")),
    })?;

    let (health_reporter, health) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<proto::workflow_service_server::WorkflowServiceServer<workflow_service::WorkflowApi>>()
        .await;
    // Health's descriptors too, so `grpcurl ... grpc.health.v1.Health/Check` works.
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| StartError::Serve(e.to_string()))?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()
        .map_err(|e| StartError::Serve(e.to_string()))?;
    if config.auth {
        first_admin_token(store.as_ref(), SystemClock.now_ms()).await?;
    }
    let addr: Option<SocketAddr> = listener.local_addr().ok();
    let request_layer = telemetry::RequestLayer::new();
    let console = http::router(workflow.clone());
    // The console and its API beside gRPC (one port, one URL), or on a listener of their own.
    let (routes, http_server) = match http_listener {
        None => (tonic::service::Routes::from(console), None),
        Some(http_listener) => {
            tracing::info!(addr = ?http_listener.local_addr().ok(), "console listening");
            // Served by tonic too, so it gets the same TLS as gRPC.
            let mut builder = tonic::transport::Server::builder();
            if let Some(tls) = &tls {
                builder = builder
                    .tls_config(tls.clone())
                    .map_err(|e| StartError::Tls(e.to_string()))?;
            }
            let server = builder
                .accept_http1(true)
                .layer(request_layer.clone())
                .add_routes(tonic::service::Routes::from(console))
                .serve_with_incoming(tonic::transport::server::TcpIncoming::from(http_listener));
            (tonic::service::Routes::default(), Some(server))
        }
    };
    tracing::info!(?addr, node, database = %config.database, "weft server listening");
    let mut builder = tonic::transport::Server::builder();
    if let Some(tls) = tls {
        builder = builder
            .tls_config(tls)
            .map_err(|e| StartError::Tls(e.to_string()))?;
    }
    let grpc = builder
        .accept_http1(true)
        .layer(request_layer.clone())
        .add_routes(routes)
        .add_service(health)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(
            proto::workflow_service_server::WorkflowServiceServer::from_arc(workflow)
                .max_decoding_message_size(MAX_COMPONENT_BYTES + 1024),
        )
        .add_service(proto::worker_service_server::WorkerServiceServer::from_arc(
            worker,
        ))
        .add_service(proto::admin_service_server::AdminServiceServer::new(admin))
        .serve_with_incoming_shutdown(
            // Small request/response messages: without TCP_NODELAY, Nagle's algorithm and
            // delayed ACKs add ~40 ms to a call.
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
            shutdown,
        );
    match http_server {
        None => grpc.await.map_err(|e| StartError::Serve(e.to_string())),
        Some(http_server) => {
            // The HTTP listener lives as long as gRPC's, which owns the shutdown signal.
            tokio::select! {
                served = grpc => served.map_err(|e| StartError::Serve(e.to_string())),
                served = http_server => served
                    .map_err(|e| StartError::Serve(format!("console: {e}")))
                    .and_then(|()| Err(StartError::Serve("the console listener stopped".into()))),
            }
        }
    }
}

/// With auth on and no token at all, makes an admin token and prints it once: the way in
/// for whoever starts the server (`weft token create --database` is the other).
async fn first_admin_token(store: &dyn Store, now_ms: u64) -> Result<(), StartError> {
    let tokens = store
        .tokens()
        .await
        .map_err(|e| StartError::FirstToken(e.to_string()))?;
    if !tokens.is_empty() {
        return Ok(());
    }
    let new = auth::NewToken {
        name: "admin".into(),
        role: "admin".into(),
        ..auth::NewToken::default()
    };
    match auth::create_token(store, new, now_ms).await {
        Ok((_, secret)) => {
            eprintln!(
                "auth is on and no token existed: made admin token `admin` (shown once, keep it):\n{secret}"
            );
            Ok(())
        }
        // Another node sharing the database made it first.
        Err(auth::TokenError::Store(weft_store::StoreError::TokenExists(_))) => Ok(()),
        Err(e) => Err(StartError::FirstToken(e.to_string())),
    }
}

/// Refuses a payload over [`MAX_PAYLOAD_BYTES`], naming the field.
pub(crate) fn check_payload(field: &str, bytes: &[u8]) -> Result<(), tonic::Status> {
    if bytes.len() > MAX_PAYLOAD_BYTES {
        return Err(tonic::Status::invalid_argument(format!(
            "{field} is {} bytes; the limit is {MAX_PAYLOAD_BYTES} bytes: keep large data outside weft and pass a reference",
            bytes.len()
        )));
    }
    Ok(())
}

//! `weft server`: serve the API on embedded SQLite (default) or PostgreSQL.
//!
//! Settings come from, in order of precedence: flags, environment variables (`WEFT_*`), the
//! TOML file named by `--config` / `WEFT_CONFIG`, built-in defaults.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;
use weft_server::{ServerConfig, serve};

const DEFAULT_LISTEN: &str = "127.0.0.1:7233";

#[derive(clap::Args)]
pub struct ServerArgs {
    /// A TOML file with any of: listen, http, database, node_id, max_cached_runs,
    /// sweep_interval_ms, fuel_per_activation, max_memory_mib, metrics, otlp_endpoint, auth,
    /// insecure, tls_cert, tls_key, tls_client_ca, max_history_events, max_pending_activities,
    /// max_pending_timers, max_pending_children, starts_per_second_per_token,
    /// module_compile_timeout_ms, max_module_versions, compiled_cache, [[client_certs]]. Flags
    /// and env vars override it.
    #[arg(long, env = "WEFT_CONFIG")]
    config: Option<PathBuf>,
    /// Address to serve gRPC on [default: 127.0.0.1:7233].
    #[arg(long, env = "WEFT_LISTEN")]
    listen: Option<SocketAddr>,
    /// Serve the web console and the JSON API on this address of their own [default: on the
    /// gRPC address, beside gRPC].
    #[arg(long, env = "WEFT_HTTP")]
    http: Option<SocketAddr>,
    /// `sqlite:PATH` (created if missing) or `postgres://user@host/db` [default: sqlite:weft.db].
    #[arg(long, env = "WEFT_DATABASE")]
    database: Option<String>,
    /// Runs kept in memory between steps; others are rebuilt from history when needed
    /// [default: 10000].
    #[arg(long, env = "WEFT_MAX_CACHED_RUNS")]
    max_cached_runs: Option<usize>,
    /// This node's id among the servers sharing a PostgreSQL database [default: random].
    #[arg(long, env = "WEFT_NODE_ID")]
    node_id: Option<String>,
    /// Do not record metrics (`/metrics` answers 404).
    #[arg(long, env = "WEFT_NO_METRICS")]
    no_metrics: bool,
    /// Send traces to this OpenTelemetry collector over OTLP/gRPC, e.g. http://127.0.0.1:4317
    /// [default: OTEL_EXPORTER_OTLP_ENDPOINT; none: no traces are sent].
    #[arg(long, env = "WEFT_OTLP_ENDPOINT")]
    otlp_endpoint: Option<String>,
    /// Require a bearer token on every call; with no token in the database yet, an admin
    /// token is made and printed once.
    #[arg(long, env = "WEFT_AUTH")]
    auth: bool,
    /// Serve beyond loopback without TLS and tokens (refused otherwise).
    #[arg(long, env = "WEFT_INSECURE")]
    insecure: bool,
    /// PEM certificate (chain) for TLS on every listener (with --tls-key).
    #[arg(long, env = "WEFT_TLS_CERT")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "WEFT_TLS_KEY")]
    tls_key: Option<PathBuf>,
    /// Require client certificates signed by this PEM CA (mutual TLS).
    #[arg(long, env = "WEFT_TLS_CLIENT_CA")]
    tls_client_ca: Option<PathBuf>,
    /// Keep compiled workflow components here, so that a restart does not compile them again
    /// (a Python module takes seconds) [default: ~/.cache/weft/compiled].
    #[arg(long, env = "WEFT_COMPILED_CACHE")]
    compiled_cache: Option<PathBuf>,
}

/// The config file. Unknown keys are an error, so a typo does not go unnoticed.
#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    listen: Option<SocketAddr>,
    http: Option<SocketAddr>,
    database: Option<String>,
    node_id: Option<String>,
    max_cached_runs: Option<usize>,
    sweep_interval_ms: Option<u64>,
    fuel_per_activation: Option<u64>,
    max_memory_mib: Option<usize>,
    metrics: Option<bool>,
    otlp_endpoint: Option<String>,
    auth: Option<bool>,
    insecure: Option<bool>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    tls_client_ca: Option<PathBuf>,
    max_history_events: Option<u64>,
    max_pending_activities: Option<u32>,
    max_pending_timers: Option<u32>,
    max_pending_children: Option<u32>,
    starts_per_second_per_token: Option<f64>,
    module_compile_timeout_ms: Option<u64>,
    max_module_versions: Option<usize>,
    compiled_cache: Option<PathBuf>,
    /// `[[client_certs]]` tables: common_name, role, queues, types.
    #[serde(default)]
    client_certs: Vec<weft_server::auth::CertRole>,
}

fn read_config(path: &Path) -> anyhow::Result<ConfigFile> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("config file {} is invalid", path.display()))
}

/// Flags and env over the file over the defaults.
fn resolve(args: ServerArgs) -> anyhow::Result<(SocketAddr, ServerConfig)> {
    let file = match &args.config {
        Some(path) => read_config(path)?,
        None => ConfigFile::default(),
    };
    let defaults = ServerConfig::default();
    let listen = match args.listen.or(file.listen) {
        Some(l) => l,
        None => DEFAULT_LISTEN.parse()?,
    };
    let mut engine = defaults.engine.clone();
    engine.compiled_cache_dir = Some(
        args.compiled_cache
            .or(file.compiled_cache)
            .unwrap_or_else(|| weft_guest_build::python::cache_dir().join("compiled")),
    );
    if let Some(fuel) = file.fuel_per_activation {
        engine.fuel_per_activation = fuel;
    }
    if let Some(mib) = file.max_memory_mib {
        engine.max_memory_bytes = mib << 20;
    }
    let limits = &mut engine.limits;
    limits.max_events = file.max_history_events.unwrap_or(limits.max_events);
    limits.max_pending_activities = file
        .max_pending_activities
        .unwrap_or(limits.max_pending_activities);
    limits.max_pending_timers = file.max_pending_timers.unwrap_or(limits.max_pending_timers);
    limits.max_pending_children = file
        .max_pending_children
        .unwrap_or(limits.max_pending_children);
    let tls = match (
        args.tls_cert.or(file.tls_cert),
        args.tls_key.or(file.tls_key),
        args.tls_client_ca.or(file.tls_client_ca),
    ) {
        (Some(cert), Some(key), client_ca) => Some(weft_server::TlsFiles {
            cert,
            key,
            client_ca,
        }),
        (None, None, None) => None,
        (None, None, Some(_)) => {
            anyhow::bail!("--tls-client-ca needs TLS: give --tls-cert and --tls-key too")
        }
        _ => anyhow::bail!("give --tls-cert and --tls-key together"),
    };
    let config = ServerConfig {
        database: args.database.or(file.database).unwrap_or(defaults.database),
        max_cached_runs: args
            .max_cached_runs
            .or(file.max_cached_runs)
            .unwrap_or(defaults.max_cached_runs),
        sweep_interval: file
            .sweep_interval_ms
            .map(std::time::Duration::from_millis)
            .unwrap_or(defaults.sweep_interval),
        engine,
        node_id: args.node_id.or(file.node_id),
        http_listen: args.http.or(file.http),
        metrics: !args.no_metrics && file.metrics.unwrap_or(true),
        otlp_endpoint: weft_telemetry::traces::endpoint(args.otlp_endpoint.or(file.otlp_endpoint)),
        auth: args.auth || file.auth.unwrap_or(false),
        insecure: args.insecure || file.insecure.unwrap_or(false),
        tls,
        cert_roles: file.client_certs,
        api_limits: weft_server::ApiLimits {
            starts_per_second_per_token: file
                .starts_per_second_per_token
                .unwrap_or(defaults.api_limits.starts_per_second_per_token),
            module_compile_timeout: file
                .module_compile_timeout_ms
                .map(std::time::Duration::from_millis)
                .unwrap_or(defaults.api_limits.module_compile_timeout),
            max_module_versions: file
                .max_module_versions
                .unwrap_or(defaults.api_limits.max_module_versions),
        },
    };
    Ok((listen, config))
}

pub fn server(args: ServerArgs) -> anyhow::Result<u8> {
    let (listen, config) = resolve(args)?;
    // Settings that cannot work are refused before the port is taken.
    config.check()?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        eprintln!("weft server on {listen} with {}", config.database);
        let scheme = if config.tls.is_some() {
            "https"
        } else {
            "http"
        };
        eprintln!(
            "console: {scheme}://{}/",
            config.http_listen.unwrap_or(listen)
        );
        let shutdown = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        let served = serve(config, listener, shutdown).await;
        weft_telemetry::traces::flush();
        served?;
        Ok(0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(config: Option<PathBuf>, database: Option<&str>) -> ServerArgs {
        ServerArgs {
            config,
            listen: None,
            http: None,
            database: database.map(str::to_owned),
            max_cached_runs: None,
            node_id: None,
            no_metrics: false,
            otlp_endpoint: None,
            auth: false,
            insecure: false,
            tls_cert: None,
            tls_key: None,
            tls_client_ca: None,
            compiled_cache: None,
        }
    }

    #[test]
    fn flags_override_the_file_which_overrides_the_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("weft.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:9000\"\nhttp = \"127.0.0.1:9001\"\ndatabase = \"sqlite:from-file.db\"\nmax_memory_mib = 8\n",
        )
        .unwrap();
        let (listen, config) = resolve(args(Some(path.clone()), None)).unwrap();
        assert_eq!(listen.port(), 9000);
        assert_eq!(config.http_listen.map(|a| a.port()), Some(9001));
        assert_eq!(config.database, "sqlite:from-file.db");
        assert_eq!(config.engine.max_memory_bytes, 8 << 20);
        assert_eq!(config.max_cached_runs, 10_000);
        let (_, config) = resolve(args(Some(path), Some("sqlite:flag.db"))).unwrap();
        assert_eq!(config.database, "sqlite:flag.db");
        let (listen, _) = resolve(args(None, None)).unwrap();
        assert_eq!(listen.to_string(), DEFAULT_LISTEN);
    }

    #[test]
    fn a_typo_in_the_file_is_an_error_that_names_the_key_and_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("weft.toml");
        std::fs::write(&path, "databse = \"sqlite:x.db\"\n").unwrap();
        let Err(e) = resolve(args(Some(path.clone()), None)) else {
            panic!("a typo must be rejected");
        };
        let message = format!("{e:#}");
        assert!(message.contains("databse"), "{message}");
        assert!(message.contains(&path.display().to_string()), "{message}");
        let Err(e) = resolve(args(Some(dir.path().join("missing.toml")), None)) else {
            panic!("a missing file must be rejected");
        };
        assert!(format!("{e:#}").contains("missing.toml"));
    }
}

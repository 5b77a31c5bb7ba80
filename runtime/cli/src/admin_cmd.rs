//! `weft token` and `weft audit`: tokens and the audit log, through a running server (an
//! admin token) or straight on its database (`--database`, for the first token and for
//! recovery).

use std::sync::Arc;

use anyhow::Context;
use weft_proto::admin_service_client::AdminServiceClient;
use weft_proto::{self as proto};
use weft_server::auth::{self, NewToken};
use weft_store::{AuditRecord, Store};

use crate::client_cmd::Server;

#[derive(clap::Subcommand)]
pub enum TokenCommand {
    /// Make a token; its secret is printed once, alone on stdout (`T=$(weft token create ...)`).
    Create {
        /// admin, operator, reader or worker.
        #[arg(long)]
        role: String,
        /// A worker token's task queues (comma-separated) [default: all].
        #[arg(long, value_delimiter = ',')]
        queues: Vec<String>,
        /// An operator token's workflow types (comma-separated) [default: all].
        #[arg(long, value_delimiter = ',')]
        types: Vec<String>,
        /// Lifetime, e.g. 30d, 12h [default: no expiry].
        #[arg(long)]
        expires: Option<String>,
        /// Its name [default: <role>-<random>].
        #[arg(long)]
        name: Option<String>,
        /// Write to this database directly instead of asking the server.
        #[arg(long)]
        database: Option<String>,
    },
    /// Every token: name, role, scopes, created, last used, expiry, revoked. Never a secret.
    List {
        #[arg(long)]
        database: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token by name; it is refused from the next call on.
    Revoke {
        name: String,
        #[arg(long)]
        database: Option<String>,
    },
}

#[derive(clap::Args)]
pub struct AuditArgs {
    /// How far back, e.g. 1h, 7d [default: 24h].
    #[arg(long, default_value = "24h")]
    since: String,
    /// Read this database directly instead of asking the server.
    #[arg(long)]
    database: Option<String>,
    #[arg(long)]
    json: bool,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

async fn open(database: &str) -> anyhow::Result<Arc<dyn Store>> {
    let store = weft_store::open(database)
        .await
        .with_context(|| format!("cannot open the database `{database}`"))?;
    Ok(Arc::new(store))
}

/// Records an action done straight on the database (actor `database`).
async fn audit_direct(store: &dyn Store, action: &str, target: String) -> anyhow::Result<()> {
    store
        .append_audit(&AuditRecord {
            at_ms: now_ms(),
            actor: "database".into(),
            action: action.into(),
            target,
            peer: String::new(),
            outcome: "ok".into(),
        })
        .await?;
    Ok(())
}

async fn admin(
    server: &Server,
) -> anyhow::Result<AdminServiceClient<proto::credentials::Authorized>> {
    Ok(AdminServiceClient::new(server.channel().await?))
}

fn when(ms: u64) -> String {
    if ms == 0 {
        return "-".into();
    }
    let secs = (ms / 1000) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since the epoch (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

pub fn token(server: Server, command: TokenCommand) -> anyhow::Result<u8> {
    tokio::runtime::Runtime::new()?.block_on(token_async(server, command))
}

async fn token_async(server: Server, command: TokenCommand) -> anyhow::Result<u8> {
    match command {
        TokenCommand::Create {
            role,
            queues,
            types,
            expires,
            name,
            database,
        } => {
            let expires_in_ms = expires
                .as_deref()
                .map(auth::parse_duration)
                .transpose()
                .map_err(|e| anyhow::anyhow!("--expires: {e}"))?;
            let name =
                name.unwrap_or_else(|| format!("{role}-{}", weft_server::entropy::random_hex(3)));
            let new = NewToken {
                name,
                role,
                queues,
                types,
                expires_in_ms,
            };
            let (info, secret) = match database {
                Some(database) => {
                    let store = open(&database).await?;
                    let target = new.name.clone();
                    let (record, secret) =
                        auth::create_token(store.as_ref(), new, now_ms()).await?;
                    audit_direct(store.as_ref(), "token_create", target).await?;
                    (weft_server::admin_token_info(&record), secret)
                }
                None => {
                    let r = admin(&server)
                        .await?
                        .create_token(proto::CreateTokenRequest {
                            name: new.name,
                            role: new.role,
                            queues: new.queues,
                            types: new.types,
                            expires_in_ms: new.expires_in_ms.unwrap_or(0),
                        })
                        .await?
                        .into_inner();
                    (r.info.unwrap_or_default(), r.token)
                }
            };
            eprintln!(
                "token `{}` ({}{}) made; its secret is shown once:",
                info.name,
                info.role,
                scope(&info)
            );
            println!("{secret}");
        }
        TokenCommand::List { database, json } => {
            let tokens: Vec<proto::TokenInfo> = match database {
                Some(database) => open(&database)
                    .await?
                    .tokens()
                    .await?
                    .iter()
                    .map(weft_server::admin_token_info)
                    .collect(),
                None => {
                    admin(&server)
                        .await?
                        .list_tokens(proto::ListTokensRequest {})
                        .await?
                        .into_inner()
                        .tokens
                }
            };
            if json {
                let list: Vec<serde_json::Value> = tokens
                    .iter()
                    .map(|t| {
                        serde_json::json!({
                            "name": t.name, "role": t.role, "queues": t.queues, "types": t.types,
                            "created_at_ms": t.created_at_ms, "expires_at_ms": t.expires_at_ms,
                            "last_used_ms": t.last_used_ms, "revoked_at_ms": t.revoked_at_ms,
                        })
                    })
                    .collect();
                println!("{}", serde_json::Value::Array(list));
            } else {
                println!(
                    "{:<24} {:<9} {:<28} {:<21} {:<21} {:<21} REVOKED",
                    "NAME", "ROLE", "SCOPE", "CREATED", "LAST USED", "EXPIRES"
                );
                for t in &tokens {
                    println!(
                        "{:<24} {:<9} {:<28} {:<21} {:<21} {:<21} {}",
                        t.name,
                        t.role,
                        scope(t).trim_start_matches(", "),
                        when(t.created_at_ms),
                        when(t.last_used_ms),
                        when(t.expires_at_ms),
                        when(t.revoked_at_ms)
                    );
                }
            }
        }
        TokenCommand::Revoke { name, database } => {
            match database {
                Some(database) => {
                    let store = open(&database).await?;
                    if !store.revoke_token(&name, now_ms()).await? {
                        anyhow::bail!("no live token named `{name}`; `weft token list` shows them");
                    }
                    audit_direct(store.as_ref(), "token_revoke", name.clone()).await?;
                }
                None => {
                    admin(&server)
                        .await?
                        .revoke_token(proto::RevokeTokenRequest { name: name.clone() })
                        .await?;
                }
            }
            eprintln!("token `{name}` revoked");
        }
    }
    Ok(0)
}

fn scope(t: &proto::TokenInfo) -> String {
    match (t.queues.is_empty(), t.types.is_empty()) {
        (false, _) => format!(", queues {}", t.queues.join(",")),
        (_, false) => format!(", types {}", t.types.join(",")),
        _ => String::new(),
    }
}

pub fn audit(server: Server, args: AuditArgs) -> anyhow::Result<u8> {
    tokio::runtime::Runtime::new()?.block_on(async {
        let ago = auth::parse_duration(&args.since).map_err(|e| anyhow::anyhow!("--since: {e}"))?;
        let since_ms = now_ms().saturating_sub(ago);
        let entries: Vec<proto::AuditEntry> = match args.database {
            Some(database) => open(&database)
                .await?
                .audit_since(since_ms, 10_000)
                .await?
                .into_iter()
                .map(weft_server::admin_audit_entry)
                .collect(),
            None => {
                admin(&server)
                    .await?
                    .list_audit(proto::ListAuditRequest {
                        since_ms,
                        limit: 10_000,
                    })
                    .await?
                    .into_inner()
                    .entries
            }
        };
        for e in &entries {
            if args.json {
                println!(
                    "{}",
                    serde_json::json!({"at_ms": e.at_ms, "actor": e.actor, "action": e.action,
                        "target": e.target, "peer": e.peer, "outcome": e.outcome})
                );
            } else {
                println!(
                    "{}  {:<16} {:<14} {:<40} {:<21} {}",
                    when(e.at_ms),
                    e.actor,
                    e.action,
                    e.target,
                    if e.peer.is_empty() { "-" } else { &e.peer },
                    e.outcome
                );
            }
        }
        Ok(0)
    })
}

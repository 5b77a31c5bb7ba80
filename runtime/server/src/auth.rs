//! Who may do what: bearer tokens with a role and optional scopes, checked in one place for
//! gRPC and the JSON API (whose handlers call the gRPC ones with the caller's credentials).
//!
//! A token is `weft_` + 64 hex digits (256 random bits from the OS); the store keeps only its
//! SHA-256. Every request looks its token up (so a revoke or an expiry holds at once, on every
//! node); `last_used` is written at most once a minute per token.
//!
//! | role | may |
//! |---|---|
//! | `admin` | everything: modules, tokens, the audit log, and all below |
//! | `operator` | start, signal, cancel, terminate (of its `types`, if scoped), and read |
//! | `reader` | list, count, describe, history, result, modules, queues, metrics |
//! | `worker` | poll, complete, fail, heartbeat on its `queues` (if scoped) |

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};
use tonic::Status;
use weft_engine::Clock;
use weft_store::{AuditRecord, Store, StoreError, TokenRecord};

/// How long a token's `last_used` may lag.
const TOUCH_EVERY_MS: u64 = 60_000;
/// One `auth_failure` audit entry per caller address per this long (a burst is one entry).
const AUTH_FAILURE_AUDIT_EVERY_MS: u64 = 60_000;

/// A role: what a token may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Admin,
    Operator,
    Reader,
    Worker,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Operator => "operator",
            Role::Reader => "reader",
            Role::Worker => "worker",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "admin" => Role::Admin,
            "operator" => Role::Operator,
            "reader" => Role::Reader,
            "worker" => Role::Worker,
            _ => return None,
        })
    }
}

/// What a request asks to do.
#[derive(Clone, Copy, Debug)]
pub enum Right<'a> {
    /// Lists, descriptions, histories, results, modules, queues, metrics.
    Read,
    /// Start, signal, cancel or terminate a run of this workflow type.
    Operate(&'a str),
    /// Upload a module, manage tokens, read the audit log.
    Administer,
    /// Poll, or report on a task of, this task queue.
    Work(&'a str),
    /// Sign in to the console: any valid token.
    Login,
}

impl Right<'_> {
    fn describe(&self) -> String {
        match self {
            Right::Read => "read runs".into(),
            Right::Operate("") => "operate runs".into(),
            Right::Operate(t) => format!("operate runs of workflow type `{t}`"),
            Right::Administer => "administer the server (modules, tokens, audit)".into(),
            Right::Login => "sign in".into(),
            Right::Work("") => "work on task queues".into(),
            Right::Work(q) => format!("work on task queue `{q}`"),
        }
    }
}

/// Who is calling.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// The token's name, or `anonymous` when auth is off.
    pub name: String,
    pub role: Role,
    /// Task queues a worker token may serve; `None`: all.
    pub queues: Option<Vec<String>>,
    /// Workflow types an operator token may operate; `None`: all.
    pub types: Option<Vec<String>>,
}

impl Principal {
    /// Everything allowed: the caller when auth is off.
    pub fn anonymous() -> Self {
        Principal {
            name: "anonymous".into(),
            role: Role::Admin,
            queues: None,
            types: None,
        }
    }

    fn in_scope(scope: &Option<Vec<String>>, item: &str) -> bool {
        scope.as_ref().is_none_or(|s| s.iter().any(|x| x == item))
    }

    /// `Ok` if this principal may do `right`; `PERMISSION_DENIED` naming the role and the
    /// missing right otherwise.
    pub fn require(&self, right: Right<'_>) -> Result<(), Status> {
        let allowed = match (self.role, right) {
            (_, Right::Login) => true,
            (Role::Admin, _) => true,
            (Role::Operator, Right::Read) => true,
            // "" asks whether it may operate any runs at all; the type is checked once known.
            (Role::Operator, Right::Operate(t)) => t.is_empty() || Self::in_scope(&self.types, t),
            (Role::Reader, Right::Read) => true,
            (Role::Worker, Right::Work(q)) => q.is_empty() || Self::in_scope(&self.queues, q),
            _ => false,
        };
        if allowed {
            return Ok(());
        }
        let scope = match (right, &self.types, &self.queues) {
            (Right::Operate(_), Some(types), _) if self.role == Role::Operator => {
                format!(" (it is limited to types {})", types.join(", "))
            }
            (Right::Work(_), _, Some(queues)) if self.role == Role::Worker => {
                format!(" (it is limited to queues {})", queues.join(", "))
            }
            _ => String::new(),
        };
        Err(Status::permission_denied(format!(
            "token `{}` has role `{}`{scope}, which may not {}",
            self.name,
            self.role.as_str(),
            right.describe()
        )))
    }
}

/// A new token's secret: `weft_` and 64 hex digits from the OS's random source.
pub fn new_secret() -> Result<String, String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| format!("no randomness from the OS: {e}"))?;
    Ok(format!("weft_{}", hex(&bytes)))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What the store keeps of a token: the SHA-256 of its secret.
pub fn token_hash(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))
}

/// Compares secrets without returning early on the first difference.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Turns tokens into principals, and writes the audit log.
#[derive(Clone)]
pub struct Auth {
    store: Arc<dyn Store>,
    enabled: bool,
    /// Token name -> when its `last_used` was last written.
    touched: Arc<Mutex<HashMap<String, u64>>>,
    /// Caller address -> when its last `auth_failure` was audited.
    failures: Arc<Mutex<HashMap<String, u64>>>,
    /// Client certificates (mutual TLS) that stand for a token.
    cert_roles: Arc<Vec<CertRole>>,
    /// The node's clock: token expiry, last use and audit times are in its time (a
    /// simulation's clock is simulated).
    clock: Arc<dyn Clock>,
}

/// A client certificate, by its subject's common name, standing for a role and scopes: a
/// worker on mutual TLS needs no token.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertRole {
    pub common_name: String,
    pub role: String,
    #[serde(default)]
    pub queues: Vec<String>,
    #[serde(default)]
    pub types: Vec<String>,
}

/// The subject common name of a DER certificate (already verified by the TLS handshake).
fn common_name(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let cn = cert.subject().iter_common_name().next()?;
    cn.as_str().ok().map(str::to_owned)
}

/// The caller's address, for the audit log ("" when unknown, e.g. via the JSON API).
pub fn peer_of<T>(request: &tonic::Request<T>) -> String {
    request
        .remote_addr()
        .map(|a| a.to_string())
        .unwrap_or_default()
}

impl Auth {
    pub fn new(store: Arc<dyn Store>, enabled: bool, clock: Arc<dyn Clock>) -> Self {
        Self::with_certificates(store, enabled, Vec::new(), clock)
    }

    /// With client certificates mapped to roles (checked when a call carries no token).
    pub fn with_certificates(
        store: Arc<dyn Store>,
        enabled: bool,
        cert_roles: Vec<CertRole>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Auth {
            store,
            enabled,
            touched: Arc::default(),
            failures: Arc::default(),
            cert_roles: Arc::new(cert_roles),
            clock,
        }
    }

    fn cert_principal(&self, common_name: &str) -> Option<Principal> {
        let mapped = self
            .cert_roles
            .iter()
            .find(|c| c.common_name == common_name)?;
        let scope = |v: &Vec<String>| (!v.is_empty()).then(|| v.clone());
        Some(Principal {
            name: format!("cert:{common_name}"),
            role: Role::parse(&mapped.role)?,
            queues: scope(&mapped.queues),
            types: scope(&mapped.types),
        })
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// The caller of `request`, if it may do `right`: the one check every handler makes.
    /// A refused token is audited (once a minute per caller address).
    pub async fn require<T>(
        &self,
        request: &tonic::Request<T>,
        right: Right<'_>,
    ) -> Result<Principal, Status> {
        let from_certificate = if self.enabled
            && request.metadata().get("authorization").is_none()
            && !self.cert_roles.is_empty()
        {
            request
                .peer_certs()
                .and_then(|certs| certs.first().and_then(|c| common_name(c.as_ref())))
                .and_then(|cn| self.cert_principal(&cn))
        } else {
            None
        };
        let principal = match from_certificate {
            Some(p) => Ok(p),
            None => {
                self.principal(request.metadata(), self.clock.now_ms())
                    .await
            }
        };
        let principal = match principal {
            Ok(p) => p,
            Err(status) => {
                if status.code() == tonic::Code::Unauthenticated {
                    self.audit_failure(&peer_of(request), status.message())
                        .await;
                }
                return Err(status);
            }
        };
        principal.require(right)?;
        Ok(principal)
    }

    async fn audit_failure(&self, peer: &str, why: &str) {
        let now = self.clock.now_ms();
        // A burst from one host is one entry, whatever ports its connections use.
        let host = peer.rsplit_once(':').map_or(peer, |(host, _)| host);
        {
            let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
            match failures.get(host) {
                Some(at) if now.saturating_sub(*at) < AUTH_FAILURE_AUDIT_EVERY_MS => return,
                _ => {
                    failures.insert(host.to_owned(), now);
                }
            }
        }
        tracing::warn!(peer, why, "authentication failed");
        self.append("unknown", "auth_failure", "", peer, why).await;
    }

    /// Appends an audit entry for what `principal`, calling from `peer`, did to `target`.
    pub async fn audit(
        &self,
        principal: &Principal,
        peer: &str,
        action: &str,
        target: &str,
        outcome: &str,
    ) {
        self.append(&principal.name, action, target, peer, outcome)
            .await;
    }

    async fn append(&self, actor: &str, action: &str, target: &str, peer: &str, outcome: &str) {
        let entry = AuditRecord {
            at_ms: self.clock.now_ms(),
            actor: actor.to_owned(),
            action: action.to_owned(),
            target: target.to_owned(),
            peer: peer.to_owned(),
            outcome: outcome.to_owned(),
        };
        if let Err(error) = self.store.append_audit(&entry).await {
            tracing::error!(%error, action, target, "cannot append to the audit log");
        }
    }

    /// The caller of a request with `authorization: Bearer <token>` metadata (or, from the
    /// console, the `weft_token` cookie the JSON API copied there).
    pub async fn principal(
        &self,
        metadata: &tonic::metadata::MetadataMap,
        now_ms: u64,
    ) -> Result<Principal, Status> {
        if !self.enabled {
            return Ok(Principal::anonymous());
        }
        let header = metadata
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                Status::unauthenticated(
                    "no token: send `authorization: Bearer <token>` (weft --token, WEFT_TOKEN)",
                )
            })?;
        let secret = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .map(str::trim)
            .ok_or_else(|| {
                Status::unauthenticated("the authorization header must be `Bearer <token>`")
            })?;
        let record = self
            .store
            .token_by_hash(&token_hash(secret))
            .await
            .map_err(|e| Status::unavailable(format!("cannot check the token: {e}")))?
            .ok_or_else(|| Status::unauthenticated("unknown token"))?;
        check_live(&record, now_ms)?;
        self.touch(&record.name, now_ms).await;
        principal_of(&record)
    }

    async fn touch(&self, name: &str, now_ms: u64) {
        {
            let mut touched = self.touched.lock().unwrap_or_else(|p| p.into_inner());
            match touched.get(name) {
                Some(at) if now_ms.saturating_sub(*at) < TOUCH_EVERY_MS => return,
                _ => {
                    touched.insert(name.to_owned(), now_ms);
                }
            }
        }
        if let Err(error) = self.store.touch_token(name, now_ms).await {
            tracing::warn!(token = name, %error, "cannot record the token's last use");
        }
    }
}

/// A token to make.
#[derive(Clone, Debug, Default)]
pub struct NewToken {
    pub name: String,
    pub role: String,
    pub queues: Vec<String>,
    pub types: Vec<String>,
    /// `None`: never expires.
    pub expires_in_ms: Option<u64>,
}

/// Why a token was not made.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<TokenError> for Status {
    fn from(e: TokenError) -> Self {
        match e {
            TokenError::Invalid(m) => Status::invalid_argument(m),
            TokenError::Store(StoreError::TokenExists(name)) => Status::already_exists(format!(
                "a token named `{name}` exists already; pick another name or revoke it first"
            )),
            TokenError::Store(e) => Status::unavailable(e.to_string()),
        }
    }
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'/' | b':'))
}

/// Checks `new`, stores its hash, and returns the record and the secret (shown once).
pub async fn create_token(
    store: &dyn Store,
    new: NewToken,
    now_ms: u64,
) -> Result<(TokenRecord, String), TokenError> {
    let invalid = |m: String| Err(TokenError::Invalid(m));
    if !valid_name(&new.name) || new.name.contains('/') || new.name.contains(':') {
        return invalid(format!(
            "token name `{}` is not valid: use 1 to 128 letters, digits, '-', '_' or '.'",
            new.name
        ));
    }
    let Some(role) = Role::parse(&new.role) else {
        return invalid(format!(
            "unknown role `{}`: use admin, operator, reader or worker",
            new.role
        ));
    };
    if !new.queues.is_empty() && role != Role::Worker {
        return invalid("--queues limits a worker token; this role does not poll queues".into());
    }
    if !new.types.is_empty() && role != Role::Operator {
        return invalid("--types limits an operator token; this role does not operate runs".into());
    }
    for item in new.queues.iter().chain(&new.types) {
        if !valid_name(item) {
            return invalid(format!(
                "`{item}` is not a task queue or workflow type name (no commas or spaces)"
            ));
        }
    }
    let secret = new_secret().map_err(TokenError::Invalid)?;
    let scope = |v: Vec<String>| (!v.is_empty()).then_some(v);
    let record = TokenRecord {
        name: new.name,
        hash: token_hash(&secret),
        role: role.as_str().to_owned(),
        queues: scope(new.queues),
        types: scope(new.types),
        created_at_ms: now_ms,
        expires_at_ms: new.expires_in_ms.map(|ms| now_ms.saturating_add(ms)),
        last_used_ms: None,
        revoked_at_ms: None,
    };
    store.create_token(&record).await?;
    Ok((record, secret))
}

/// `30d`, `12h`, `15m`, `90s` or `500ms` in milliseconds.
pub fn parse_duration(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("`{s}` is not a duration: write e.g. 30d, 12h, 15m, 90s"))?;
    let unit_ms = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(format!("`{s}` has no known unit: use ms, s, m, h or d")),
    };
    Ok(n.saturating_mul(unit_ms))
}

/// Refuses a revoked or expired token.
fn check_live(record: &TokenRecord, now_ms: u64) -> Result<(), Status> {
    if record.revoked_at_ms.is_some() {
        return Err(Status::unauthenticated(format!(
            "token `{}` was revoked",
            record.name
        )));
    }
    if record.expires_at_ms.is_some_and(|at| at <= now_ms) {
        return Err(Status::unauthenticated(format!(
            "token `{}` has expired; create a new one with `weft token create`",
            record.name
        )));
    }
    Ok(())
}

/// The principal a stored token stands for.
pub fn principal_of(record: &TokenRecord) -> Result<Principal, Status> {
    let role = Role::parse(&record.role).ok_or_else(|| {
        Status::internal(format!(
            "token `{}` has an unknown role `{}`",
            record.name, record.role
        ))
    })?;
    Ok(Principal {
        name: record.name.clone(),
        role,
        queues: record.queues.clone(),
        types: record.types.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(role: Role, queues: Option<&[&str]>, types: Option<&[&str]>) -> Principal {
        let list = |v: Option<&[&str]>| v.map(|v| v.iter().map(|s| s.to_string()).collect());
        Principal {
            name: "t".into(),
            role,
            queues: list(queues),
            types: list(types),
        }
    }

    #[test]
    fn roles_allow_what_the_table_says() {
        let admin = principal(Role::Admin, None, None);
        let operator = principal(Role::Operator, None, Some(&["Billing"]));
        let reader = principal(Role::Reader, None, None);
        let worker = principal(Role::Worker, Some(&["inference"]), None);
        for right in [
            Right::Read,
            Right::Operate("X"),
            Right::Administer,
            Right::Work("cpu"),
        ] {
            admin.require(right).unwrap();
        }
        operator.require(Right::Read).unwrap();
        operator.require(Right::Operate("Billing")).unwrap();
        let denied = operator.require(Right::Operate("Payroll")).unwrap_err();
        assert_eq!(denied.code(), tonic::Code::PermissionDenied);
        assert!(
            denied.message().contains("operator") && denied.message().contains("Payroll"),
            "{}",
            denied.message()
        );
        assert!(operator.require(Right::Administer).is_err());
        reader.require(Right::Read).unwrap();
        assert!(reader.require(Right::Operate("X")).is_err());
        assert!(reader.require(Right::Work("q")).is_err());
        worker.require(Right::Work("inference")).unwrap();
        let denied = worker.require(Right::Work("cpu")).unwrap_err();
        assert!(denied.message().contains("`cpu`"), "{}", denied.message());
        assert!(worker.require(Right::Read).is_err());
    }

    #[test]
    fn durations_parse_and_bad_ones_say_how() {
        assert_eq!(parse_duration("30d").unwrap(), 30 * 86_400_000);
        assert_eq!(parse_duration("90s").unwrap(), 90_000);
        assert_eq!(parse_duration("500ms").unwrap(), 500);
        assert!(parse_duration("soon").unwrap_err().contains("30d"));
        assert!(parse_duration("3w").unwrap_err().contains("unit"));
    }

    #[test]
    fn secrets_are_long_random_and_only_their_hash_is_kept() {
        let a = new_secret().unwrap();
        let b = new_secret().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 5 + 64);
        assert_eq!(token_hash(&a).len(), 64);
        assert_ne!(token_hash(&a), token_hash(&b));
        assert!(same_secret(&a, &a.clone()));
        assert!(!same_secret(&a, &b));
        assert!(!same_secret("ab", "abc"));
    }

    #[tokio::test]
    async fn a_token_expires_by_the_nodes_clock_not_the_wall_clock() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite:{}", dir.path().join("auth.db").display());
        let store: Arc<dyn Store> = Arc::new(weft_store::open(&url).await.unwrap());
        // A node whose clock stands in 2001: the wall clock is far past the expiry.
        let clock = weft_engine::ManualClock::new(1_000_000_000_000);
        let auth = Auth::new(store.clone(), true, Arc::new(clock.clone()));
        let new = NewToken {
            name: "short".into(),
            role: "reader".into(),
            queues: Vec::new(),
            types: Vec::new(),
            expires_in_ms: Some(60_000),
        };
        let (_, secret) = create_token(store.as_ref(), new, clock.now_ms())
            .await
            .unwrap();
        let mut request = tonic::Request::new(());
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {secret}").parse().unwrap());
        auth.require(&request, Right::Read).await.unwrap();
        clock.advance_to(clock.now_ms() + 60_000);
        let refused = auth.require(&request, Right::Read).await.unwrap_err();
        assert_eq!(refused.code(), tonic::Code::Unauthenticated, "{refused}");
    }
}

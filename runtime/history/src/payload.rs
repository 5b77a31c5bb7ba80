//! Payloads and the value types shared by the host, the history and the guests.
//!
//! These mirror the records and variants of `weft:workflow/types` (see `wit/workflow.wit`) as
//! plain Rust with serde, so the history can be stored and replayed without wasmtime.

use std::fmt;

use base64::Engine as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A serialized value: JSON (UTF-8) by convention, but any bytes are allowed.
///
/// In the history file a payload whose bytes are compact JSON is written as that JSON value, so
/// histories stay readable; any other bytes are written as `{"$bytes": "<base64>"}`. Both forms
/// read back to exactly the same bytes.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Payload(pub Vec<u8>);

const BYTES_KEY: &str = "$bytes";

impl Payload {
    /// The payload of JSON `null`.
    pub fn null() -> Self {
        Payload(b"null".to_vec())
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The payload as a person reads it: the JSON value its bytes hold, however they were
    /// formatted, else the `{"$bytes": ...}` form of the history file. Not byte-exact: for
    /// views (the console, the JSON API), never to write back.
    pub fn to_display_json(&self) -> serde_json::Value {
        match serde_json::from_slice::<serde_json::Value>(&self.0) {
            Ok(serde_json::Value::Object(map)) if map.len() == 1 && map.contains_key(BYTES_KEY) => {
                serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
            }
            Ok(value) => value,
            Err(_) => serde_json::to_value(self).unwrap_or(serde_json::Value::Null),
        }
    }

    /// The JSON value these bytes hold, if they hold one whose compact form is exactly them.
    fn as_exact_json(&self) -> Option<serde_json::Value> {
        let value: serde_json::Value = serde_json::from_slice(&self.0).ok()?;
        if let serde_json::Value::Object(map) = &value {
            // An object that would read back as the base64 escape must itself be escaped.
            if map.len() == 1 && map.contains_key(BYTES_KEY) {
                return None;
            }
        }
        let compact = serde_json::to_vec(&value).ok()?;
        (compact == self.0).then_some(value)
    }
}

impl From<Vec<u8>> for Payload {
    fn from(bytes: Vec<u8>) -> Self {
        Payload(bytes)
    }
}

impl From<&str> for Payload {
    fn from(text: &str) -> Self {
        Payload(text.as_bytes().to_vec())
    }
}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Shows the payload as text when it is UTF-8 (cut at 200 characters), else as a byte count.
impl fmt::Display for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match std::str::from_utf8(&self.0) {
            Ok(text) if text.chars().count() > 200 => {
                let cut: String = text.chars().take(200).collect();
                write!(f, "{cut}...")
            }
            Ok(text) => f.write_str(text),
            Err(_) => write!(f, "<{} bytes>", self.0.len()),
        }
    }
}

impl Serialize for Payload {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.as_exact_json() {
            Some(value) => value.serialize(serializer),
            None => {
                let mut map = serde_json::Map::new();
                map.insert(
                    BYTES_KEY.to_owned(),
                    base64::engine::general_purpose::STANDARD
                        .encode(&self.0)
                        .into(),
                );
                serde_json::Value::Object(map).serialize(serializer)
            }
        }
    }
}

impl<'de> Deserialize<'de> for Payload {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(deserializer)?;
        if let serde_json::Value::Object(map) = &value
            && map.len() == 1
            && let Some(encoded) = map.get(BYTES_KEY)
        {
            let text = encoded
                .as_str()
                .ok_or_else(|| serde::de::Error::custom("`$bytes` must be a base64 string"))?;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(text)
                .map_err(|e| serde::de::Error::custom(format!("bad `$bytes`: {e}")))?;
            return Ok(Payload(bytes));
        }
        serde_json::to_vec(&value)
            .map(Payload)
            .map_err(serde::de::Error::custom)
    }
}

/// Mirrors `retry-policy` in the WIT.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RetryPolicy {
    pub initial_interval_ms: u64,
    pub backoff_coefficient: f64,
    pub maximum_interval_ms: u64,
    /// 0 means unlimited.
    pub maximum_attempts: u32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub non_retryable_errors: Vec<String>,
}

/// Mirrors `activity-options` in the WIT.
#[derive(Clone, Debug, PartialEq, Default, Serialize, Deserialize)]
pub struct ActivityOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_queue: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_to_close_timeout_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule_to_close_timeout_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_timeout_ms: Option<u64>,
    /// An attempt no worker has taken within this time fails (`ScheduleToStartTimeout`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule_to_start_timeout_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryPolicy>,
}

/// Mirrors `error-info` in the WIT.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorInfo {
    /// Machine-readable kind, e.g. `ModelUnavailable`.
    pub kind: String,
    pub message: String,
    /// How many attempts were made before giving up (activities).
    #[serde(default)]
    pub attempts: u32,
}

impl ErrorInfo {
    /// An error of `kind` with `message`, made on the first attempt.
    pub fn new(kind: impl Into<String>, message: impl Into<String>) -> Self {
        ErrorInfo {
            kind: kind.into(),
            message: message.into(),
            attempts: 1,
        }
    }
}

impl fmt::Display for ErrorInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)
    }
}

/// Mirrors `failure` in the WIT: why a pending operation produced no value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Failure {
    ActivityFailed(ErrorInfo),
    ChildFailed(ErrorInfo),
    TimedOut(String),
    Cancelled,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::ActivityFailed(e) => write!(f, "activity failed: {e}"),
            Failure::ChildFailed(e) => write!(f, "child workflow failed: {e}"),
            Failure::TimedOut(what) => write!(f, "timed out: {what}"),
            Failure::Cancelled => f.write_str("cancelled"),
        }
    }
}

/// Mirrors `completion` in the WIT: the outcome of one pending operation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Completion {
    Ok(Payload),
    Err(Failure),
}

impl fmt::Display for Completion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Completion::Ok(p) => write!(f, "ok {p}"),
            Completion::Err(e) => write!(f, "err {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(bytes: &[u8]) -> (String, Payload) {
        let json = serde_json::to_string(&Payload(bytes.to_vec())).unwrap();
        let back: Payload = serde_json::from_str(&json).unwrap();
        (json, back)
    }

    #[test]
    fn json_in_any_layout_is_shown_as_json_and_other_bytes_as_escaped() {
        let spread = Payload(b"{\n  \"tickets\": [1, 2]\n}".to_vec());
        assert_eq!(
            spread.to_display_json(),
            serde_json::json!({"tickets": [1, 2]})
        );
        // The history file keeps its exact bytes.
        assert!(serde_json::to_string(&spread).unwrap().contains("$bytes"));
        let binary = Payload(vec![0xff, 0]);
        assert_eq!(
            binary.to_display_json(),
            serde_json::json!({"$bytes": "/wA="})
        );
    }

    #[test]
    fn compact_json_payload_is_embedded_as_json() {
        let (json, back) = round_trip(br#"{"greeting":"Hello","name":"World"}"#);
        assert_eq!(json, r#"{"greeting":"Hello","name":"World"}"#);
        assert_eq!(back.0, br#"{"greeting":"Hello","name":"World"}"#);
    }

    #[test]
    fn non_compact_json_and_binary_survive_byte_exact() {
        for bytes in [
            &b"{ \"a\": 1 }"[..],
            &[0u8, 159, 146, 150][..],
            &b""[..],
            &br#"{"$bytes":"AAAA"}"#[..],
            &b"1e5"[..],
        ] {
            let (json, back) = round_trip(bytes);
            assert_eq!(back.0, bytes, "via {json}");
        }
    }

    #[test]
    fn bad_base64_is_an_error() {
        let err = serde_json::from_str::<Payload>(r#"{"$bytes": "%%%"}"#).unwrap_err();
        assert!(err.to_string().contains("bad `$bytes`"), "{err}");
    }
}

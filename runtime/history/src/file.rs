//! The history of one run and its versioned, self-contained JSON form (`"format": 1`).
//!
//! This is the form the server exports and `weft replay` reads. A history is checked when it is
//! read: a truncated, corrupted or out-of-order file is rejected with the reason, never replayed.

use serde::{Deserialize, Serialize};

use crate::event::{Event, EventKind, EventRole};
use crate::payload::Payload;

/// The history format this crate writes. Readers accept every format listed in
/// [`SUPPORTED_FORMATS`]; a change to the form bumps this number.
pub const HISTORY_FORMAT: u32 = 1;
/// The formats this crate can read.
pub const SUPPORTED_FORMATS: &[u32] = &[1];

/// Who this run is and what it started with.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunHeader {
    pub workflow_id: String,
    pub run_id: String,
    pub workflow_type: String,
    pub task_queue: String,
    /// 1 for the first run of a workflow id; grows with continue-as-new.
    pub run_number: u32,
    /// Hex SHA-256 of the component bytes the run is pinned to.
    pub module_sha256: String,
    pub input: Payload,
    /// Seed of the run's `random-u64` generator.
    pub seed: u64,
}

/// A run's header and its append-only list of events.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct History {
    pub format: u32,
    #[serde(flatten)]
    pub header: RunHeader,
    pub events: Vec<Event>,
}

/// Why a history could not be read.
#[derive(Debug, thiserror::Error)]
pub enum HistoryFileError {
    #[error(
        "history is not valid JSON ({0}); if the file was cut short, export it again with `weft history --json`"
    )]
    Json(#[source] serde_json::Error),
    #[error(
        "history has format {found}, but this weft reads formats {SUPPORTED_FORMATS:?}; upgrade weft to read it"
    )]
    UnsupportedFormat { found: u64 },
    #[error("history has no `format` field: is this a weft history file?")]
    MissingFormat,
    #[error("history is inconsistent at event {seq}: {problem}")]
    Inconsistent { seq: u64, problem: String },
}

impl History {
    /// A new history holding only the `RunStarted` event.
    pub fn start(header: RunHeader, timestamp_ms: u64) -> Self {
        History {
            format: HISTORY_FORMAT,
            header,
            events: vec![Event {
                seq: 1,
                timestamp_ms,
                kind: EventKind::RunStarted,
            }],
        }
    }

    /// Appends an event with the next sequence number and returns that number.
    pub fn append(&mut self, timestamp_ms: u64, kind: EventKind) -> u64 {
        let seq = self.events.len() as u64 + 1;
        self.events.push(Event {
            seq,
            timestamp_ms,
            kind,
        });
        seq
    }

    /// The terminal event, if the run is closed.
    pub fn terminal(&self) -> Option<&Event> {
        self.events
            .last()
            .filter(|e| e.kind.role() == EventRole::Terminal)
    }

    /// Writes the history as pretty JSON.
    pub fn to_json_pretty(&self) -> String {
        // Serializing plain data with string keys cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Reads and checks a history file.
    pub fn from_json(bytes: &[u8]) -> Result<Self, HistoryFileError> {
        let value: serde_json::Value =
            serde_json::from_slice(bytes).map_err(HistoryFileError::Json)?;
        let format = value
            .get("format")
            .ok_or(HistoryFileError::MissingFormat)?
            .as_u64()
            .ok_or(HistoryFileError::MissingFormat)?;
        if !SUPPORTED_FORMATS.iter().any(|f| u64::from(*f) == format) {
            return Err(HistoryFileError::UnsupportedFormat { found: format });
        }
        let history: History = serde_json::from_value(value).map_err(HistoryFileError::Json)?;
        history.check()?;
        Ok(history)
    }

    /// Checks the shape every history has: numbered 1..n in order, `RunStarted` first, a
    /// terminal event only at the end.
    pub fn check(&self) -> Result<(), HistoryFileError> {
        let bad = |seq: u64, problem: String| Err(HistoryFileError::Inconsistent { seq, problem });
        let Some(first) = self.events.first() else {
            return bad(
                1,
                "the history has no events; it must start with RunStarted".into(),
            );
        };
        if first.kind != EventKind::RunStarted {
            return bad(
                first.seq,
                format!("the first event is {}, not RunStarted", first.kind.name()),
            );
        }
        let last = self.events.len();
        for (i, event) in self.events.iter().enumerate() {
            let expected = i as u64 + 1;
            if event.seq != expected {
                return bad(
                    expected,
                    format!("found seq {} where seq {expected} belongs", event.seq),
                );
            }
            if i > 0 && event.kind == EventKind::RunStarted {
                return bad(event.seq, "a second RunStarted".into());
            }
            if event.kind.role() == EventRole::Terminal && i + 1 != last {
                return bad(
                    event.seq,
                    format!("{} is followed by more events", event.kind.name()),
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> History {
        let mut h = History::start(
            RunHeader {
                workflow_id: "wf".into(),
                run_id: "r1".into(),
                workflow_type: "T".into(),
                task_queue: "q".into(),
                run_number: 1,
                module_sha256: "00".into(),
                input: Payload::null(),
                seed: 7,
            },
            1000,
        );
        h.append(
            1000,
            EventKind::TimerStarted {
                handle: 0,
                duration_ms: 5,
            },
        );
        h.append(1005, EventKind::TimerFired { handle: 0 });
        h.append(
            1005,
            EventKind::RunCompleted {
                output: Payload::from("1"),
            },
        );
        h
    }

    #[test]
    fn history_round_trips_through_json() {
        let h = sample();
        let back = History::from_json(h.to_json_pretty().as_bytes()).unwrap();
        assert_eq!(back, h);
        assert!(h.to_json_pretty().contains("\"format\": 1"));
    }

    #[test]
    fn truncated_history_is_rejected() {
        let json = sample().to_json_pretty();
        let err = History::from_json(&json.as_bytes()[..json.len() / 2]).unwrap_err();
        assert!(matches!(err, HistoryFileError::Json(_)), "{err}");
        assert!(err.to_string().contains("not valid JSON"));
    }

    #[test]
    fn unknown_format_is_rejected() {
        let json = sample()
            .to_json_pretty()
            .replace("\"format\": 1", "\"format\": 99");
        let err = History::from_json(json.as_bytes()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "history has format 99, but this weft reads formats [1]; upgrade weft to read it"
        );
    }

    #[test]
    fn renumbered_or_reordered_history_is_rejected() {
        let mut h = sample();
        h.events[2].seq = 7;
        let err = History::from_json(h.to_json_pretty().as_bytes()).unwrap_err();
        assert!(
            err.to_string()
                .contains("event 3: found seq 7 where seq 3 belongs"),
            "{err}"
        );

        let mut h = sample();
        h.events.swap(2, 3);
        h.events[2].seq = 3;
        h.events[3].seq = 4;
        let err = History::from_json(h.to_json_pretty().as_bytes()).unwrap_err();
        assert!(
            err.to_string().contains("RunCompleted is followed"),
            "{err}"
        );
    }

    #[test]
    fn missing_format_is_rejected() {
        let err = History::from_json(br#"{"events": []}"#).unwrap_err();
        assert!(matches!(err, HistoryFileError::MissingFormat));
    }
}

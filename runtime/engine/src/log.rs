//! Guest log lines: not recorded, suppressed while replaying, routed to a sink.

use std::sync::Arc;

/// Level of a guest log line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogLevel {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

impl LogLevel {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Trace => "trace",
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        }
    }
}

/// One line a guest logged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogRecord {
    pub level: LogLevel,
    pub message: String,
    /// True when the line belongs to the replayed part of the run.
    pub replaying: bool,
    /// How many events of the history came before the line (for timelines).
    pub after_event: u64,
    pub workflow_id: String,
    pub run_id: String,
}

/// Where guest log lines go.
pub type LogSink = Arc<dyn Fn(&LogRecord) + Send + Sync>;

/// The default sink: `tracing`, with the run's ids as fields.
pub fn tracing_sink() -> LogSink {
    Arc::new(|r: &LogRecord| {
        let (wf, run, msg) = (&r.workflow_id, &r.run_id, &r.message);
        match r.level {
            LogLevel::Trace => tracing::trace!(workflow_id = %wf, run_id = %run, "{msg}"),
            LogLevel::Debug => tracing::debug!(workflow_id = %wf, run_id = %run, "{msg}"),
            LogLevel::Info => tracing::info!(workflow_id = %wf, run_id = %run, "{msg}"),
            LogLevel::Warn => tracing::warn!(workflow_id = %wf, run_id = %run, "{msg}"),
            LogLevel::Error => tracing::error!(workflow_id = %wf, run_id = %run, "{msg}"),
        }
    })
}

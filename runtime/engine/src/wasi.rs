//! The deterministic WASI 0.2 layer: answers the `wasi:*` imports that a guest built for WASI
//! (a componentize-py Python workflow, say) makes, from the run's history and seed, so that
//! Python's own `time.time()`, `random` and `uuid.uuid4()` replay exactly.
//!
//! - wall clock: workflow time, recorded as `TimeRead` like `host.now`;
//! - monotonic clock: the *guest clock*, the timestamp of the last command the guest issued
//!   (the same live and on replay, and it creates no event); blocking on it (`time.sleep`) fails
//!   the run, naming the durable timer to use instead;
//! - random (all three interfaces): the run's seeded generator, the stream `random-u64` draws
//!   from, not recorded;
//! - cli: no environment, no arguments, stdin closed, no terminal; `exit` fails the run;
//!   stdout and stderr become the run's log lines (suppressed on replay, like `host.log`);
//! - filesystem: no preopened directories, so `open()` finds nothing;
//! - sockets, and every filesystem call past the preopens: the run fails, naming the call and
//!   saying to use an activity.
//!
//! Any other `wasi:*` interface (`wasi:http`, say) is refused at upload by the validator.
//! The layer is linked per component, at the versions the component imports, because guests
//! are built against different 0.2.x releases; a function of an answered interface that the
//! layer does not define is a link error at upload, never a surprise at run time.

use wasmtime::component::{
    ComponentType, Lift, LinkerInstance, Lower, Resource, ResourceType, types::ComponentItem,
};

use crate::host::{HostState, Stop, emit_log, lock, with_machine};
use crate::log::LogLevel;

/// How the layer answers one WASI interface.
#[derive(Clone, Copy)]
enum Answer {
    /// Each function answered by weft, typed (checked against the import at upload).
    Answered(fn(&mut LinkerInstance<'_, HostState>) -> wasmtime::Result<()>),
    /// `wasi:filesystem/preopens`: an empty list of directories.
    NoPreopens,
    /// Every function fails the run with this advice; resources exist but are never made.
    Refused(&'static str),
}

const NO_FILES: &str =
    "workflows have no filesystem: read and write files in an activity, run by a native worker";
const NO_NETWORK: &str = "network access belongs in an activity, run by a native worker";

/// The interfaces the layer answers, by name without the version.
const INTERFACES: &[(&str, Answer)] = &[
    ("wasi:io/poll", Answer::Answered(io_poll)),
    ("wasi:io/error", Answer::Answered(io_error)),
    ("wasi:io/streams", Answer::Answered(io_streams)),
    (
        "wasi:clocks/monotonic-clock",
        Answer::Answered(monotonic_clock),
    ),
    ("wasi:clocks/wall-clock", Answer::Answered(wall_clock)),
    ("wasi:random/random", Answer::Answered(random)),
    ("wasi:random/insecure", Answer::Answered(random_insecure)),
    (
        "wasi:random/insecure-seed",
        Answer::Answered(random_insecure_seed),
    ),
    ("wasi:cli/environment", Answer::Answered(cli_environment)),
    ("wasi:cli/exit", Answer::Answered(cli_exit)),
    ("wasi:cli/stdin", Answer::Answered(cli_stdin)),
    ("wasi:cli/stdout", Answer::Answered(cli_stdout)),
    ("wasi:cli/stderr", Answer::Answered(cli_stderr)),
    (
        "wasi:cli/terminal-input",
        Answer::Answered(cli_terminal_input),
    ),
    (
        "wasi:cli/terminal-output",
        Answer::Answered(cli_terminal_output),
    ),
    (
        "wasi:cli/terminal-stdin",
        Answer::Answered(cli_terminal_stdin),
    ),
    (
        "wasi:cli/terminal-stdout",
        Answer::Answered(cli_terminal_stdout),
    ),
    (
        "wasi:cli/terminal-stderr",
        Answer::Answered(cli_terminal_stderr),
    ),
    ("wasi:filesystem/preopens", Answer::NoPreopens),
    ("wasi:filesystem/types", Answer::Refused(NO_FILES)),
    ("wasi:sockets/network", Answer::Refused(NO_NETWORK)),
    ("wasi:sockets/instance-network", Answer::Refused(NO_NETWORK)),
    ("wasi:sockets/tcp", Answer::Refused(NO_NETWORK)),
    (
        "wasi:sockets/tcp-create-socket",
        Answer::Refused(NO_NETWORK),
    ),
    ("wasi:sockets/udp", Answer::Refused(NO_NETWORK)),
    (
        "wasi:sockets/udp-create-socket",
        Answer::Refused(NO_NETWORK),
    ),
    ("wasi:sockets/ip-name-lookup", Answer::Refused(NO_NETWORK)),
];

/// The WASI release line the layer speaks: any `0.2.x`.
const VERSION_PREFIX: &str = "0.2.";

/// The layer's answer for an import name such as `wasi:clocks/wall-clock@0.2.9`.
fn answer_for(import: &str) -> Option<Answer> {
    let (interface, version) = import.split_once('@')?;
    if !version.starts_with(VERSION_PREFIX) {
        return None;
    }
    INTERFACES
        .iter()
        .find(|(name, _)| *name == interface)
        .map(|(_, answer)| *answer)
}

/// Whether the layer answers `import` (a `wasi:*` interface at a 0.2.x version).
pub(crate) fn answers(import: &str) -> bool {
    answer_for(import).is_some()
}

/// Defines the layer's answers to `component`'s `wasi:*` imports in `linker`, at the exact
/// names (versions) the component imports. Imports the layer does not answer are left out;
/// the validator has refused them already.
pub(crate) fn link(
    linker: &mut wasmtime::component::Linker<HostState>,
    engine: &wasmtime::Engine,
    component: &wasmtime::component::Component,
) -> wasmtime::Result<()> {
    let ty = component.component_type();
    for (import, item) in ty.imports(engine) {
        let Some(answer) = answer_for(import) else {
            continue;
        };
        let mut instance = linker.instance(import)?;
        match answer {
            Answer::Answered(define) => define(&mut instance)?,
            Answer::NoPreopens | Answer::Refused(_) => {
                let ComponentItem::ComponentInstance(interface) = item.ty else {
                    continue;
                };
                for (name, export) in interface.exports(engine) {
                    match export.ty {
                        ComponentItem::Resource(_) => {
                            instance.resource(name, resource_type(name), |_, _| Ok(()))?;
                        }
                        ComponentItem::ComponentFunc(_) => {
                            if let (Answer::NoPreopens, "get-directories") = (answer, name) {
                                instance.func_new(name, |_, _, _, results| {
                                    results[0] = wasmtime::component::Val::List(Vec::new());
                                    Ok(())
                                })?;
                                continue;
                            }
                            let hint = match answer {
                                Answer::Refused(hint) => hint,
                                _ => NO_FILES,
                            };
                            let call = format!("{import}#{name}");
                            instance.func_new(name, move |store, _, _, _| {
                                Err(forbid(
                                    store.data(),
                                    format!("the workflow called `{call}`: {hint}"),
                                ))
                            })?;
                        }
                        _ => {}
                    }
                }
            }
        }
    }
    Ok(())
}

/// Fails the run with `ForbiddenCall` (a trap the run classifies by the stop).
fn forbid(state: &HostState, message: String) -> wasmtime::Error {
    let error = wasmtime::Error::msg(message.clone());
    lock(&state.shared).stop = Some(Stop::Forbidden(message));
    error
}

/// The type of resources that the layer refuses to create (files, sockets).
struct Refused;
/// `wasi:io/poll.pollable`: every pollable weft hands out is ready.
struct Pollable;
/// `wasi:io/error.error`: never created (no stream operation fails that way).
struct IoError;
/// `wasi:io/streams.input-stream`: stdin, always closed.
struct InputStream;
/// `wasi:io/streams.output-stream`: stdout (rep 1) and stderr (rep 2).
struct OutputStream;
struct TerminalInput;
struct TerminalOutput;

/// The host type of a resource a refused interface exports: its own (`descriptor`, say) are
/// [`Refused`]; the ones it takes from an answered interface with `use` (`input-stream` in
/// `wasi:filesystem/types`) must be that interface's type.
fn resource_type(name: &str) -> ResourceType {
    match name {
        "pollable" => ResourceType::host::<Pollable>(),
        "error" => ResourceType::host::<IoError>(),
        "input-stream" => ResourceType::host::<InputStream>(),
        "output-stream" => ResourceType::host::<OutputStream>(),
        "terminal-input" => ResourceType::host::<TerminalInput>(),
        "terminal-output" => ResourceType::host::<TerminalOutput>(),
        _ => ResourceType::host::<Refused>(),
    }
}

const STDOUT: u32 = 1;
const STDERR: u32 = 2;

/// `wasi:io/streams.stream-error`.
#[derive(ComponentType, Lift, Lower)]
#[component(variant)]
enum StreamError {
    #[component(name = "last-operation-failed")]
    #[allow(dead_code)]
    LastOperationFailed(Resource<IoError>),
    #[component(name = "closed")]
    Closed,
}

/// `wasi:clocks/wall-clock.datetime`.
#[derive(ComponentType, Lift, Lower, Clone, Copy)]
#[component(record)]
struct Datetime {
    seconds: u64,
    nanoseconds: u32,
}

fn ready() -> Resource<Pollable> {
    Resource::new_own(0)
}

fn host_resource<T: 'static>(
    instance: &mut LinkerInstance<'_, HostState>,
    name: &str,
) -> wasmtime::Result<()> {
    instance.resource(name, ResourceType::host::<T>(), |_, _| Ok(()))
}

fn io_poll(i: &mut LinkerInstance<'_, HostState>) -> wasmtime::Result<()> {
    host_resource::<Pollable>(i, "pollable")?;
    i.func_wrap(
        "[method]pollable.ready",
        |_, (_,): (Resource<Pollable>,)| Ok((true,)),
    )?;
    i.func_wrap(
        "[method]pollable.block",
        |_, (_,): (Resource<Pollable>,)| Ok(()),
    )?;
    i.func_wrap("poll", |_, (all,): (Vec<Resource<Pollable>>,)| {
        Ok(((0..all.len() as u32).collect::<Vec<u32>>(),))
    })?;
    Ok(())
}

fn io_error(i: &mut LinkerInstance<'_, HostState>) -> wasmtime::Result<()> {
    host_resource::<IoError>(i, "error")?;
    i.func_wrap(
        "[method]error.to-debug-string",
        |_, (_,): (Resource<IoError>,)| Ok(("weft: no stream error".to_owned(),)),
    )?;
    Ok(())
}

fn io_streams(i: &mut LinkerInstance<'_, HostState>) -> wasmtime::Result<()> {
    host_resource::<InputStream>(i, "input-stream")?;
    host_resource::<OutputStream>(i, "output-stream")?;
    for read in [
        "[method]input-stream.read",
        "[method]input-stream.blocking-read",
    ] {
        i.func_wrap(read, |_, (_, _): (Resource<InputStream>, u64)| {
            Ok((Err::<Vec<u8>, _>(StreamError::Closed),))
        })?;
    }
    for skip in [
        "[method]input-stream.skip",
        "[method]input-stream.blocking-skip",
    ] {
        i.func_wrap(skip, |_, (_, _): (Resource<InputStream>, u64)| {
            Ok((Err::<u64, _>(StreamError::Closed),))
        })?;
    }
    i.func_wrap(
        "[method]input-stream.subscribe",
        |_, (_,): (Resource<InputStream>,)| Ok((ready(),)),
    )?;
    i.func_wrap(
        "[method]output-stream.check-write",
        |_, (_,): (Resource<OutputStream>,)| Ok((Ok::<u64, StreamError>(WRITE_BUDGET),)),
    )?;
    for write in [
        "[method]output-stream.write",
        "[method]output-stream.blocking-write-and-flush",
    ] {
        i.func_wrap(
            write,
            |store, (stream, bytes): (Resource<OutputStream>, Vec<u8>)| {
                write_output(store.data(), stream.rep(), &bytes);
                Ok((Ok::<(), StreamError>(()),))
            },
        )?;
    }
    for zeroes in [
        "[method]output-stream.write-zeroes",
        "[method]output-stream.blocking-write-zeroes-and-flush",
    ] {
        i.func_wrap(zeroes, |_, (_, _): (Resource<OutputStream>, u64)| {
            Ok((Ok::<(), StreamError>(()),))
        })?;
    }
    for flush in [
        "[method]output-stream.flush",
        "[method]output-stream.blocking-flush",
    ] {
        i.func_wrap(flush, |_, (_,): (Resource<OutputStream>,)| {
            Ok((Ok::<(), StreamError>(()),))
        })?;
    }
    for splice in [
        "[method]output-stream.splice",
        "[method]output-stream.blocking-splice",
    ] {
        i.func_wrap(
            splice,
            |_, (_, _, _): (Resource<OutputStream>, Resource<InputStream>, u64)| {
                Ok((Err::<u64, _>(StreamError::Closed),))
            },
        )?;
    }
    i.func_wrap(
        "[method]output-stream.subscribe",
        |_, (_,): (Resource<OutputStream>,)| Ok((ready(),)),
    )?;
    Ok(())
}

/// What `check-write` allows per write: a guest's print arrives in pieces of at most this.
const WRITE_BUDGET: u64 = 64 * 1024;

/// The longest log line made of stdout or stderr; a longer one is split.
const MAX_LINE_BYTES: usize = 16 * 1024;

/// The most of stderr kept to quote when the guest then traps (a Python traceback).
pub(crate) const STDERR_TAIL_BYTES: usize = 8 * 1024;

/// A write to stdout or stderr: complete lines become log lines; stderr's tail is kept.
fn write_output(state: &HostState, stream: u32, bytes: &[u8]) {
    let mut shared = lock(&state.shared);
    let shared = &mut *shared;
    let (buffer, level) = if stream == STDERR {
        shared.stderr_tail.extend_from_slice(bytes);
        let excess = shared.stderr_tail.len().saturating_sub(STDERR_TAIL_BYTES);
        shared.stderr_tail.drain(..excess);
        (&mut shared.stderr_line, LogLevel::Warn)
    } else {
        (&mut shared.stdout_line, LogLevel::Info)
    };
    buffer.extend_from_slice(bytes);
    let mut lines = Vec::new();
    while let Some(end) = buffer.iter().position(|b| *b == b'\n') {
        let line: Vec<u8> = buffer.drain(..=end).collect();
        lines.push(String::from_utf8_lossy(&line[..end]).into_owned());
    }
    // A line that never ends is logged in pieces: the buffer lives outside the guest's
    // memory cap and across activations.
    while buffer.len() >= MAX_LINE_BYTES {
        let piece: Vec<u8> = buffer.drain(..MAX_LINE_BYTES).collect();
        lines.push(String::from_utf8_lossy(&piece).into_owned());
    }
    for line in lines {
        emit_log(shared, level, line);
    }
}

/// Logs what is left of unterminated stdout and stderr lines (when the guest ends).
pub(crate) fn flush_output(shared: &mut crate::host::RunShared) {
    for level in [LogLevel::Info, LogLevel::Warn] {
        let buffer = match level {
            LogLevel::Info => &mut shared.stdout_line,
            _ => &mut shared.stderr_line,
        };
        if buffer.is_empty() {
            continue;
        }
        let line = String::from_utf8_lossy(&std::mem::take(buffer)).into_owned();
        emit_log(shared, level, line);
    }
}

const NS_PER_MS: u64 = 1_000_000;

fn monotonic_clock(i: &mut LinkerInstance<'_, HostState>) -> wasmtime::Result<()> {
    i.func_wrap("now", |store, (): ()| {
        let shared = lock(&store.data().shared);
        Ok((shared.guest_time_ms().saturating_mul(NS_PER_MS),))
    })?;
    i.func_wrap("resolution", |_, (): ()| Ok((NS_PER_MS,)))?;
    for subscribe in ["subscribe-instant", "subscribe-duration"] {
        i.func_wrap(subscribe, |store, (_,): (u64,)| {
            Err::<(Resource<Pollable>,), _>(forbid(
                store.data(),
                "the workflow blocked on the clock (`time.sleep()` in Python): a blocking \
                 sleep holds the workflow and is not recorded; use `await asyncio.sleep(s)` or \
                 `await workflow.sleep(..)`, a durable timer"
                    .to_owned(),
            ))
        })?;
    }
    Ok(())
}

fn wall_clock(i: &mut LinkerInstance<'_, HostState>) -> wasmtime::Result<()> {
    i.func_wrap("now", |store, (): ()| {
        let ms = with_machine(&store, "wasi:clocks/wall-clock#now", |m, now| m.now(now))?;
        Ok((Datetime {
            seconds: ms / 1000,
            nanoseconds: (ms % 1000) as u32 * 1_000_000,
        },))
    })?;
    i.func_wrap("resolution", |_, (): ()| {
        Ok((Datetime {
            seconds: 0,
            nanoseconds: NS_PER_MS as u32,
        },))
    })?;
    Ok(())
}

/// The most bytes one `get-random-bytes` call may ask for.
const MAX_RANDOM_BYTES: u64 = 1 << 20;

fn random_bytes(state: &HostState, len: u64) -> wasmtime::Result<Vec<u8>> {
    if len > MAX_RANDOM_BYTES {
        return Err(forbid(
            state,
            format!(
                "the workflow asked for {len} random bytes at once; the limit is {MAX_RANDOM_BYTES}"
            ),
        ));
    }
    let mut shared = lock(&state.shared);
    let mut bytes = Vec::with_capacity(len as usize + 8);
    while (bytes.len() as u64) < len {
        bytes.extend_from_slice(&shared.machine.random_u64().to_le_bytes());
    }
    bytes.truncate(len as usize);
    Ok(bytes)
}

fn random(i: &mut LinkerInstance<'_, HostState>) -> wasmtime::Result<()> {
    i.func_wrap("get-random-bytes", |store, (len,): (u64,)| {
        Ok((random_bytes(store.data(), len)?,))
    })?;
    i.func_wrap("get-random-u64", |store, (): ()| {
        Ok((lock(&store.data().shared).machine.random_u64(),))
    })?;
    Ok(())
}

fn random_insecure(i: &mut LinkerInstance<'_, HostState>) -> wasmtime::Result<()> {
    i.func_wrap("get-insecure-random-bytes", |store, (len,): (u64,)| {
        Ok((random_bytes(store.data(), len)?,))
    })?;
    i.func_wrap("get-insecure-random-u64", |store, (): ()| {
        Ok((lock(&store.data().shared).machine.random_u64(),))
    })?;
    Ok(())
}

fn random_insecure_seed(i: &mut LinkerInstance<'_, HostState>) -> wasmtime::Result<()> {
    i.func_wrap("insecure-seed", |store, (): ()| {
        let mut shared = lock(&store.data().shared);
        let seed = (shared.machine.random_u64(), shared.machine.random_u64());
        Ok((seed,))
    })?;
    Ok(())
}

fn cli_environment(i: &mut LinkerInstance<'_, HostState>) -> wasmtime::Result<()> {
    i.func_wrap("get-environment", |_, (): ()| {
        Ok((Vec::<(String, String)>::new(),))
    })?;
    i.func_wrap("get-arguments", |_, (): ()| Ok((Vec::<String>::new(),)))?;
    i.func_wrap("initial-cwd", |_, (): ()| Ok((None::<String>,)))?;
    Ok(())
}

fn cli_exit(i: &mut LinkerInstance<'_, HostState>) -> wasmtime::Result<()> {
    i.func_wrap("exit", |store, (status,): (Result<(), ()>,)| {
        let status = if status.is_ok() { "success" } else { "failure" };
        let message = format!(
            "the workflow called exit ({status} status; `sys.exit()` in Python): a workflow ends \
             by returning from `run`, or fails by raising an exception"
        );
        lock(&store.data().shared).stop = Some(Stop::Exit(message.clone()));
        Err::<(), _>(wasmtime::Error::msg(message))
    })?;
    Ok(())
}

fn cli_stdin(i: &mut LinkerInstance<'_, HostState>) -> wasmtime::Result<()> {
    i.func_wrap("get-stdin", |_, (): ()| {
        Ok((Resource::<InputStream>::new_own(0),))
    })?;
    Ok(())
}

fn cli_stdout(i: &mut LinkerInstance<'_, HostState>) -> wasmtime::Result<()> {
    i.func_wrap("get-stdout", |_, (): ()| {
        Ok((Resource::<OutputStream>::new_own(STDOUT),))
    })?;
    Ok(())
}

fn cli_stderr(i: &mut LinkerInstance<'_, HostState>) -> wasmtime::Result<()> {
    i.func_wrap("get-stderr", |_, (): ()| {
        Ok((Resource::<OutputStream>::new_own(STDERR),))
    })?;
    Ok(())
}

fn cli_terminal_input(i: &mut LinkerInstance<'_, HostState>) -> wasmtime::Result<()> {
    host_resource::<TerminalInput>(i, "terminal-input")
}

fn cli_terminal_output(i: &mut LinkerInstance<'_, HostState>) -> wasmtime::Result<()> {
    host_resource::<TerminalOutput>(i, "terminal-output")
}

fn cli_terminal_stdin(i: &mut LinkerInstance<'_, HostState>) -> wasmtime::Result<()> {
    i.func_wrap("get-terminal-stdin", |_, (): ()| {
        Ok((None::<Resource<TerminalInput>>,))
    })
}

fn cli_terminal_stdout(i: &mut LinkerInstance<'_, HostState>) -> wasmtime::Result<()> {
    i.func_wrap("get-terminal-stdout", |_, (): ()| {
        Ok((None::<Resource<TerminalOutput>>,))
    })
}

fn cli_terminal_stderr(i: &mut LinkerInstance<'_, HostState>) -> wasmtime::Result<()> {
    i.func_wrap("get-terminal-stderr", |_, (): ()| {
        Ok((None::<Resource<TerminalOutput>>,))
    })
}

/// The uncaught Python exception at the end of what a guest wrote to stderr, as
/// (type, message with the traceback): componentize-py prints it and then traps.
pub(crate) fn python_exception(stderr: &str) -> Option<(String, String)> {
    const HEADER: &str = "Traceback (most recent call last):";
    let start = stderr.rfind(HEADER)?;
    let traceback = &stderr[start..];
    let mut lines = traceback.lines().skip(1);
    let mut frames = Vec::new();
    let last = loop {
        let line = lines.next()?;
        if line.starts_with(' ') {
            frames.push(line);
        } else {
            break line;
        }
    };
    let (kind, detail) = match last.split_once(':') {
        Some((kind, detail)) => (kind.trim(), detail.trim()),
        None => (last.trim(), ""),
    };
    let is_name = !kind.is_empty()
        && kind
            .chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '.');
    if !is_name {
        return None;
    }
    let kind = kind.rsplit('.').next().unwrap_or(kind).to_owned();
    let mut message = detail.to_owned();
    message.push('\n');
    message.push_str(HEADER);
    for frame in frames {
        message.push('\n');
        message.push_str(frame);
    }
    Some((kind, message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imports_are_answered_by_interface_at_any_0_2_version() {
        assert!(answers("wasi:clocks/wall-clock@0.2.9"));
        assert!(answers("wasi:clocks/wall-clock@0.2.0"));
        assert!(answers("wasi:sockets/tcp@0.2.12"));
        assert!(!answers("wasi:clocks/wall-clock@0.3.0"));
        assert!(!answers("wasi:http/outgoing-handler@0.2.9"));
        assert!(!answers("wasi:clocks/timezone@0.2.9"));
        assert!(!answers("wasi:clocks/wall-clock"));
    }

    #[test]
    fn a_python_traceback_becomes_the_exception_type_and_message() {
        let stderr = "some earlier line\nTraceback (most recent call last):\n  \
                      File \"/0/app.py\", line 14, in run\nValueError: bad input: 42\n\
                      thread '<unnamed>' panicked at src/lib.rs:1:1:\nPython function call failed\n";
        let (kind, message) = python_exception(stderr).expect("a traceback");
        assert_eq!(kind, "ValueError");
        assert_eq!(
            message,
            "bad input: 42\nTraceback (most recent call last):\n  File \"/0/app.py\", line 14, in run"
        );
        let (kind, _) = python_exception(
            "Traceback (most recent call last):\n  File \"a.py\", line 1\nweft.errors.Boom\n",
        )
        .expect("a traceback");
        assert_eq!(kind, "Boom");
        assert!(python_exception("no traceback here\n").is_none());
    }
}

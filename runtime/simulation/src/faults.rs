//! What can go wrong in a simulation, and the seeded source that decides when it does: how
//! often a node crashes, a database call fails or loses its reply; each node process's life
//! (alive, dead, stalled); and the trace digest that shows two runs of a seed made the same
//! choices.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::watch;
use tokio::time::Instant;

use crate::rng::Rng;

/// How often each fault strikes, per database call of a node (while faults are on).
#[derive(Clone, Debug, Default)]
pub struct Rates {
    /// The node process dies: before the call, or (for a write) after it took effect and
    /// before its reply.
    pub crash: f64,
    /// The connection drops before the call reaches the database.
    pub drop: f64,
    /// A write takes effect and its reply is lost (the caller sees an error).
    pub lose_reply: f64,
}

impl Rates {
    /// The rates of one seed: some seeds run with no database faults at all, so that the
    /// other faults (workers, stalls, kills) are seen on their own too.
    pub fn draw(rng: &mut Rng) -> Rates {
        if rng.chance(0.2) {
            return Rates::default();
        }
        Rates {
            crash: [0.0, 0.001, 0.005][rng.below(3) as usize],
            drop: [0.0, 0.005, 0.02][rng.below(3) as usize],
            lose_reply: [0.0, 0.005, 0.02][rng.below(3) as usize],
        }
    }
}

/// The world's seeded choices and their trace.
pub struct Chaos {
    rng: Mutex<Rng>,
    pub rates: Rates,
    on: AtomicBool,
    trace: Mutex<Trace>,
    start: Instant,
    /// Print each step as it is noted (`WEFT_SIM_PRINT=1`, for replaying one seed).
    print: bool,
}

impl Chaos {
    pub fn new(rng: Rng, rates: Rates) -> Self {
        Chaos {
            rng: Mutex::new(rng),
            rates,
            on: AtomicBool::new(true),
            trace: Mutex::new(Trace::default()),
            start: Instant::now(),
            print: std::env::var_os("WEFT_SIM_PRINT").is_some_and(|v| v == "1"),
        }
    }

    /// The seeded source (one thread runs the simulation: never contended).
    pub fn rng(&self) -> std::sync::MutexGuard<'_, Rng> {
        self.rng
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether faults are being injected (off once the world heals).
    pub fn on(&self) -> bool {
        self.on.load(Ordering::SeqCst)
    }

    pub fn heal(&self) {
        self.on.store(false, Ordering::SeqCst);
    }

    /// Milliseconds of simulated time since the world began.
    pub fn elapsed_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    /// Adds what happened, and when, to the trace.
    pub fn note(&self, what: &str) {
        let at = self.elapsed_ms();
        if self.print {
            eprintln!("{at:>8} ms  {what}");
        }
        let mut trace = self
            .trace
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        trace.add(at, what);
    }

    pub fn trace(&self) -> Trace {
        *self
            .trace
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A digest of everything a simulation did, in order: equal for two runs of one seed when
/// the simulation is deterministic.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Trace {
    pub digest: u64,
    pub steps: u64,
}

impl Trace {
    fn add(&mut self, at_ms: u64, what: &str) {
        // FNV-1a over the time and the text.
        let mut h = if self.steps == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.digest
        };
        for b in at_ms.to_le_bytes().iter().chain(what.as_bytes()) {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        self.digest = h;
        self.steps += 1;
    }
}

/// One node process: alive until killed; stalled (every database call waits) until a time.
pub struct Life {
    dead: watch::Sender<bool>,
    stalled_until: Mutex<Option<Instant>>,
}

impl Default for Life {
    fn default() -> Self {
        Life {
            dead: watch::Sender::new(false),
            stalled_until: Mutex::new(None),
        }
    }
}

impl Life {
    pub fn kill(&self) {
        self.dead.send_replace(true);
    }

    pub fn is_dead(&self) -> bool {
        *self.dead.borrow()
    }

    /// Resolves once the process is dead.
    pub async fn died(&self) {
        let mut rx = self.dead.subscribe();
        let _ = rx.wait_for(|dead| *dead).await;
    }

    pub fn stall_until(&self, until: Option<Instant>) {
        *self
            .stalled_until
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = until;
    }

    pub fn stalled_until(&self) -> Option<Instant> {
        *self
            .stalled_until
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

//! Where the server's random ids (run ids, run seeds, claim secrets) come from: the OS, or,
//! on a thread that a simulation seeded, a sequence that the seed decides, so that a failing
//! simulated schedule replays exactly. Token secrets never come from here.

use std::cell::RefCell;

use weft_engine::weft_history::SplitMix64;

thread_local! {
    /// This thread's seeded sequence; `None`: the OS's randomness.
    static SEEDED: RefCell<Option<SplitMix64>> = const { RefCell::new(None) };
}

/// Makes the random ids drawn on this thread a sequence decided by `seed` (`None`: back to
/// the OS). For deterministic simulation (`runtime/simulation`), whose nodes all run on
/// one thread.
pub fn seed_this_thread(seed: Option<u64>) {
    SEEDED.with(|s| *s.borrow_mut() = seed.map(SplitMix64::new));
}

/// 64 random bits.
pub fn random_u64() -> u64 {
    if let Some(next) = SEEDED.with(|s| s.borrow_mut().as_mut().map(SplitMix64::next_u64)) {
        return next;
    }
    let mut bytes = [0u8; 8];
    if getrandom::fill(&mut bytes).is_ok() {
        return u64::from_le_bytes(bytes);
    }
    // The OS source does not fail on the platforms we build for; if it did, the hasher's
    // per-process keys and the time still make ids that do not repeat.
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish()
}

/// `bytes` random bytes as hex, for secrets that are not tokens (task claims).
pub fn random_hex(bytes: usize) -> String {
    let mut out = String::with_capacity(bytes * 2);
    while out.len() < bytes * 2 {
        let word = random_u64().to_le_bytes();
        for b in word.iter().take(bytes - out.len() / 2) {
            out.push_str(&format!("{b:02x}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seeded_thread_draws_the_same_ids_again_and_others_differ() {
        seed_this_thread(Some(7));
        let first: Vec<u64> = (0..4).map(|_| random_u64()).collect();
        let hex = random_hex(16);
        seed_this_thread(Some(7));
        let again: Vec<u64> = (0..4).map(|_| random_u64()).collect();
        assert_eq!(first, again);
        assert_eq!(hex, random_hex(16));
        assert_eq!(hex.len(), 32);
        seed_this_thread(None);
        let os: Vec<u64> = (0..4).map(|_| random_u64()).collect();
        assert_ne!(first, os);
        assert_eq!(random_hex(5).len(), 10);
    }
}

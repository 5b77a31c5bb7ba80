//! The seeded random source that makes every choice of a simulation (SplitMix64: small,
//! fast, and the same sequence on every machine).

/// A deterministic random sequence: weft's SplitMix64, with the draws a simulation makes.
#[derive(Clone, Debug)]
pub struct Rng(weft_history::SplitMix64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(weft_history::SplitMix64::new(seed))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }

    /// A number in `low..=high`.
    pub fn between(&mut self, low: u64, high: u64) -> u64 {
        low + self.below(high.saturating_sub(low) + 1)
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        let unit = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        unit < p
    }
}

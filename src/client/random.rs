//! Per-process randomness for correlation ids, client ids and backoff jitter, without a
//! dependency: seeded from the OS through std's randomly keyed `RandomState`, stepped
//! with xorshift64*. Not for cryptography.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};

/// A small pseudo-random generator.
#[derive(Debug, Clone)]
pub struct Random {
    state: u64,
}

impl Random {
    /// A generator seeded from the OS (each `RandomState` gets fresh random keys).
    pub fn from_os() -> Self {
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u64(std::process::id() as u64);
        Self::from_seed(hasher.finish())
    }

    /// A generator with a fixed seed (tests).
    pub fn from_seed(seed: u64) -> Self {
        Self { state: seed | 1 }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.state = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A random non-zero u32 (client ids: 0 means auto-assign).
    pub fn nonzero_u32(&mut self) -> u32 {
        loop {
            let v = (self.next_u64() >> 32) as u32;
            if v != 0 {
                return v;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Random;

    #[test]
    fn os_seeded_generators_differ() {
        let a: Vec<u64> = (0..4)
            .map({
                let mut r = Random::from_os();
                move |_| r.next_u64()
            })
            .collect();
        let b: Vec<u64> = (0..4)
            .map({
                let mut r = Random::from_os();
                move |_| r.next_u64()
            })
            .collect();
        assert_ne!(a, b);
    }

    #[test]
    fn nonzero_u32_is_never_zero() {
        let mut r = Random::from_seed(0);
        assert!((0..10_000).all(|_| r.nonzero_u32() != 0));
    }
}

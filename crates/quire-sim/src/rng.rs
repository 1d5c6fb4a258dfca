//! Deterministic random streams and hashes: every stream is keyed by (seed, purpose, entity,
//! day), so results do not depend on thread scheduling.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// SplitMix64 finalizer: a bijection on u64 with good mixing.
pub fn mix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// FNV-1a over the bytes of `s`, then mixed.
pub fn hash_str(s: &str) -> u64 {
    let mut h: u64 = 0xCBF2_9CE4_8422_2325;
    for b in s.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01B3);
    }
    mix64(h)
}

/// The random stream for (seed, purpose, entity, day).
pub fn rng_for(seed: u64, purpose: u64, entity: u64, day: u64) -> ChaCha8Rng {
    let k = mix64(mix64(mix64(seed ^ mix64(purpose)) ^ entity) ^ day.wrapping_mul(0x9E37));
    let mut bytes = [0u8; 32];
    for (i, chunk) in bytes.chunks_mut(8).enumerate() {
        chunk.copy_from_slice(
            &mix64(k ^ (i as u64).wrapping_mul(0xA24B_AED4_963E_E407)).to_le_bytes(),
        );
    }
    ChaCha8Rng::from_seed(bytes)
}

/// Logistic function.
pub fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

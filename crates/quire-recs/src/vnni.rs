//! Exact top-N by dot product with int8 candidate generation on AVX-512 VNNI.
//!
//! Every score of the user × book product must be looked at, and in f32 that product is the
//! batch job's largest cost (1.3·10¹¹ flops for 100,000 users × 10,000 books × 64 factors).
//! Here the factors are quantised to 8 bits (one scale per user row, one for all items), the
//! approximate scores come from `vpdpbusd` (64 byte products per instruction, 4× the f32 FMA
//! rate), and a proven error bound keeps the result exact: with `u = t·p + d`, `v = s·q + e`,
//! `|d| ≤ t/2`, `|e| ≤ s/2` per component,
//! `|u·v − t·s·(p·q)| ≤ t·s·(‖p‖₁ + ‖q‖₁ + k/2) / 2 =: t·s·B`. If `θ̂` is the N-th best
//! approximate score, the true N-th best score is at least `θ̂ − B` and every book of the true
//! top N scores at least `θ̂ − 2B` approximately; only those candidates (about 2N on the
//! benchmark's data) are rescored in f32 and ranked like [`crate::topk`]: best first, ties by
//! lower index.
//!
//! `unsafe` is needed for two things only, both local to this module: calling the kernel,
//! compiled with `#[target_feature]`, after [`available`] checked the CPU at run time; and
//! the unaligned 64-byte loads and stores of `std::arch`, whose pointers come from slices whose
//! lengths are checked right before. No crate offers int8 VNNI dot products with a
//! caller-controlled scan, which the threshold needs.
#![allow(unsafe_code)]

use std::arch::x86_64::{
    __m512i, _mm512_cmpge_epi32_mask, _mm512_dpbusd_epi32, _mm512_loadu_si512,
    _mm512_mask_mov_epi32, _mm512_reduce_max_epi32, _mm512_set1_epi32, _mm512_storeu_si512,
};

use ndarray::ArrayView2;
use rayon::prelude::*;

use crate::RecList;

/// Users scanned together against one tile of 16 items (accumulators held in registers).
const R: usize = 8;
/// Groups of `R` users per rayon task.
const GROUPS_PER_TASK: usize = 16;

/// True when the CPU has the instructions the kernel uses.
pub(crate) fn available() -> bool {
    is_x86_feature_detected!("avx512f")
        && is_x86_feature_detected!("avx512bw")
        && is_x86_feature_detected!("avx512vnni")
}

/// Items quantised with one scale and packed for the kernel: for tile `t` (items
/// `16t..16t+16`) and chunk `c` (factors `4c..4c+4`), 16 little-endian words, word `l` holding
/// the 4 signed bytes of item `16t + l`.
struct PackedItems {
    n_items: usize,
    tiles: usize,
    chunks: usize,
    words: Vec<i32>,
    /// Per item (padded to whole tiles): `-128 · Σ q`, undoing the users' `+128` shift.
    init: Vec<i32>,
    /// `max_j ‖q_j‖₁`.
    max_l1: f64,
}

impl PackedItems {
    fn new(items: ArrayView2<f32>) -> PackedItems {
        let (n_items, k) = items.dim();
        let max = items.iter().fold(0f32, |m, &x| m.max(x.abs()));
        let inv = if max > 0.0 { 127.0 / max } else { 0.0 };
        let chunks = k.div_ceil(4);
        let tiles = n_items.div_ceil(16);
        let mut words = vec![0i32; tiles * chunks * 16];
        let mut init = vec![0i32; tiles * 16];
        let mut max_l1 = 0f64;
        for (j, row) in items.outer_iter().enumerate() {
            let (t, l) = (j / 16, j % 16);
            let mut bytes = vec![0i8; chunks * 4];
            for (b, &x) in bytes.iter_mut().zip(row.iter()) {
                *b = (x * inv).round().clamp(-127.0, 127.0) as i8;
            }
            let sum: i32 = bytes.iter().map(|&b| i32::from(b)).sum();
            let l1: i32 = bytes.iter().map(|&b| i32::from(b).abs()).sum();
            max_l1 = max_l1.max(f64::from(l1));
            init[j] = -128 * sum;
            for c in 0..chunks {
                let w = [
                    bytes[4 * c],
                    bytes[4 * c + 1],
                    bytes[4 * c + 2],
                    bytes[4 * c + 3],
                ];
                words[(t * chunks + c) * 16 + l] = i32::from_le_bytes(w.map(|b| b as u8));
            }
        }
        PackedItems {
            n_items,
            tiles,
            chunks,
            words,
            init,
            max_l1,
        }
    }

    /// Lanes of tile `t` that hold real items.
    fn valid(&self, t: usize) -> u16 {
        let left = self.n_items - 16 * t;
        if left >= 16 {
            u16::MAX
        } else {
            (1u16 << left) - 1
        }
    }
}

/// Pass 1: the `R` users' approximate scores against every tile, stored in `scores`
/// (`[tile][user][lane]`, excluded and padding lanes set to `i32::MIN`), and each tile's best
/// score per user in `tile_max`.
///
/// # Safety
/// The CPU must have AVX-512 F, BW and VNNI ([`available`]).
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn approx_scores(
    items: &PackedItems,
    users: &[[i32; R]],
    excluded: &[[u16; R]],
    scores: &mut [i32],
    tile_max: &mut [[i32; R]],
) {
    let chunks = items.chunks;
    let tiles = items.tiles;
    assert!(users.len() == chunks && excluded.len() == tiles && tile_max.len() == tiles);
    assert!(scores.len() == tiles * R * 16);
    assert!(items.words.len() == tiles * chunks * 16 && items.init.len() == tiles * 16);
    let lowest = _mm512_set1_epi32(i32::MIN);
    for t in 0..tiles {
        // SAFETY: `init` holds 16 words per tile (asserted above).
        let init = unsafe { _mm512_loadu_si512(items.init.as_ptr().add(t * 16).cast()) };
        let mut acc: [__m512i; R] = [init; R];
        for (c, user_words) in users.iter().enumerate() {
            // SAFETY: `words` holds 16 words per (tile, chunk) (asserted above).
            let v = unsafe {
                _mm512_loadu_si512(items.words.as_ptr().add((t * chunks + c) * 16).cast())
            };
            for r in 0..R {
                acc[r] = _mm512_dpbusd_epi32(acc[r], _mm512_set1_epi32(user_words[r]), v);
            }
        }
        let valid = items.valid(t);
        for r in 0..R {
            let kept = _mm512_mask_mov_epi32(lowest, valid & !excluded[t][r], acc[r]);
            // SAFETY: `scores` holds 16 words per (tile, user) (asserted above).
            unsafe { _mm512_storeu_si512(scores.as_mut_ptr().add((t * R + r) * 16).cast(), kept) };
            tile_max[t][r] = _mm512_reduce_max_epi32(kept);
        }
    }
}

/// Pass 2: calls `hit(r, item, score)` for every stored score of user `r` at or above
/// `floors[r]`. Tiles are read last to first: the last ones written are still in L2.
///
/// # Safety
/// The CPU must have AVX-512 F ([`available`]).
#[target_feature(enable = "avx512f")]
unsafe fn collect(scores: &[i32], floors: &[i32; R], hit: &mut impl FnMut(usize, u32, i32)) {
    let tiles = scores.len() / (R * 16);
    for t in (0..tiles).rev() {
        for (r, &floor) in floors.iter().enumerate() {
            let at = (t * R + r) * 16;
            // SAFETY: `at + 16 <= scores.len()` since `t < tiles`.
            let v = unsafe { _mm512_loadu_si512(scores.as_ptr().add(at).cast()) };
            let mut mask = _mm512_cmpge_epi32_mask(v, _mm512_set1_epi32(floor));
            while mask != 0 {
                let l = mask.trailing_zeros() as usize;
                mask &= mask - 1;
                hit(r, (t * 16 + l) as u32, scores[at + l]);
            }
        }
    }
}

/// The N-th largest of `values` (above `i32::MIN`), or `None` when there are fewer.
fn nth_best(values: &mut [i32], n: usize) -> Option<i32> {
    if n == 0 || values.len() < n {
        return None;
    }
    let (_, &mut nth, _) = values.select_nth_unstable_by(n - 1, |a, b| b.cmp(a));
    (nth > i32::MIN).then_some(nth)
}

/// `theta - width`, or every real score when there is no `theta`; always above `i32::MIN`,
/// the mark of excluded and padding lanes.
fn floor_below(theta: Option<i32>, width: i64) -> i32 {
    let lowest = i64::from(i32::MIN) + 1;
    theta.map_or(lowest, |t| (i64::from(t) - width).max(lowest)) as i32
}

/// Same contract as [`crate::topk::top_n_dot`]; the caller checked [`available`].
pub(crate) fn top_n_dot(
    queries: ArrayView2<f32>,
    items: ArrayView2<f32>,
    n: usize,
    ignore: impl Fn(usize) -> bool + Sync,
    excluded: impl Fn(usize, &mut Vec<u32>) + Sync,
) -> Vec<RecList> {
    // Rows must be contiguous for the f32 rescoring.
    let queries = queries.as_standard_layout();
    let items = items.as_standard_layout();
    let (queries, items) = (queries.view(), items.view());
    let packed = PackedItems::new(items);
    let k = queries.ncols();
    let n_queries = queries.nrows();
    let task = R * GROUPS_PER_TASK;
    let starts: Vec<usize> = (0..n_queries).step_by(task).collect();
    starts
        .par_iter()
        .flat_map_iter(|&start| {
            let end = (start + task).min(n_queries);
            let mut scratch = Scratch {
                scores: vec![0; packed.tiles * R * 16],
                tile_max: vec![[i32::MIN; R]; packed.tiles],
                masks: vec![[0; R]; packed.tiles],
                buf: Vec::new(),
            };
            let mut out = Vec::with_capacity(end - start);
            for g in (start..end).step_by(R) {
                let g1 = end.min(g + R);
                out.extend(group(
                    &packed,
                    queries,
                    items,
                    k,
                    g,
                    g1,
                    n,
                    &ignore,
                    &excluded,
                    &mut scratch,
                ));
            }
            out
        })
        .collect()
}

/// Top-N lists of queries `g0..g1` (at most `R`).
///
/// Pass 1 gives every approximate score and each tile's best; the N-th best of the tile maxima
/// (distinct items) is a lower bound of the N-th best approximate score `θ̂` and, on
/// Gaussian-like scores, already close to it, so pass 2 collects few more candidates than the
/// final window `θ̂ − 2B` holds.
#[allow(clippy::too_many_arguments)]
fn group(
    packed: &PackedItems,
    queries: ArrayView2<f32>,
    items: ArrayView2<f32>,
    k: usize,
    g0: usize,
    g1: usize,
    n: usize,
    ignore: &(impl Fn(usize) -> bool + Sync),
    excluded: &(impl Fn(usize, &mut Vec<u32>) + Sync),
    scratch: &mut Scratch,
) -> Vec<RecList> {
    let chunks = packed.chunks;
    // Users as unsigned bytes `p + 128`, chunk-major; padding rows and factors are `128`
    // (that is, p = 0).
    let mut users = vec![[i32::from_le_bytes([128; 4]); R]; chunks];
    let mut active = [false; R];
    let mut widths = [0i64; R];
    scratch.masks.iter_mut().for_each(|m| *m = [0; R]);
    for r in 0..R {
        let q = g0 + r;
        if q >= g1 || n == 0 || ignore(q) {
            continue;
        }
        active[r] = true;
        let row = queries.row(q);
        let max = row.iter().fold(0f32, |m, &x| m.max(x.abs()));
        let inv = if max > 0.0 { 127.0 / max } else { 0.0 };
        let mut bytes = vec![128u8; chunks * 4];
        let mut l1 = 0f64;
        for (b, &x) in bytes.iter_mut().zip(row.iter()) {
            let p = (x * inv).round().clamp(-127.0, 127.0) as i32;
            l1 += f64::from(p.abs());
            *b = (p + 128) as u8;
        }
        for (c, words) in users.iter_mut().enumerate() {
            words[r] = i32::from_le_bytes([
                bytes[4 * c],
                bytes[4 * c + 1],
                bytes[4 * c + 2],
                bytes[4 * c + 3],
            ]);
        }
        // 2B with margin for the rounding of the scales (relative 1e-3, plus 4 units).
        let b = (l1 + packed.max_l1 + k as f64 / 2.0) / 2.0;
        widths[r] = (2.0 * b * 1.001 + 4.0).ceil() as i64;
        scratch.buf.clear();
        excluded(q, &mut scratch.buf);
        for &j in &scratch.buf {
            if let Some(tile) = scratch.masks.get_mut(j as usize / 16) {
                tile[r] |= 1 << (j % 16);
            }
        }
    }
    // SAFETY: callers reach this module only after `available()` returned true.
    unsafe {
        approx_scores(
            packed,
            &users,
            &scratch.masks,
            &mut scratch.scores,
            &mut scratch.tile_max,
        )
    };
    let mut floors = [i32::MAX; R];
    for r in (0..R).filter(|&r| active[r]) {
        let mut maxima: Vec<i32> = scratch.tile_max.iter().map(|m| m[r]).collect();
        floors[r] = floor_below(nth_best(&mut maxima, n), widths[r]);
    }
    let mut cands: Vec<Vec<(u32, i32)>> = vec![Vec::new(); R];
    // SAFETY: as above.
    unsafe {
        collect(&scratch.scores, &floors, &mut |r, j, score| {
            cands[r].push((j, score))
        })
    };

    (0..R)
        .filter(|&r| g0 + r < g1)
        .map(|r| {
            if !active[r] {
                return Vec::new();
            }
            let cands = &cands[r];
            let mut approx: Vec<i32> = cands.iter().map(|c| c.1).collect();
            let floor = floor_below(nth_best(&mut approx, n), widths[r]);
            let row = queries.row(g0 + r);
            let mut exact: RecList = cands
                .iter()
                .filter(|c| c.1 >= floor)
                // SAFETY: callers reach this module only after `available()` returned true.
                .map(|&(j, _)| {
                    (j, unsafe {
                        dot(row.as_slice(), items.row(j as usize).as_slice())
                    })
                })
                .filter(|c| !c.1.is_nan())
                .collect();
            let order = |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
            if exact.len() > n {
                exact.select_nth_unstable_by(n - 1, order);
                exact.truncate(n);
            }
            exact.sort_unstable_by(order);
            exact
        })
        .collect()
}

/// Buffers reused across the groups of one rayon task.
struct Scratch {
    scores: Vec<i32>,
    tile_max: Vec<[i32; R]>,
    masks: Vec<[u16; R]>,
    buf: Vec<u32>,
}

/// f32 dot product with sixteen independent sums (one AVX-512 register); `None` (a row not
/// contiguous, which [`top_n_dot`] rules out) gives NaN, never selected.
///
/// # Safety
/// The CPU must have AVX-512 F ([`available`]).
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn dot(a: Option<&[f32]>, b: Option<&[f32]>) -> f32 {
    let (Some(a), Some(b)) = (a, b) else {
        return f32::NAN;
    };
    let mut acc = [0f32; 16];
    let (ca, ra) = a.as_chunks::<16>();
    let (cb, rb) = b.as_chunks::<16>();
    for (x, y) in ca.iter().zip(cb) {
        for l in 0..16 {
            acc[l] += x[l] * y[l];
        }
    }
    let mut sum = 0f32;
    for (x, y) in ra.iter().zip(rb) {
        sum += x * y;
    }
    acc.iter().sum::<f32>() + sum
}

/// [`dot`] for tests, which check [`available`] first.
#[cfg(test)]
pub(crate) fn exact_dot(a: Option<&[f32]>, b: Option<&[f32]>) -> f32 {
    assert!(available());
    // SAFETY: asserted just above.
    unsafe { dot(a, b) }
}

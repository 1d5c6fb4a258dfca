//! The fitted factors and their file format.
//!
//! # File format, version 1
//!
//! All integers and floats little-endian; no padding.
//!
//! | offset | size | field |
//! |---:|---:|---|
//! | 0 | 8 | magic `QUIRECF\0` (`51 55 49 52 45 43 46 00`) |
//! | 8 | 4 | format version, `u32` = 1 |
//! | 12 | 4 | factors `f`, `u32` (≥ 1) |
//! | 16 | 8 | users `n_u`, `u64` |
//! | 24 | 8 | items `n_i`, `u64` |
//! | 32 | 4·n_u·f | user factors, `f32`, row-major (user 0's `f` values, then user 1's, …) |
//! | … | 4·n_i·f | item factors, `f32`, row-major |
//!
//! Nothing may follow. Readers reject another magic or version, a truncated body, trailing
//! bytes and non-finite factors. Integrity (checksums) is the registry's job.

use std::borrow::Cow;
use std::io::{Read, Write};

use ndarray::Array2;

use crate::csr::Csr;
use crate::error::{CfError, Result};
use crate::train::{AlsConfig, confidences, weighted_loss};

/// The magic bytes opening a model file.
pub const MAGIC: [u8; 8] = *b"QUIRECF\0";
/// The format version this crate writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// A fitted factor model: the score of item `i` for user `u` is
/// `user_factors.row(u) · item_factors.row(i)`.
#[derive(Debug, Clone, PartialEq)]
pub struct AlsModel {
    /// `n_users × factors`.
    pub user_factors: Array2<f32>,
    /// `n_items × factors`.
    pub item_factors: Array2<f32>,
}

impl AlsModel {
    /// Number of users (rows of `user_factors`).
    pub fn n_users(&self) -> usize {
        self.user_factors.nrows()
    }

    /// Number of items (rows of `item_factors`).
    pub fn n_items(&self) -> usize {
        self.item_factors.nrows()
    }

    /// Number of latent factors (columns of `user_factors`).
    pub fn factors(&self) -> usize {
        self.user_factors.ncols()
    }

    pub(crate) fn from_row_major(users: Vec<f32>, items: Vec<f32>, f: usize) -> Result<Self> {
        let shape_err = |e: ndarray::ShapeError| CfError::Shape(format!("factor matrix: {e}"));
        let n_users = users.len() / f;
        let n_items = items.len() / f;
        Ok(Self {
            user_factors: Array2::from_shape_vec((n_users, f), users).map_err(shape_err)?,
            item_factors: Array2::from_shape_vec((n_items, f), items).map_err(shape_err)?,
        })
    }

    /// Errors unless both factor matrices have the same number of columns (≥ 1).
    pub(crate) fn check(&self) -> Result<()> {
        if self.user_factors.ncols() != self.item_factors.ncols() || self.factors() == 0 {
            return Err(CfError::Shape(format!(
                "user factors have {} columns, item factors {}; need the same number, >= 1",
                self.user_factors.ncols(),
                self.item_factors.ncols()
            )));
        }
        Ok(())
    }

    /// The weighted loss `implicit` reports for these factors on `interactions` (users ×
    /// items, confidence `1 + config.alpha * value`, penalty `config.regularization`):
    /// `[Σ_{u,i} c_ui (p_ui − x_u·y_i)² + λ(Σ‖x_u‖² + Σ‖y_i‖²)] / Σ_{u,i} c_ui` over all cells,
    /// where unstored cells have `c = 1`, `p = 0`.
    pub fn loss(&self, interactions: &Csr, config: &AlsConfig) -> Result<f64> {
        self.check()?;
        if interactions.shape() != (self.n_users(), self.n_items()) {
            return Err(CfError::Shape(format!(
                "interactions are {} x {}, the model has {} users and {} items",
                interactions.n_rows(),
                interactions.n_cols(),
                self.n_users(),
                self.n_items()
            )));
        }
        let conf = confidences(interactions, config.alpha)?;
        Ok(weighted_loss(
            &conf,
            &row_major(&self.user_factors),
            &row_major(&self.item_factors),
            self.factors(),
            config.regularization,
        ))
    }

    /// Writes the model in the format above.
    pub fn write_to(&self, mut w: impl Write) -> Result<()> {
        self.check()?;
        let io = |source| CfError::Io {
            what: "writing",
            source,
        };
        let factors = u32::try_from(self.factors())
            .map_err(|_| CfError::Shape(format!("{} factors do not fit u32", self.factors())))?;
        let mut header = Vec::with_capacity(32);
        header.extend_from_slice(&MAGIC);
        header.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        header.extend_from_slice(&factors.to_le_bytes());
        header.extend_from_slice(&(self.n_users() as u64).to_le_bytes());
        header.extend_from_slice(&(self.n_items() as u64).to_le_bytes());
        w.write_all(&header).map_err(io)?;
        let mut buf = Vec::with_capacity(1 << 16);
        for m in [&self.user_factors, &self.item_factors] {
            for chunk in row_major(m).chunks(1 << 14) {
                buf.clear();
                for v in chunk {
                    buf.extend_from_slice(&v.to_le_bytes());
                }
                w.write_all(&buf).map_err(io)?;
            }
        }
        w.flush().map_err(io)
    }

    /// Reads a model written by [`AlsModel::write_to`]. Never trusts the header's sizes for
    /// allocation: memory grows only as data actually arrives.
    pub fn read_from(mut r: impl Read) -> Result<Self> {
        let mut header = [0u8; 32];
        read_full(&mut r, &mut header, "the 32-byte header")?;
        if header[0..8] != MAGIC {
            return Err(CfError::Format(format!(
                "bad magic {:02x?}; expected {:02x?} (not a Quire CF model)",
                &header[0..8],
                MAGIC
            )));
        }
        let u32_at =
            |o: usize| u32::from_le_bytes([header[o], header[o + 1], header[o + 2], header[o + 3]]);
        let u64_at = |o: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&header[o..o + 8]);
            u64::from_le_bytes(b)
        };
        let version = u32_at(8);
        if version != FORMAT_VERSION {
            return Err(CfError::Format(format!(
                "format version {version} is not supported (this build reads {FORMAT_VERSION})"
            )));
        }
        let f = u32_at(12) as usize;
        if f == 0 {
            return Err(CfError::Format("header says 0 factors".to_owned()));
        }
        let dims = |n: u64, what: &str| -> Result<usize> {
            usize::try_from(n)
                .ok()
                .and_then(|n| n.checked_mul(f))
                .filter(|&len| len.checked_mul(4).is_some())
                .ok_or_else(|| {
                    CfError::Format(format!("header: {n} {what} x {f} factors is too large"))
                })
        };
        let user_len = dims(u64_at(16), "users")?;
        let item_len = dims(u64_at(24), "items")?;
        let users = read_floats(&mut r, user_len, "user factors")?;
        let items = read_floats(&mut r, item_len, "item factors")?;
        let mut extra = [0u8; 1];
        loop {
            match r.read(&mut extra) {
                Ok(0) => break,
                Ok(_) => {
                    return Err(CfError::Format(
                        "trailing bytes after the item factors".to_owned(),
                    ));
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(CfError::Io {
                        what: "reading past the item factors",
                        source,
                    });
                }
            }
        }
        Self::from_row_major(users, items, f)
    }
}

/// The matrix's values in row-major order, borrowed when it already is.
fn row_major(m: &Array2<f32>) -> Cow<'_, [f32]> {
    match m.as_slice() {
        Some(s) => Cow::Borrowed(s),
        None => Cow::Owned(m.iter().copied().collect()),
    }
}

/// `read_exact` with a format error naming `what` on a short read.
fn read_full(r: &mut impl Read, buf: &mut [u8], what: &str) -> Result<()> {
    r.read_exact(buf).map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            CfError::Format(format!("truncated while reading {what}"))
        } else {
            CfError::Io {
                what: "reading",
                source: e,
            }
        }
    })
}

/// Reads `len` little-endian `f32`s, in chunks, rejecting non-finite values.
fn read_floats(r: &mut impl Read, len: usize, what: &str) -> Result<Vec<f32>> {
    const CHUNK: usize = 1 << 14;
    let mut out = Vec::with_capacity(len.min(CHUNK));
    let mut buf = vec![0u8; 4 * CHUNK];
    while out.len() < len {
        let n = (len - out.len()).min(CHUNK);
        let bytes = &mut buf[..4 * n];
        read_full(
            r,
            bytes,
            &format!("{what} ({len} values expected, {} read)", out.len()),
        )?;
        for b in bytes.chunks_exact(4) {
            let v = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            if !v.is_finite() {
                return Err(CfError::Format(format!(
                    "{what}: value {} is {v}",
                    out.len()
                )));
            }
            out.push(v);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    fn model() -> AlsModel {
        AlsModel {
            user_factors: array![[1.0, -2.5], [0.0, 3.25], [1e-7, 7.0]],
            item_factors: array![[0.5, 0.25]],
        }
    }

    fn bytes(m: &AlsModel) -> Vec<u8> {
        let mut out = Vec::new();
        m.write_to(&mut out).unwrap();
        out
    }

    #[test]
    fn round_trips_and_has_the_documented_layout() {
        let m = model();
        let b = bytes(&m);
        assert_eq!(b.len(), 32 + 4 * (3 * 2 + 2));
        assert_eq!(&b[0..8], b"QUIRECF\0");
        assert_eq!(&b[8..12], &[1, 0, 0, 0]);
        assert_eq!(&b[12..16], &[2, 0, 0, 0]);
        assert_eq!(&b[16..24], &[3, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&b[24..32], &[1, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&b[32..36], &1.0f32.to_le_bytes());
        assert_eq!(&b[36..40], &(-2.5f32).to_le_bytes());
        assert_eq!(&b[56..60], &0.5f32.to_le_bytes());
        assert_eq!(AlsModel::read_from(&b[..]).unwrap(), m);
        // A non-standard layout is written in logical (row-major) order.
        let t = AlsModel {
            user_factors: array![[1.0, 0.0, 1e-7], [-2.5, 3.25, 7.0]].reversed_axes(),
            item_factors: m.item_factors.clone(),
        };
        assert_eq!(bytes(&t), b);
    }

    fn format_error(b: &[u8]) -> String {
        match AlsModel::read_from(b) {
            Err(CfError::Format(msg)) => msg,
            other => panic!("expected a format error, got {other:?}"),
        }
    }

    #[test]
    fn rejects_corrupt_input() {
        let b = bytes(&model());
        for len in 0..b.len() {
            assert!(format_error(&b[..len]).contains("truncated"), "len {len}");
        }
        let mut trailing = b.clone();
        trailing.push(0);
        assert!(format_error(&trailing).contains("trailing"));
        let mut magic = b.clone();
        magic[0] = b'X';
        assert!(format_error(&magic).contains("magic"));
        let mut version = b.clone();
        version[8] = 2;
        assert!(format_error(&version).contains("version 2"));
        let mut zero = b.clone();
        zero[12] = 0;
        assert!(format_error(&zero).contains("0 factors"));
        let mut nan = b.clone();
        nan[40..44].copy_from_slice(&f32::NAN.to_le_bytes());
        assert!(format_error(&nan).contains("user factors: value 2 is NaN"));
        // A huge header over a short body: an error, not an allocation of the claimed size.
        let mut huge = b[..32].to_vec();
        huge[16..24].copy_from_slice(&(u64::MAX / 4).to_le_bytes());
        assert!(format_error(&huge).contains("too large"));
        huge[16..24].copy_from_slice(&(1u64 << 40).to_le_bytes());
        huge.extend_from_slice(&[0; 64]);
        assert!(format_error(&huge).contains("truncated"));
    }

    #[test]
    fn mismatched_factor_widths_are_an_error() {
        let m = AlsModel {
            user_factors: Array2::zeros((2, 3)),
            item_factors: Array2::zeros((2, 2)),
        };
        assert!(matches!(m.write_to(Vec::new()), Err(CfError::Shape(_))));
    }
}

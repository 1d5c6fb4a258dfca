//! A small compressed-sparse-row matrix: users × items interactions.
//!
//! Hand-written rather than `sprs`: ALS and the metrics need only construction from triplets,
//! a transpose and row slices, and owning the layout (sorted `u32` column indices, `f32`
//! values) lets the solvers read rows without conversions.

use crate::error::{CfError, Result};

/// A sparse `n_rows × n_cols` matrix of `f32` in CSR form. Within a row, column indices are
/// strictly increasing (duplicates were summed when it was built).
#[derive(Debug, Clone, PartialEq)]
pub struct Csr {
    n_rows: usize,
    n_cols: usize,
    /// `indptr[r]..indptr[r + 1]` is row `r`'s range in `indices` and `values`.
    indptr: Vec<usize>,
    indices: Vec<u32>,
    values: Vec<f32>,
}

/// Largest number of rows or columns: indices are `u32`.
const MAX_DIM: usize = 1 << 32;

impl Csr {
    /// Builds the matrix from `(row, col, value)` triplets in any order; triplets naming the
    /// same cell are summed. A stored cell is an interaction even when its value is 0.
    ///
    /// Errors when a triplet lies outside `n_rows × n_cols`, when a value is not finite, or when
    /// a dimension exceeds 2^32.
    pub fn from_triplets(
        n_rows: usize,
        n_cols: usize,
        triplets: &[(u32, u32, f32)],
    ) -> Result<Csr> {
        if n_rows > MAX_DIM || n_cols > MAX_DIM {
            return Err(CfError::TooLarge { n_rows, n_cols });
        }
        let mut row_counts = vec![0usize; n_rows + 1];
        for (index, &(row, col, value)) in triplets.iter().enumerate() {
            if row as usize >= n_rows || col as usize >= n_cols {
                return Err(CfError::OutOfRange {
                    index,
                    row,
                    col,
                    n_rows,
                    n_cols,
                });
            }
            if !value.is_finite() {
                return Err(CfError::NotFinite {
                    index,
                    row,
                    col,
                    value,
                });
            }
            row_counts[row as usize + 1] += 1;
        }
        // Counting sort by row, then sort each row by column and merge duplicates.
        for r in 0..n_rows {
            row_counts[r + 1] += row_counts[r];
        }
        let mut next = row_counts.clone();
        let mut cells = vec![(0u32, 0f32); triplets.len()];
        for &(row, col, value) in triplets {
            let slot = &mut next[row as usize];
            cells[*slot] = (col, value);
            *slot += 1;
        }
        let mut indptr = Vec::with_capacity(n_rows + 1);
        let mut indices = Vec::with_capacity(triplets.len());
        let mut values = Vec::with_capacity(triplets.len());
        indptr.push(0);
        for r in 0..n_rows {
            let row = &mut cells[row_counts[r]..row_counts[r + 1]];
            row.sort_unstable_by_key(|&(col, _)| col);
            let start = indices.len();
            for &(col, value) in row.iter() {
                if indices.len() > start && indices.last() == Some(&col) {
                    if let Some(last) = values.last_mut() {
                        *last += value;
                    }
                } else {
                    indices.push(col);
                    values.push(value);
                }
            }
            indptr.push(indices.len());
        }
        Ok(Csr {
            n_rows,
            n_cols,
            indptr,
            indices,
            values,
        })
    }

    /// Number of rows (users).
    pub fn n_rows(&self) -> usize {
        self.n_rows
    }

    /// Number of columns (items).
    pub fn n_cols(&self) -> usize {
        self.n_cols
    }

    /// `(n_rows, n_cols)`.
    pub fn shape(&self) -> (usize, usize) {
        (self.n_rows, self.n_cols)
    }

    /// Number of stored cells.
    pub fn nnz(&self) -> usize {
        self.indices.len()
    }

    /// Row `r`: its column indices (strictly increasing) and their values.
    ///
    /// # Panics
    /// If `r >= n_rows`, like slice indexing.
    pub fn row(&self, r: usize) -> (&[u32], &[f32]) {
        let range = self.indptr[r]..self.indptr[r + 1];
        (&self.indices[range.clone()], &self.values[range])
    }

    /// Every stored cell as `(row, col, value)`, row by row, columns increasing.
    pub fn iter(&self) -> impl Iterator<Item = (u32, u32, f32)> + '_ {
        (0..self.n_rows).flat_map(move |r| {
            let (cols, vals) = self.row(r);
            cols.iter().zip(vals).map(move |(&c, &v)| (r as u32, c, v))
        })
    }

    /// The same matrix with every value replaced by `f(value)` (the pattern is kept).
    pub fn map_values(&self, f: impl Fn(f32) -> f32) -> Csr {
        Csr {
            values: self.values.iter().map(|&v| f(v)).collect(),
            ..self.clone()
        }
    }

    /// The transpose (items × users), in CSR form.
    pub fn transpose(&self) -> Csr {
        let mut counts = vec![0usize; self.n_cols + 1];
        for &c in &self.indices {
            counts[c as usize + 1] += 1;
        }
        for c in 0..self.n_cols {
            counts[c + 1] += counts[c];
        }
        let indptr = counts.clone();
        let mut next = counts;
        let mut indices = vec![0u32; self.nnz()];
        let mut values = vec![0f32; self.nnz()];
        // Rows are visited in increasing order, so each transposed row comes out sorted.
        for (r, (cols, vals)) in (0..self.n_rows).map(|r| (r, self.row(r))) {
            for (&c, &v) in cols.iter().zip(vals) {
                let slot = &mut next[c as usize];
                indices[*slot] = r as u32;
                values[*slot] = v;
                *slot += 1;
            }
        }
        Csr {
            n_rows: self.n_cols,
            n_cols: self.n_rows,
            indptr,
            indices,
            values,
        }
    }

    /// Number of stored cells in each column (for a users × items matrix: how many users
    /// interacted with each item).
    pub fn col_counts(&self) -> Vec<usize> {
        let mut counts = vec![0usize; self.n_cols];
        for &c in &self.indices {
            counts[c as usize] += 1;
        }
        counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_sorted_rows_and_sums_duplicates() {
        let m = Csr::from_triplets(
            3,
            4,
            &[
                (2, 1, 1.0),
                (0, 3, 2.0),
                (0, 1, 1.5),
                (2, 1, 0.5),
                (0, 3, 1.0),
            ],
        )
        .unwrap();
        assert_eq!(m.shape(), (3, 4));
        assert_eq!(m.nnz(), 3);
        assert_eq!(m.row(0), (&[1u32, 3][..], &[1.5f32, 3.0][..]));
        assert_eq!(m.row(1), (&[][..], &[][..]));
        assert_eq!(m.row(2), (&[1u32][..], &[1.5f32][..]));
        let cells: Vec<_> = m.iter().collect();
        assert_eq!(cells, vec![(0, 1, 1.5), (0, 3, 3.0), (2, 1, 1.5)]);
    }

    #[test]
    fn rejects_out_of_range_and_non_finite() {
        let err = Csr::from_triplets(2, 2, &[(0, 0, 1.0), (1, 2, 1.0)]).unwrap_err();
        assert!(
            matches!(
                err,
                CfError::OutOfRange {
                    index: 1,
                    col: 2,
                    ..
                }
            ),
            "{err}"
        );
        let err = Csr::from_triplets(2, 2, &[(2, 0, 1.0)]).unwrap_err();
        assert!(
            matches!(
                err,
                CfError::OutOfRange {
                    index: 0,
                    row: 2,
                    ..
                }
            ),
            "{err}"
        );
        let err = Csr::from_triplets(2, 2, &[(0, 0, f32::NAN)]).unwrap_err();
        assert!(matches!(err, CfError::NotFinite { index: 0, .. }), "{err}");
        assert!(matches!(
            Csr::from_triplets(usize::MAX, 1, &[]),
            Err(CfError::TooLarge { .. })
        ));
    }

    #[test]
    fn transpose_swaps_cells_and_twice_is_identity() {
        let m = Csr::from_triplets(3, 2, &[(0, 1, 1.0), (2, 0, 2.0), (1, 1, 3.0)]).unwrap();
        let t = m.transpose();
        assert_eq!(t.shape(), (2, 3));
        assert_eq!(t.row(0), (&[2u32][..], &[2.0f32][..]));
        assert_eq!(t.row(1), (&[0u32, 1][..], &[1.0f32, 3.0][..]));
        assert_eq!(t.transpose(), m);
        assert_eq!(m.col_counts(), vec![1, 2]);
    }

    proptest::proptest! {
        #[test]
        fn matches_a_dense_sum(cells in proptest::collection::vec((0u32..5, 0u32..6, -3i8..4), 0..40)) {
            let triplets: Vec<_> = cells.iter().map(|&(r, c, v)| (r, c, f32::from(v))).collect();
            let m = Csr::from_triplets(5, 6, &triplets).unwrap();
            let mut dense = [[0f32; 6]; 5];
            let mut present = [[false; 6]; 5];
            for &(r, c, v) in &triplets {
                dense[r as usize][c as usize] += v;
                present[r as usize][c as usize] = true;
            }
            let t = m.transpose();
            for r in 0..5 {
                let (cols, vals) = m.row(r);
                proptest::prop_assert!(cols.windows(2).all(|w| w[0] < w[1]));
                let expected: Vec<u32> = (0..6u32).filter(|&c| present[r][c as usize]).collect();
                proptest::prop_assert_eq!(cols, &expected[..]);
                for (&c, &v) in cols.iter().zip(vals) {
                    proptest::prop_assert_eq!(v, dense[r][c as usize]);
                    let (tc, tv) = t.row(c as usize);
                    let pos = tc.binary_search(&(r as u32));
                    proptest::prop_assert!(pos.is_ok());
                    if let Ok(p) = pos {
                        proptest::prop_assert_eq!(tv[p], v);
                    }
                }
            }
            proptest::prop_assert_eq!(t.nnz(), m.nnz());
        }
    }
}

//! Training and validation data in LightGBM's binned form.

use std::path::Path;
use std::sync::Arc;

use crate::ffi::{self, FeatureValue, RawDataset};
use crate::params::Params;
use crate::{Error, Result};

/// A LightGBM dataset: features binned, labels and (for ranking) query groups attached.
///
/// Validation sets must be built with the training set as `reference`, so they share its bin
/// mappers (otherwise LightGBM refuses them). A [`Booster`](crate::Booster) built on a dataset
/// keeps it alive; the `Dataset` value itself can be dropped once the booster exists.
pub struct Dataset {
    pub(crate) raw: Arc<RawDataset>,
    n_rows: usize,
    n_features: usize,
}

impl std::fmt::Debug for Dataset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dataset")
            .field("n_rows", &self.n_rows)
            .field("n_features", &self.n_features)
            .finish()
    }
}

impl Dataset {
    /// Builds a dataset from a dense row-major matrix (`f32` or `f64`; NaN is a missing value).
    ///
    /// - `labels`: one per row, finite (for ranking: integer relevance grades `0..31` unless
    ///   `label_gain` is set — LightGBM checks that when the booster is created).
    /// - `groups`: rows per query, for rows stored query by query; required by the ranking
    ///   objectives. Sizes must be positive and sum to `n_rows`.
    /// - `params`: LightGBM parameters as `key=value` pairs separated by spaces; the dataset
    ///   ones (`max_bin`, `min_data_in_bin`, …) act here. Pass the same string as to the booster.
    /// - `reference`: the training set, when building a validation set.
    pub fn from_dense<T: FeatureValue>(
        rows: &[T],
        n_rows: usize,
        n_cols: usize,
        labels: &[f32],
        groups: Option<&[i32]>,
        params: &str,
        reference: Option<&Dataset>,
    ) -> Result<Self> {
        if n_rows == 0 || n_cols == 0 {
            return Err(Error::Shape {
                what: "feature matrix",
                expected: "at least one row and one column".to_string(),
                actual: format!("{n_rows} rows × {n_cols} columns"),
            });
        }
        if labels.len() != n_rows {
            return Err(Error::Shape {
                what: "labels",
                expected: format!("one per row ({n_rows})"),
                actual: labels.len().to_string(),
            });
        }
        if let Some((row, label)) = labels.iter().enumerate().find(|(_, l)| !l.is_finite()) {
            return Err(Error::Label(format!(
                "row {row} has label {label}: labels must be finite"
            )));
        }
        if let Some(groups) = groups {
            check_groups(groups, n_rows)?;
        }
        if let Some(reference) = reference
            && reference.n_features != n_cols
        {
            return Err(Error::Shape {
                what: "validation matrix",
                expected: format!("{} columns, as the reference dataset", reference.n_features),
                actual: format!("{n_cols} columns"),
            });
        }
        Params::parse(params)?;
        let c_params = ffi::c_string("parameters", params)?;
        let mut raw = RawDataset::from_mat(
            rows,
            n_rows,
            n_cols,
            &c_params,
            reference.map(|r| r.raw.as_ref()),
        )?;
        raw.set_labels(labels)?;
        if let Some(groups) = groups {
            raw.set_groups(groups)?;
        }
        Ok(Self {
            raw: Arc::new(raw),
            n_rows,
            n_features: n_cols,
        })
    }

    /// Loads a data file with LightGBM's own loader, as its CLI does: LibSVM (`label
    /// idx:value …`), CSV or TSV, with query group sizes read from `<path>.query` (one integer
    /// per line) when that file exists, and weights from `<path>.weight`.
    pub fn from_file(path: &Path, params: &str, reference: Option<&Dataset>) -> Result<Self> {
        Params::parse(params)?;
        let c_path = ffi::c_string(
            "data path",
            path.to_str()
                .ok_or_else(|| Error::Path(path.to_path_buf()))?,
        )?;
        let c_params = ffi::c_string("parameters", params)?;
        let raw = RawDataset::from_file(&c_path, &c_params, reference.map(|r| r.raw.as_ref()))?;
        Ok(Self {
            n_rows: raw.num_data()?,
            n_features: raw.num_feature()?,
            raw: Arc::new(raw),
        })
    }

    /// Names the features (one per column) instead of LightGBM's `Column_0`, `Column_1`, ….
    /// Must be called before a booster is built on the dataset.
    pub fn set_feature_names<S: AsRef<str>>(&mut self, names: &[S]) -> Result<()> {
        if names.len() != self.n_features {
            return Err(Error::Shape {
                what: "feature names",
                expected: format!("one per feature ({})", self.n_features),
                actual: names.len().to_string(),
            });
        }
        let names = names
            .iter()
            .map(|n| ffi::c_string("feature name", n.as_ref()))
            .collect::<Result<Vec<_>>>()?;
        let raw = Arc::get_mut(&mut self.raw).ok_or_else(|| {
            Error::Usage(
                "feature names: the dataset is already used by a booster; name the features \
                 before Booster::new"
                    .to_string(),
            )
        })?;
        raw.set_feature_names(&names)
    }

    /// Rows.
    pub fn n_rows(&self) -> usize {
        self.n_rows
    }

    /// Features (columns). For [`from_file`](Self::from_file), the highest feature index seen
    /// plus one.
    pub fn n_features(&self) -> usize {
        self.n_features
    }
}

/// Query group sizes must be positive and cover the rows exactly.
fn check_groups(groups: &[i32], n_rows: usize) -> Result<()> {
    if let Some((i, size)) = groups.iter().enumerate().find(|(_, s)| **s <= 0) {
        return Err(Error::Groups(format!(
            "group {i} has size {size}; sizes must be positive"
        )));
    }
    // Sizes are positive i32s, so the sum fits an i64.
    let total: i64 = groups.iter().map(|&s| i64::from(s)).sum();
    if usize::try_from(total).ok() != Some(n_rows) {
        return Err(Error::Groups(format!(
            "{} groups cover {total} rows but the matrix has {n_rows}; sizes are rows per \
             query, queries stored contiguously",
            groups.len()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check_groups;

    #[test]
    fn group_sizes_must_be_positive_and_cover_the_rows() {
        check_groups(&[3, 2, 1], 6).unwrap();
        let e = check_groups(&[3, 2], 6).unwrap_err().to_string();
        assert_eq!(
            e,
            "query groups: 2 groups cover 5 rows but the matrix has 6; sizes are rows per \
             query, queries stored contiguously"
        );
        assert!(
            check_groups(&[3, 4], 6)
                .unwrap_err()
                .to_string()
                .contains("cover 7 rows")
        );
        let e = check_groups(&[3, 0, 3], 6).unwrap_err().to_string();
        assert_eq!(
            e,
            "query groups: group 1 has size 0; sizes must be positive"
        );
        assert!(
            check_groups(&[7, -1], 6)
                .unwrap_err()
                .to_string()
                .contains("size -1")
        );
        assert!(check_groups(&[], 1).is_err());
    }
}

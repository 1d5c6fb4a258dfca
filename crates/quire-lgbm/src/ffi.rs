//! The one module that calls LightGBM's C API (`lightgbm3-sys`).
//!
//! `unsafe` is allowed here, and only here, because LightGBM is a C++ library reached through
//! raw handles and pointers; there is no safe way to call it. Every function in this module is
//! safe to call: it checks the length of each buffer it hands to C against what C will read or
//! write, owns the handles it creates (freed on drop), and keeps alive what LightGBM keeps
//! pointers to (a booster points into its training and validation datasets). The rest of the
//! crate adds the checks that give better messages; soundness does not depend on them.
#![allow(unsafe_code)]

use std::ffi::{CStr, CString, c_char, c_int};
use std::ptr;
use std::sync::Arc;

use lightgbm3_sys as sys;

use crate::{Error, ImportanceType, Result};

/// Element types of the dense matrices LightGBM reads: `f32` and `f64`.
///
/// Sealed: LightGBM knows only these two. Either gives the same trees and predictions for the
/// same values, since LightGBM compares features in `f64`.
pub trait FeatureValue: Copy + sealed::Sealed {
    /// LightGBM's `C_API_DTYPE_*` code of the type.
    #[doc(hidden)]
    const DTYPE: c_int;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
}

impl FeatureValue for f32 {
    const DTYPE: c_int = sys::C_API_DTYPE_FLOAT32 as c_int;
}

impl FeatureValue for f64 {
    const DTYPE: c_int = sys::C_API_DTYPE_FLOAT64 as c_int;
}

/// Turns a C API return code into a `Result`, with LightGBM's message on failure.
fn check(call: &'static str, ret: c_int) -> Result<()> {
    if ret == 0 {
        return Ok(());
    }
    // SAFETY: LGBM_GetLastError returns a pointer to a NUL-terminated, thread-local buffer that
    // lives as long as the thread; the failing call ran on this thread just before.
    let message = unsafe { CStr::from_ptr(sys::LGBM_GetLastError()) }
        .to_string_lossy()
        .into_owned();
    Err(Error::LightGbm { call, message })
}

/// LightGBM's parameters and their aliases, as JSON (`{"canonical": ["alias", …], …}`).
pub(crate) fn param_aliases() -> Result<String> {
    const CALL: &str = "LGBM_DumpParamAliases";
    let mut len: i64 = 0;
    let mut probe = [0 as c_char; 1];
    // SAFETY: buffer_len 0: LightGBM only reports the length (NUL included) and copies nothing
    // into the 1-byte probe.
    check(CALL, unsafe {
        sys::LGBM_DumpParamAliases(0, &mut len, probe.as_mut_ptr())
    })?;
    let size = usize::try_from(len).unwrap_or(0);
    let mut buf = vec![0u8; size.max(1)];
    let mut len2: i64 = 0;
    // SAFETY: `buf` has `len` bytes, the size LightGBM asked for; it copies at most that.
    check(CALL, unsafe {
        sys::LGBM_DumpParamAliases(len, &mut len2, buf.as_mut_ptr().cast())
    })?;
    let end = buf.iter().position(|&c| c == 0).unwrap_or(buf.len());
    buf.truncate(end);
    String::from_utf8(buf).map_err(|e| Error::LightGbm {
        call: CALL,
        message: format!("the aliases are not UTF-8: {e}"),
    })
}

/// `value` as one of LightGBM's `int32` counts.
pub(crate) fn to_i32(what: &'static str, value: usize) -> Result<i32> {
    i32::try_from(value).map_err(|_| Error::TooLarge { what, value })
}

/// `s` as a C string.
pub(crate) fn c_string(what: &'static str, s: &str) -> Result<CString> {
    CString::new(s).map_err(|_| Error::Nul { what })
}

/// Checks that a row-major matrix buffer holds exactly `n_rows × n_cols` values.
fn check_matrix(what: &'static str, len: usize, n_rows: usize, n_cols: usize) -> Result<()> {
    if n_rows.checked_mul(n_cols) != Some(len) {
        return Err(Error::Shape {
            what,
            expected: match n_rows.checked_mul(n_cols) {
                Some(n) => format!("{n_rows} rows × {n_cols} columns = {n} values"),
                None => format!("{n_rows} rows × {n_cols} columns (more values than memory)"),
            },
            actual: format!("{len} values"),
        });
    }
    Ok(())
}

/// An owned LightGBM dataset handle.
pub(crate) struct RawDataset {
    handle: sys::DatasetHandle,
}

// SAFETY: a LightGBM Dataset is a plain C++ object without thread affinity. Through
// `&RawDataset` only const C++ methods run (counts; a booster reading it while training), and
// everything that changes it takes `&mut RawDataset`.
unsafe impl Send for RawDataset {}
unsafe impl Sync for RawDataset {}

impl RawDataset {
    /// `LGBM_DatasetCreateFromMat` over a row-major matrix (LightGBM copies the values).
    pub(crate) fn from_mat<T: FeatureValue>(
        values: &[T],
        n_rows: usize,
        n_cols: usize,
        params: &CStr,
        reference: Option<&RawDataset>,
    ) -> Result<Self> {
        check_matrix("feature matrix", values.len(), n_rows, n_cols)?;
        let (nrow, ncol) = (to_i32("rows", n_rows)?, to_i32("columns", n_cols)?);
        let mut handle = ptr::null_mut();
        // SAFETY: `values` holds nrow × ncol values of T's dtype, row-major (checked above);
        // `params` is NUL-terminated; `reference` is a live dataset or null; `handle` is an
        // out-pointer.
        let ret = unsafe {
            sys::LGBM_DatasetCreateFromMat(
                values.as_ptr().cast(),
                T::DTYPE,
                nrow,
                ncol,
                1,
                params.as_ptr(),
                reference.map_or(ptr::null_mut(), |r| r.handle),
                &mut handle,
            )
        };
        check("LGBM_DatasetCreateFromMat", ret)?;
        Ok(Self { handle })
    }

    /// `LGBM_DatasetCreateFromFile`: LightGBM's own loader (reads `<file>.query` beside it).
    pub(crate) fn from_file(
        path: &CStr,
        params: &CStr,
        reference: Option<&RawDataset>,
    ) -> Result<Self> {
        let mut handle = ptr::null_mut();
        // SAFETY: both strings are NUL-terminated; `reference` is a live dataset or null.
        let ret = unsafe {
            sys::LGBM_DatasetCreateFromFile(
                path.as_ptr(),
                params.as_ptr(),
                reference.map_or(ptr::null_mut(), |r| r.handle),
                &mut handle,
            )
        };
        check("LGBM_DatasetCreateFromFile", ret)?;
        Ok(Self { handle })
    }

    /// Sets the `label` field (LightGBM checks that there is one per row).
    pub(crate) fn set_labels(&mut self, labels: &[f32]) -> Result<()> {
        let n = to_i32("labels", labels.len())?;
        // SAFETY: LightGBM reads `n` f32 values from the slice; the field name is a C literal.
        let ret = unsafe {
            sys::LGBM_DatasetSetField(
                self.handle,
                c"label".as_ptr(),
                labels.as_ptr().cast(),
                n,
                sys::C_API_DTYPE_FLOAT32 as c_int,
            )
        };
        check("LGBM_DatasetSetField(label)", ret)
    }

    /// Sets the `group` field: rows per query, contiguous.
    pub(crate) fn set_groups(&mut self, sizes: &[i32]) -> Result<()> {
        let n = to_i32("query groups", sizes.len())?;
        // SAFETY: LightGBM reads `n` i32 values from the slice; the field name is a C literal.
        let ret = unsafe {
            sys::LGBM_DatasetSetField(
                self.handle,
                c"group".as_ptr(),
                sizes.as_ptr().cast(),
                n,
                sys::C_API_DTYPE_INT32 as c_int,
            )
        };
        check("LGBM_DatasetSetField(group)", ret)
    }

    /// `LGBM_DatasetSetFeatureNames`.
    pub(crate) fn set_feature_names(&mut self, names: &[CString]) -> Result<()> {
        let n = to_i32("feature names", names.len())?;
        let mut ptrs: Vec<*const c_char> = names.iter().map(|s| s.as_ptr()).collect();
        // SAFETY: `ptrs` holds `n` pointers to NUL-terminated strings that outlive the call
        // (LightGBM copies them).
        let ret = unsafe { sys::LGBM_DatasetSetFeatureNames(self.handle, ptrs.as_mut_ptr(), n) };
        check("LGBM_DatasetSetFeatureNames", ret)
    }

    /// Rows (`LGBM_DatasetGetNumData`).
    pub(crate) fn num_data(&self) -> Result<usize> {
        let mut out: c_int = 0;
        // SAFETY: live handle, `out` is an out-pointer.
        let ret = unsafe { sys::LGBM_DatasetGetNumData(self.handle, &mut out) };
        check("LGBM_DatasetGetNumData", ret)?;
        Ok(usize::try_from(out).unwrap_or(0))
    }

    /// Features (`LGBM_DatasetGetNumFeature`).
    pub(crate) fn num_feature(&self) -> Result<usize> {
        let mut out: c_int = 0;
        // SAFETY: live handle, `out` is an out-pointer.
        let ret = unsafe { sys::LGBM_DatasetGetNumFeature(self.handle, &mut out) };
        check("LGBM_DatasetGetNumFeature", ret)?;
        Ok(usize::try_from(out).unwrap_or(0))
    }
}

impl Drop for RawDataset {
    fn drop(&mut self) {
        // SAFETY: the handle came from LightGBM, is freed once, and no booster still points to
        // it (boosters hold an `Arc` to the datasets they use and are freed first).
        unsafe { sys::LGBM_DatasetFree(self.handle) };
    }
}

/// An owned LightGBM booster handle, with the datasets it points into.
pub(crate) struct RawBooster {
    handle: sys::BoosterHandle,
    /// Training data first, then the validation sets in the order added. LightGBM keeps raw
    /// pointers to them; holding the `Arc`s keeps them alive until after `drop` has freed the
    /// booster (fields are dropped after `Drop::drop`).
    datasets: Vec<Arc<RawDataset>>,
}

// SAFETY: a LightGBM Booster has no thread affinity (the C API guards it with its own
// reader-writer lock). It is deliberately not `Sync`: see the crate docs on threads.
unsafe impl Send for RawBooster {}

impl RawBooster {
    /// `LGBM_BoosterCreate` on a training set.
    pub(crate) fn create(train: &Arc<RawDataset>, params: &CStr) -> Result<Self> {
        let mut handle = ptr::null_mut();
        // SAFETY: live dataset handle (kept alive by the returned booster), NUL-terminated
        // params, out-pointer.
        let ret = unsafe { sys::LGBM_BoosterCreate(train.handle, params.as_ptr(), &mut handle) };
        check("LGBM_BoosterCreate", ret)?;
        Ok(Self {
            handle,
            datasets: vec![Arc::clone(train)],
        })
    }

    /// `LGBM_BoosterLoadModelFromString`; returns the booster and its iterations.
    pub(crate) fn from_model_string(model: &CStr) -> Result<(Self, usize)> {
        let mut handle = ptr::null_mut();
        let mut iterations: c_int = 0;
        // SAFETY: NUL-terminated model text, out-pointers.
        let ret = unsafe {
            sys::LGBM_BoosterLoadModelFromString(model.as_ptr(), &mut iterations, &mut handle)
        };
        check("LGBM_BoosterLoadModelFromString", ret)?;
        let booster = Self {
            handle,
            datasets: Vec::new(),
        };
        Ok((booster, usize::try_from(iterations).unwrap_or(0)))
    }

    /// Datasets the booster was given: 1 (training) + validation sets; 0 for a loaded model.
    pub(crate) fn num_datasets(&self) -> usize {
        self.datasets.len()
    }

    /// Refuses training calls on a booster loaded from a model: LightGBM has no training data
    /// in it and would dereference null.
    fn require_training_data(&self, call: &'static str) -> Result<()> {
        if self.datasets.is_empty() {
            return Err(Error::Usage(format!(
                "{call}: a booster loaded from a model has no training data; it can only \
                 predict, save and dump"
            )));
        }
        Ok(())
    }

    /// `LGBM_BoosterAddValidData`.
    pub(crate) fn add_valid(&mut self, valid: &Arc<RawDataset>) -> Result<()> {
        self.require_training_data("adding validation data")?;
        // SAFETY: both handles are live; the dataset is kept alive by `self.datasets`.
        let ret = unsafe { sys::LGBM_BoosterAddValidData(self.handle, valid.handle) };
        check("LGBM_BoosterAddValidData", ret)?;
        self.datasets.push(Arc::clone(valid));
        Ok(())
    }

    /// `LGBM_BoosterUpdateOneIter`; true when the iteration produced no split.
    pub(crate) fn update_one_iter(&mut self) -> Result<bool> {
        self.require_training_data("training")?;
        let mut finished: c_int = 0;
        // SAFETY: live handle, out-pointer.
        let ret = unsafe { sys::LGBM_BoosterUpdateOneIter(self.handle, &mut finished) };
        check("LGBM_BoosterUpdateOneIter", ret)?;
        Ok(finished != 0)
    }

    /// `LGBM_BoosterRollbackOneIter`: removes the last iteration's trees.
    pub(crate) fn rollback_one_iter(&mut self) -> Result<()> {
        self.require_training_data("rolling back")?;
        // SAFETY: live handle.
        let ret = unsafe { sys::LGBM_BoosterRollbackOneIter(self.handle) };
        check("LGBM_BoosterRollbackOneIter", ret)
    }

    /// `LGBM_BoosterGetCurrentIteration`.
    pub(crate) fn current_iteration(&self) -> Result<usize> {
        let mut out: c_int = 0;
        // SAFETY: live handle, out-pointer.
        let ret = unsafe { sys::LGBM_BoosterGetCurrentIteration(self.handle, &mut out) };
        check("LGBM_BoosterGetCurrentIteration", ret)?;
        Ok(usize::try_from(out).unwrap_or(0))
    }

    /// `LGBM_BoosterGetNumFeature`.
    pub(crate) fn num_feature(&self) -> Result<usize> {
        let mut out: c_int = 0;
        // SAFETY: live handle, out-pointer.
        let ret = unsafe { sys::LGBM_BoosterGetNumFeature(self.handle, &mut out) };
        check("LGBM_BoosterGetNumFeature", ret)?;
        Ok(usize::try_from(out).unwrap_or(0))
    }

    /// Metric names (`LGBM_BoosterGetEvalNames`), e.g. `ndcg@1`.
    pub(crate) fn eval_names(&self) -> Result<Vec<String>> {
        self.string_list("LGBM_BoosterGetEvalNames", sys::LGBM_BoosterGetEvalNames)
    }

    /// Feature names (`LGBM_BoosterGetFeatureNames`).
    pub(crate) fn feature_names(&self) -> Result<Vec<String>> {
        self.string_list(
            "LGBM_BoosterGetFeatureNames",
            sys::LGBM_BoosterGetFeatureNames,
        )
    }

    /// Calls one of the C API's string-list getters twice: sizes first, then into buffers.
    fn string_list(
        &self,
        call: &'static str,
        getter: unsafe extern "C" fn(
            sys::BoosterHandle,
            c_int,
            *mut c_int,
            usize,
            *mut usize,
            *mut *mut c_char,
        ) -> c_int,
    ) -> Result<Vec<String>> {
        let (mut count, mut width): (c_int, usize) = (0, 0);
        // SAFETY: with len = 0 the getter copies nothing and only reports the count and the
        // longest string (NUL included); the null buffer list is never read.
        let ret = unsafe { getter(self.handle, 0, &mut count, 0, &mut width, ptr::null_mut()) };
        check(call, ret)?;
        let n = usize::try_from(count).unwrap_or(0);
        let width = width.max(1);
        let mut buffers: Vec<Vec<u8>> = vec![vec![0u8; width]; n];
        let mut ptrs: Vec<*mut c_char> =
            buffers.iter_mut().map(|b| b.as_mut_ptr().cast()).collect();
        let (mut count2, mut width2): (c_int, usize) = (0, 0);
        // SAFETY: `ptrs` holds `count` buffers of `width` bytes each; the getter writes at most
        // `width` bytes (NUL-terminated) into each of the first `count`.
        let ret = unsafe {
            getter(
                self.handle,
                count,
                &mut count2,
                width,
                &mut width2,
                ptrs.as_mut_ptr(),
            )
        };
        check(call, ret)?;
        if count2 != count || width2 > width {
            return Err(Error::LightGbm {
                call,
                message: "the list changed between the two calls".to_string(),
            });
        }
        Ok(buffers
            .iter()
            .map(|b| {
                let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
                String::from_utf8_lossy(&b[..end]).into_owned()
            })
            .collect())
    }

    /// `LGBM_BoosterGetEval`: the metric values on dataset `data_idx` (0 = training data).
    pub(crate) fn eval(&self, data_idx: usize) -> Result<Vec<f64>> {
        if data_idx >= self.datasets.len() {
            return Err(Error::Usage(format!(
                "data index {data_idx}: the booster has {} dataset(s) (0 = training data)",
                self.datasets.len()
            )));
        }
        let mut count: c_int = 0;
        // SAFETY: live handle, out-pointer.
        let ret = unsafe { sys::LGBM_BoosterGetEvalCounts(self.handle, &mut count) };
        check("LGBM_BoosterGetEvalCounts", ret)?;
        // Every dataset is evaluated with the same metrics, so `count` values at most.
        let mut out = vec![0.0f64; usize::try_from(count).unwrap_or(0)];
        let mut written: c_int = 0;
        let idx = to_i32("data index", data_idx)?;
        // SAFETY: `out` has room for the `count` metric values LightGBM writes.
        let ret =
            unsafe { sys::LGBM_BoosterGetEval(self.handle, idx, &mut written, out.as_mut_ptr()) };
        check("LGBM_BoosterGetEval", ret)?;
        out.truncate(usize::try_from(written).unwrap_or(0));
        Ok(out)
    }

    /// `LGBM_BoosterFeatureImportance` over the first `num_iteration` iterations (0 = all).
    pub(crate) fn feature_importance(
        &self,
        num_iteration: usize,
        kind: ImportanceType,
    ) -> Result<Vec<f64>> {
        let mut out = vec![0.0f64; self.num_feature()?];
        let kind = match kind {
            ImportanceType::Split => sys::C_API_FEATURE_IMPORTANCE_SPLIT,
            ImportanceType::Gain => sys::C_API_FEATURE_IMPORTANCE_GAIN,
        };
        let num_iteration = to_i32("iterations", num_iteration)?;
        // SAFETY: `out` has one slot per feature, which is what LightGBM writes.
        let ret = unsafe {
            sys::LGBM_BoosterFeatureImportance(
                self.handle,
                num_iteration,
                kind as c_int,
                out.as_mut_ptr(),
            )
        };
        check("LGBM_BoosterFeatureImportance", ret)?;
        Ok(out)
    }

    /// The model in LightGBM's text format, first `num_iteration` iterations (0 = all).
    pub(crate) fn save_model_to_string(&self, num_iteration: usize) -> Result<String> {
        self.model_text(
            "LGBM_BoosterSaveModelToString",
            sys::LGBM_BoosterSaveModelToString,
            num_iteration,
        )
    }

    /// The model as LightGBM's JSON dump, first `num_iteration` iterations (0 = all).
    pub(crate) fn dump_model(&self, num_iteration: usize) -> Result<String> {
        self.model_text(
            "LGBM_BoosterDumpModel",
            sys::LGBM_BoosterDumpModel,
            num_iteration,
        )
    }

    /// Calls a model-to-text function twice: for the size, then into a buffer of that size.
    fn model_text(
        &self,
        call: &'static str,
        f: unsafe extern "C" fn(
            sys::BoosterHandle,
            c_int,
            c_int,
            c_int,
            i64,
            *mut i64,
            *mut c_char,
        ) -> c_int,
        num_iteration: usize,
    ) -> Result<String> {
        let num_iteration = to_i32("iterations", num_iteration)?;
        let importance = sys::C_API_FEATURE_IMPORTANCE_SPLIT as c_int;
        let mut len: i64 = 0;
        let mut probe = [0 as c_char; 1];
        // SAFETY: buffer_len 0: LightGBM only reports the length (NUL included) and copies
        // nothing into the 1-byte probe.
        let ret = unsafe {
            f(
                self.handle,
                0,
                num_iteration,
                importance,
                0,
                &mut len,
                probe.as_mut_ptr(),
            )
        };
        check(call, ret)?;
        let size = usize::try_from(len).unwrap_or(0);
        let mut buf = vec![0u8; size.max(1)];
        let mut len2: i64 = 0;
        // SAFETY: `buf` has `len` bytes, the size LightGBM asked for; it copies at most that.
        let ret = unsafe {
            f(
                self.handle,
                0,
                num_iteration,
                importance,
                len,
                &mut len2,
                buf.as_mut_ptr().cast(),
            )
        };
        check(call, ret)?;
        if len2 != len {
            return Err(Error::LightGbm {
                call,
                message: "the model changed between the two calls".to_string(),
            });
        }
        let end = buf.iter().position(|&c| c == 0).unwrap_or(buf.len());
        buf.truncate(end);
        String::from_utf8(buf).map_err(|e| Error::LightGbm {
            call,
            message: format!("the model text is not UTF-8: {e}"),
        })
    }

    /// `LGBM_BoosterPredictForMat`, normal prediction (the raw score for ranking and
    /// regression), with the first `num_iteration` iterations (0 = all).
    pub(crate) fn predict_mat<T: FeatureValue>(
        &self,
        values: &[T],
        n_rows: usize,
        n_cols: usize,
        num_iteration: usize,
        params: &CStr,
    ) -> Result<Vec<f64>> {
        check_matrix("prediction matrix", values.len(), n_rows, n_cols)?;
        let (nrow, ncol) = (to_i32("rows", n_rows)?, to_i32("columns", n_cols)?);
        let num_iteration = to_i32("iterations", num_iteration)?;
        let kind = sys::C_API_PREDICT_NORMAL as c_int;
        let mut len: i64 = 0;
        // SAFETY: live handle, out-pointer.
        let ret = unsafe {
            sys::LGBM_BoosterCalcNumPredict(self.handle, nrow, kind, 0, num_iteration, &mut len)
        };
        check("LGBM_BoosterCalcNumPredict", ret)?;
        let mut out = vec![0.0f64; usize::try_from(len).unwrap_or(0)];
        let mut written: i64 = 0;
        // SAFETY: `values` holds nrow × ncol values of T's dtype, row-major (checked above);
        // `out` has the length LightGBM computed for this prediction.
        let ret = unsafe {
            sys::LGBM_BoosterPredictForMat(
                self.handle,
                values.as_ptr().cast(),
                T::DTYPE,
                nrow,
                ncol,
                1,
                kind,
                0,
                num_iteration,
                params.as_ptr(),
                &mut written,
                out.as_mut_ptr(),
            )
        };
        check("LGBM_BoosterPredictForMat", ret)?;
        out.truncate(usize::try_from(written).unwrap_or(0));
        Ok(out)
    }
}

impl Drop for RawBooster {
    fn drop(&mut self) {
        // SAFETY: the handle came from LightGBM and is freed once; the datasets it points to
        // are still alive (they are dropped after this).
        unsafe { sys::LGBM_BoosterFree(self.handle) };
    }
}

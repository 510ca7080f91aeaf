//! A thin safe wrapper over LightGBM's C API (lightgbm3-sys).
//!
//! Why not lightgbm3's safe `Dataset`: it creates datasets with an empty parameter string, and
//! LightGBM fixes categorical features and binning when a dataset is built, so
//! `categorical_feature` passed to the booster alone is silently ignored (see
//! reference/lightgbm.md). Here datasets get the parameters, and boosters keep the datasets they
//! point at alive for as long as they live.

use std::ffi::{CStr, CString, c_char, c_void};

use lightgbm3_sys as sys;

use crate::data::encode::Matrix;
use crate::{Error, Result};

const DTYPE_FLOAT32: i32 = 0;
const DTYPE_FLOAT64: i32 = 1;
const PREDICT_NORMAL: i32 = 0;
const IMPORTANCE_SPLIT: i32 = 0;
const IMPORTANCE_GAIN: i32 = 1;

fn check(code: i32) -> Result<()> {
    if code == 0 {
        return Ok(());
    }
    // SAFETY: LGBM_GetLastError returns a pointer to a NUL-terminated thread-local buffer.
    let message = unsafe { CStr::from_ptr(sys::LGBM_GetLastError()) }
        .to_string_lossy()
        .into_owned();
    Err(Error::LightGbm(message))
}

fn c_string(text: &str) -> Result<CString> {
    CString::new(text).map_err(|_| Error::LightGbm(format!("parameter text holds a NUL: {text:?}")))
}

fn as_i32(n: usize, what: &str) -> Result<i32> {
    i32::try_from(n).map_err(|_| Error::LightGbm(format!("too many {what} for LightGBM: {n}")))
}

/// LightGBM's socket network for data-parallel training (one process per host). It must be up
/// before the training dataset is built (bin boundaries are agreed over it) and stays up while
/// the booster trains; dropped, it is torn down.
pub struct Network {
    _private: (),
}

impl Network {
    /// Joins the network of `machines` (`ip:port,ip:port`, this host among them, listening on
    /// `local_port`), waiting up to `timeout_minutes` for the others.
    pub fn init(
        machines: &str,
        local_port: u16,
        timeout_minutes: u32,
        num_machines: usize,
    ) -> Result<Network> {
        let list = c_string(machines)?;
        // SAFETY: list is a NUL-terminated string LightGBM copies.
        check(unsafe {
            sys::LGBM_NetworkInit(
                list.as_ptr(),
                i32::from(local_port),
                as_i32(timeout_minutes as usize, "minutes")?,
                as_i32(num_machines, "machines")?,
            )
        })?;
        Ok(Network { _private: () })
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        // SAFETY: frees LightGBM's global network state, set up by LGBM_NetworkInit.
        unsafe {
            sys::LGBM_NetworkFree();
        }
    }
}

/// A LightGBM dataset built from a dense matrix with its parameters (bins, categorical features).
/// A validation dataset reads its reference's bin mappers: the booster owns both, so both live
/// as long as it does.
pub struct Dataset {
    handle: sys::DatasetHandle,
}

// SAFETY: a dataset handle is owned by exactly one Dataset and LightGBM does not tie it to a thread.
unsafe impl Send for Dataset {}

impl Dataset {
    /// Builds a dataset. `reference` aligns bins with the training dataset (for validation data).
    pub fn from_matrix(
        matrix: &Matrix,
        labels: &[f32],
        parameters: &str,
        feature_names: &[&str],
        reference: Option<&Dataset>,
    ) -> Result<Dataset> {
        assert_eq!(labels.len(), matrix.rows, "one label per row");
        let params = c_string(parameters)?;
        let mut handle: sys::DatasetHandle = std::ptr::null_mut();
        // SAFETY: the matrix buffer holds rows*cols f64 in row-major order, as declared.
        check(unsafe {
            sys::LGBM_DatasetCreateFromMat(
                matrix.values.as_ptr() as *const c_void,
                DTYPE_FLOAT64,
                as_i32(matrix.rows, "rows")?,
                as_i32(matrix.cols, "columns")?,
                1,
                params.as_ptr(),
                reference.map_or(std::ptr::null_mut(), |r| r.handle),
                &mut handle,
            )
        })?;
        let dataset = Dataset { handle };
        // SAFETY: labels has one f32 per row; LightGBM copies it.
        check(unsafe {
            sys::LGBM_DatasetSetField(
                dataset.handle,
                c"label".as_ptr(),
                labels.as_ptr() as *const c_void,
                as_i32(labels.len(), "labels")?,
                DTYPE_FLOAT32,
            )
        })?;
        let names: Vec<CString> = feature_names
            .iter()
            .map(|n| c_string(n))
            .collect::<Result<_>>()?;
        let mut pointers: Vec<*const c_char> = names.iter().map(|n| n.as_ptr()).collect();
        // SAFETY: pointers holds one valid C string per feature; LightGBM copies them.
        check(unsafe {
            sys::LGBM_DatasetSetFeatureNames(
                dataset.handle,
                pointers.as_mut_ptr(),
                as_i32(pointers.len(), "features")?,
            )
        })?;
        Ok(dataset)
    }
}

impl Drop for Dataset {
    fn drop(&mut self) {
        // SAFETY: the handle came from LGBM_DatasetCreateFromMat and is freed once.
        unsafe {
            sys::LGBM_DatasetFree(self.handle);
        }
    }
}

/// A LightGBM booster, either being trained (owning its datasets) or loaded from model text.
pub struct Booster {
    handle: sys::BoosterHandle,
    datasets: Vec<Dataset>,
}

// SAFETY: the handle is owned by this value; LightGBM's booster calls lock internally.
unsafe impl Send for Booster {}
unsafe impl Sync for Booster {}

impl Drop for Booster {
    fn drop(&mut self) {
        // SAFETY: the handle is valid and freed once, before the datasets it points at.
        unsafe {
            sys::LGBM_BoosterFree(self.handle);
        }
        self.datasets.clear();
    }
}

impl Booster {
    /// A booster that will train on `train`.
    pub fn new(train: Dataset, parameters: &str) -> Result<Booster> {
        let params = c_string(parameters)?;
        let mut handle: sys::BoosterHandle = std::ptr::null_mut();
        // SAFETY: the dataset handle is valid; the booster keeps the dataset alive via `datasets`.
        check(unsafe { sys::LGBM_BoosterCreate(train.handle, params.as_ptr(), &mut handle) })?;
        Ok(Booster {
            handle,
            datasets: vec![train],
        })
    }

    /// Adds a validation dataset; its evaluation index is the number of datasets added before it + 1.
    pub fn add_validation(&mut self, data: Dataset) -> Result<()> {
        // SAFETY: both handles are valid; the dataset is kept alive by the booster.
        check(unsafe { sys::LGBM_BoosterAddValidData(self.handle, data.handle) })?;
        self.datasets.push(data);
        Ok(())
    }

    /// One boosting round. Returns true when LightGBM can grow no further tree.
    pub fn update(&mut self) -> Result<bool> {
        let mut finished = 0;
        // SAFETY: valid handle, out-pointer to a local.
        check(unsafe { sys::LGBM_BoosterUpdateOneIter(self.handle, &mut finished) })?;
        Ok(finished != 0)
    }

    /// The metric values on dataset `index` (0 = training data, 1.. = validation sets).
    pub fn eval(&self, index: usize) -> Result<Vec<f64>> {
        let mut count = 0;
        // SAFETY: valid handle, out-pointer to a local.
        check(unsafe { sys::LGBM_BoosterGetEvalCounts(self.handle, &mut count) })?;
        let mut values = vec![0.0f64; count.max(0) as usize];
        let mut written = 0;
        // SAFETY: `values` has room for every metric.
        check(unsafe {
            sys::LGBM_BoosterGetEval(
                self.handle,
                as_i32(index, "datasets")?,
                &mut written,
                values.as_mut_ptr(),
            )
        })?;
        values.truncate(written.max(0) as usize);
        Ok(values)
    }

    /// The number of boosting rounds done so far.
    pub fn current_iteration(&self) -> Result<usize> {
        let mut n = 0;
        // SAFETY: valid handle, out-pointer to a local.
        check(unsafe { sys::LGBM_BoosterGetCurrentIteration(self.handle, &mut n) })?;
        Ok(n.max(0) as usize)
    }

    /// The model in LightGBM's text format, keeping the first `iterations` rounds (0 = all).
    pub fn model_text(&self, iterations: usize) -> Result<String> {
        self.text_of_rounds(0, iterations)
    }

    /// The model text of round `round` (0-based) alone: its tree is numbered 0 and holds the
    /// same leaf values as in the whole model (the first tree's include the initial score).
    pub fn round_text(&self, round: usize) -> Result<String> {
        self.text_of_rounds(round, 1)
    }

    /// `count` rounds from `start` (`count` 0: all the rest) in LightGBM's text format.
    fn text_of_rounds(&self, start: usize, count: usize) -> Result<String> {
        let start_iteration = as_i32(start, "iterations")?;
        let num_iteration = as_i32(count, "iterations")?;
        let mut length: i64 = 0;
        // SAFETY: a zero-length probe writes only the needed length.
        check(unsafe {
            sys::LGBM_BoosterSaveModelToString(
                self.handle,
                start_iteration,
                num_iteration,
                IMPORTANCE_SPLIT,
                0,
                &mut length,
                std::ptr::null_mut(),
            )
        })?;
        let mut buffer = vec![0u8; length.max(1) as usize];
        // SAFETY: the buffer has the length LightGBM asked for.
        check(unsafe {
            sys::LGBM_BoosterSaveModelToString(
                self.handle,
                start_iteration,
                num_iteration,
                IMPORTANCE_SPLIT,
                buffer.len() as i64,
                &mut length,
                buffer.as_mut_ptr() as *mut c_char,
            )
        })?;
        let text = CStr::from_bytes_until_nul(&buffer)
            .map_err(|_| Error::LightGbm("model text is not NUL-terminated".into()))?;
        Ok(text.to_string_lossy().into_owned())
    }

    /// Loads a booster from model text (a trailing `pandas_categorical` line is fine).
    pub fn from_model_text(text: &str) -> Result<Booster> {
        let model = c_string(text)?;
        let mut iterations = 0;
        let mut handle: sys::BoosterHandle = std::ptr::null_mut();
        // SAFETY: model is a valid C string; out-pointers to locals.
        check(unsafe {
            sys::LGBM_BoosterLoadModelFromString(model.as_ptr(), &mut iterations, &mut handle)
        })?;
        Ok(Booster {
            handle,
            datasets: Vec::new(),
        })
    }

    /// The number of features the model expects.
    pub fn num_features(&self) -> Result<usize> {
        let mut n = 0;
        // SAFETY: valid handle, out-pointer to a local.
        check(unsafe { sys::LGBM_BoosterGetNumFeature(self.handle, &mut n) })?;
        Ok(n.max(0) as usize)
    }

    /// Probabilities of the positive class for each row of `matrix` (all iterations), on all cores.
    pub fn predict(&self, matrix: &Matrix) -> Result<Vec<f64>> {
        self.predict_with_threads(matrix, None)
    }

    /// `predict` on `threads` OpenMP threads (None: LightGBM's default, every core).
    pub fn predict_with_threads(
        &self,
        matrix: &Matrix,
        threads: Option<usize>,
    ) -> Result<Vec<f64>> {
        if matrix.rows == 0 {
            return Ok(Vec::new());
        }
        let mut out = vec![0.0f64; matrix.rows];
        let mut written: i64 = 0;
        let params = c_string(&threads.map_or(String::new(), |t| format!("num_threads={t}")))?;
        // SAFETY: the input holds rows*cols f64 row-major; `out` has one slot per row (binary model).
        check(unsafe {
            sys::LGBM_BoosterPredictForMat(
                self.handle,
                matrix.values.as_ptr() as *const c_void,
                DTYPE_FLOAT64,
                as_i32(matrix.rows, "rows")?,
                as_i32(matrix.cols, "columns")?,
                1,
                PREDICT_NORMAL,
                0,
                -1,
                params.as_ptr(),
                &mut written,
                out.as_mut_ptr(),
            )
        })?;
        if written as usize != matrix.rows {
            return Err(Error::LightGbm(format!(
                "predicted {written} values for {} rows: is this a binary model?",
                matrix.rows
            )));
        }
        Ok(out)
    }

    /// Total gain (or split count) of each feature over the first `iterations` rounds (0 = all).
    pub fn feature_importance(&self, iterations: usize, gain: bool) -> Result<Vec<f64>> {
        let mut out = vec![0.0f64; self.num_features()?];
        // SAFETY: `out` has one slot per feature.
        check(unsafe {
            sys::LGBM_BoosterFeatureImportance(
                self.handle,
                as_i32(iterations, "iterations")?,
                if gain {
                    IMPORTANCE_GAIN
                } else {
                    IMPORTANCE_SPLIT
                },
                out.as_mut_ptr(),
            )
        })?;
        Ok(out)
    }
}

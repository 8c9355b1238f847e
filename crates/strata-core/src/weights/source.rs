//! [`WeightSource`]: where a model's tensors come from, whatever the file format.
//!
//! Loading asks a source for tensors by their Hugging Face names, one at a time, as f32.
//! [`super::WeightStore`] (safetensors, single or sharded) is one source; a GGUF file, whose
//! tensors llama.cpp names and lays out its own way, is another once its names are mapped.

use std::path::Path;

use super::{HostTensor, TensorInfo};
use crate::error::{Error, Result};

/// Tensors by HF name, read one at a time as f32.
pub trait WeightSource: Send + Sync {
    /// The file (or index) named in error messages.
    fn source(&self) -> &Path;

    /// Every tensor name, sorted.
    fn names(&self) -> Vec<String>;

    /// Whether a tensor exists.
    fn contains(&self, name: &str) -> bool;

    /// Shape (outermost first) and stored dtype of a tensor, without reading its data.
    fn info(&self, name: &str) -> Result<TensorInfo>;

    /// Reads one tensor as f32, converting or dequantizing as needed.
    fn read_f32(&self, name: &str) -> Result<HostTensor>;

    /// Total number of stored elements.
    fn n_elements(&self) -> usize;

    /// The tensors no read has asked for yet, sorted: after a load, the ones the config
    /// does not use.
    fn unread_names(&self) -> Vec<String>;

    /// The dtype most of the stored values have (`F32`, `BF16`, `Q4_1`, ...), or `None` when
    /// there are no tensors.
    fn dominant_dtype(&self) -> Option<String> {
        let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
        for name in self.names() {
            if let Ok(info) = self.info(&name) {
                *counts.entry(info.dtype).or_default() += info.shape.iter().product::<usize>();
            }
        }
        counts.into_iter().max_by_key(|(_, n)| *n).map(|(d, _)| d)
    }

    /// Reads a tensor to build a model from: checks its shape and refuses NaN or infinite
    /// values, naming the tensor (a model built from them computes nothing but NaN).
    fn read_shaped(&self, name: &str, expected: &[usize]) -> Result<HostTensor> {
        let info = self.info(name)?;
        if info.shape != expected {
            return Err(Error::TensorShape {
                file: self.source().to_path_buf(),
                key: name.to_string(),
                expected: expected.to_vec(),
                found: info.shape,
            });
        }
        let tensor = self.read_f32(name)?;
        let n_bad = tensor.data.iter().filter(|v| !v.is_finite()).count();
        if n_bad > 0 {
            return Err(Error::NonFiniteWeights {
                file: self.source().to_path_buf(),
                key: name.to_string(),
                n_bad,
                n_total: tensor.data.len(),
            });
        }
        Ok(tensor)
    }
}

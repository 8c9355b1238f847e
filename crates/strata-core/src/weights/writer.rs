//! Writing f32 tensors to a safetensors file (checkpoints, captures, steering vectors).

use std::collections::HashMap;
use std::path::Path;

use safetensors::{Dtype, tensor::TensorView};

use super::HostTensor;
use crate::error::{Error, Result};

/// Writes named f32 tensors to `path`, with optional string metadata in the header.
pub fn write_safetensors(
    path: &Path,
    tensors: &[(String, HostTensor)],
    metadata: Option<HashMap<String, String>>,
) -> Result<()> {
    let bytes: Vec<(String, Vec<u8>, Vec<usize>)> = tensors
        .iter()
        .map(|(name, t)| {
            let raw: Vec<u8> = t.data.iter().flat_map(|v| v.to_le_bytes()).collect();
            (name.clone(), raw, t.shape.clone())
        })
        .collect();
    let views: Vec<(String, TensorView<'_>)> = bytes
        .iter()
        .map(|(name, raw, shape)| {
            let view = TensorView::new(Dtype::F32, shape.clone(), raw)
                .expect("byte length matches shape for f32 data");
            (name.clone(), view)
        })
        .collect();
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    }
    safetensors::serialize_to_file(views, metadata, path).map_err(|e| Error::Safetensors {
        file: path.to_path_buf(),
        reason: e.to_string(),
    })
}

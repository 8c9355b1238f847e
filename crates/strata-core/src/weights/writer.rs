//! Writing f32 tensors to a safetensors file (checkpoints, captures, steering vectors).

use std::collections::HashMap;
use std::path::Path;

use safetensors::{Dtype, tensor::TensorView};

use super::HostTensor;
use crate::error::{Error, Result};

/// Writes named f32 tensors to `path` (atomically), with optional string metadata in the
/// header. Names must be unique.
pub fn write_safetensors(
    path: &Path,
    tensors: &[(String, HostTensor)],
    metadata: Option<HashMap<String, String>>,
) -> Result<()> {
    let mut seen = std::collections::BTreeSet::new();
    if let Some((name, _)) = tensors.iter().find(|(name, _)| !seen.insert(name.as_str())) {
        return Err(Error::InvalidArgument {
            what: "tensor names".into(),
            reason: format!("`{name}` appears twice in {}", path.display()),
        });
    }
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
    let bytes = safetensors::serialize(views, metadata).map_err(|e| Error::Safetensors {
        file: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    // Written atomically: a failed write never leaves a truncated file or destroys the old one.
    crate::io::write_bytes_atomic(path, &bytes)
}

//! [`SteeringVectors`]: per-layer directions with their provenance, saved as safetensors
//! and exported as a llama.cpp control vector (GGUF).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde::{Deserialize, Serialize};
use strata_core::ModelConfig;
use strata_core::weights::HostTensor;

use crate::aggregate::Method;
use crate::error::{Error, Result};
use crate::extract::SiteKind;
use crate::position::ReadPosition;

/// The metadata key holding [`SteeringMeta`] as JSON in a safetensors header.
pub const META_KEY: &str = "strata.steer";

/// Where a set of directions came from, saved beside them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SteeringMeta {
    /// The model they were extracted from (its path or id).
    pub model: String,
    /// Its `model_type` (`llama`, `gpt2`, ...): also the GGUF `controlvector.model_hint`.
    pub model_type: String,
    /// Its number of blocks.
    pub n_layers: usize,
    /// Its residual width.
    pub d_model: usize,
    /// The residual site the directions live at.
    pub site: SiteKind,
    /// The read-position rule used in extraction.
    pub position: ReadPosition,
    /// The aggregator.
    pub method: Method,
    /// Whether the saved vectors were scaled to unit length.
    pub normalized: bool,
    /// Number of contrastive pairs.
    pub n_pairs: usize,
    /// The concept, when the pairs named one.
    pub concept: Option<String>,
}

/// Per-layer directions: `layers[l]` is `[d_model]` for block `l`.
#[derive(Debug, Clone, PartialEq)]
pub struct SteeringVectors {
    /// Provenance.
    pub meta: SteeringMeta,
    /// Direction per block.
    pub layers: BTreeMap<usize, Vec<f32>>,
}

impl SteeringVectors {
    /// The vector of block `layer`.
    pub fn layer(&self, layer: usize) -> Result<&[f32]> {
        self.layers
            .get(&layer)
            .map(Vec::as_slice)
            .ok_or_else(|| Error::InvalidArgument {
                what: "layer".into(),
                reason: format!(
                    "{layer} has no vector; the set holds layers {:?}",
                    self.layers.keys().collect::<Vec<_>>()
                ),
            })
    }

    /// The same vectors scaled to unit length (zero vectors stay zero).
    pub fn normalized(&self) -> Self {
        let layers = self
            .layers
            .iter()
            .map(|(&l, v)| {
                let norm = v.iter().map(|&x| x as f64 * x as f64).sum::<f64>().sqrt();
                let scale = if norm > 0.0 { 1.0 / norm } else { 0.0 };
                (l, v.iter().map(|&x| (x as f64 * scale) as f32).collect())
            })
            .collect();
        Self {
            meta: SteeringMeta {
                normalized: true,
                ..self.meta.clone()
            },
            layers,
        }
    }

    /// Writes one `[d_model]` f32 tensor per block, named by its site
    /// (`blocks.{l}.hook_resid_post`), with [`SteeringMeta`] as JSON under [`META_KEY`] and
    /// its fields as plain keys (`model`, `site`, `layers`, `position`, `method`,
    /// `normalized`, `n_pairs`).
    pub fn save(&self, path: &Path) -> Result<()> {
        let tensors: Vec<(String, HostTensor)> = self
            .layers
            .iter()
            .map(|(&l, v)| {
                (
                    self.meta.site.at(l).to_string(),
                    HostTensor::new(vec![v.len()], v.clone()),
                )
            })
            .collect();
        let m = &self.meta;
        let mut metadata = HashMap::new();
        metadata.insert(
            META_KEY.to_string(),
            serde_json::to_string(m).expect("steering metadata serializes"),
        );
        metadata.insert("model".into(), m.model.clone());
        metadata.insert("model_type".into(), m.model_type.clone());
        metadata.insert("site".into(), format!("{:?}", m.site));
        let layers: Vec<String> = self.layers.keys().map(usize::to_string).collect();
        metadata.insert("layers".into(), layers.join(","));
        metadata.insert("position".into(), m.position.to_string());
        metadata.insert("method".into(), m.method.to_string());
        metadata.insert("normalized".into(), m.normalized.to_string());
        metadata.insert("n_pairs".into(), m.n_pairs.to_string());
        strata_core::weights::write_safetensors(path, &tensors, Some(metadata))?;
        Ok(())
    }

    /// Reads a file written by [`SteeringVectors::save`].
    pub fn load(path: &Path) -> Result<Self> {
        let bad = |reason: String| Error::BadVectorFile {
            file: path.to_path_buf(),
            reason,
        };
        let bytes = std::fs::read(path).map_err(|source| Error::Io {
            file: path.to_path_buf(),
            source,
        })?;
        let (_, header) = safetensors::SafeTensors::read_metadata(&bytes)
            .map_err(|e| bad(format!("not a safetensors file: {e}")))?;
        let json = header
            .metadata()
            .as_ref()
            .and_then(|m| m.get(META_KEY))
            .ok_or_else(|| {
                bad(format!(
                    "no `{META_KEY}` metadata: not a steering-vector file"
                ))
            })?;
        let meta: SteeringMeta = serde_json::from_str(json)
            .map_err(|e| bad(format!("metadata `{META_KEY}` is not valid: {e}")))?;
        let file = safetensors::SafeTensors::deserialize(&bytes)
            .map_err(|e| bad(format!("not a safetensors file: {e}")))?;
        let mut layers = BTreeMap::new();
        for (name, view) in file.tensors() {
            let site: strata_core::Site = name
                .parse()
                .map_err(|e| bad(format!("tensor `{name}`: {e}")))?;
            let (_, layer) = SiteKind::of(site)
                .filter(|(k, _)| *k == meta.site)
                .ok_or_else(|| bad(format!("tensor `{name}` is not a {:?} site", meta.site)))?;
            if view.dtype() != safetensors::Dtype::F32 || view.shape() != [meta.d_model] {
                return Err(bad(format!(
                    "tensor `{name}` is {:?} {:?}, expected F32 [{}]",
                    view.dtype(),
                    view.shape(),
                    meta.d_model
                )));
            }
            let values = view
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            layers.insert(layer, values);
        }
        if layers.is_empty() {
            return Err(bad("no tensors".into()));
        }
        Ok(Self { meta, layers })
    }

    /// Checks that these vectors fit a model: the widths must match (always an error
    /// otherwise); a different `model_type` or number of blocks is an error unless
    /// `allow_other_model`, in which case it is logged as a warning (transfer between
    /// models).
    pub fn check_model(
        &self,
        file: &Path,
        config: &ModelConfig,
        model: &str,
        allow_other_model: bool,
    ) -> Result<()> {
        if self.meta.d_model != config.d_model {
            return Err(Error::WidthMismatch {
                what: format!("{} (made for {})", file.display(), self.meta.model),
                width: self.meta.d_model,
                model: model.to_string(),
                d_model: config.d_model,
            });
        }
        let differences = [
            (
                "model_type",
                self.meta.model_type.clone(),
                config.model_type.clone(),
            ),
            (
                "n_layers",
                self.meta.n_layers.to_string(),
                config.n_layers.to_string(),
            ),
        ];
        for (key, expected, found) in differences {
            if expected != found {
                let err = Error::OtherModel {
                    file: file.to_path_buf(),
                    made_for: self.meta.model.clone(),
                    model: model.to_string(),
                    difference: format!("{key}: {expected} vs {found}"),
                };
                if allow_other_model {
                    tracing::warn!("{err}");
                } else {
                    return Err(err);
                }
            }
        }
        if self.meta.model != model {
            tracing::warn!(
                "{} was extracted from {}, applied to {model} (same architecture)",
                file.display(),
                self.meta.model
            );
        }
        Ok(())
    }

    /// Writes a llama.cpp control vector (`--control-vector FILE`), as repeng's
    /// `export_gguf` does: GGUF v3, `general.architecture = "controlvector"`,
    /// `controlvector.model_hint` (the `model_type`), `controlvector.layer_count` (the number
    /// of tensors, u32), and one f32 tensor `direction.{l+1}` of `[d_model]` per block `l`.
    /// The index is the `hidden_states` index of transformers (block `l`'s output is
    /// `hidden_states[l+1]`), which is the numbering repeng's layer ids and llama.cpp's
    /// `direction.N` use.
    ///
    /// Only `hook_resid_post` vectors map onto that format; others are refused.
    pub fn export_gguf(&self, path: &Path) -> Result<()> {
        if self.meta.site != SiteKind::ResidPost {
            return Err(Error::InvalidArgument {
                what: "site".into(),
                reason: format!(
                    "a control vector is added to a block's output; these vectors live at {:?}",
                    self.meta.site
                ),
            });
        }
        let bytes = gguf_bytes(&self.meta.model_type, &self.layers);
        strata_core::io::write_bytes_atomic(path, &bytes)?;
        Ok(())
    }
}

/// The GGUF alignment of tensor data (the format's default; no `general.alignment` key).
const ALIGNMENT: usize = 32;

fn gguf_bytes(model_hint: &str, layers: &BTreeMap<usize, Vec<f32>>) -> Vec<u8> {
    const TYPE_U32: u32 = 4;
    const TYPE_STRING: u32 = 8;
    const GGML_F32: u32 = 0;
    fn string(out: &mut Vec<u8>, s: &str) {
        out.extend((s.len() as u64).to_le_bytes());
        out.extend(s.as_bytes());
    }
    let mut out = Vec::new();
    out.extend(b"GGUF");
    out.extend(3u32.to_le_bytes());
    out.extend((layers.len() as u64).to_le_bytes());
    out.extend(3u64.to_le_bytes());
    string(&mut out, "general.architecture");
    out.extend(TYPE_STRING.to_le_bytes());
    string(&mut out, "controlvector");
    string(&mut out, "controlvector.model_hint");
    out.extend(TYPE_STRING.to_le_bytes());
    string(&mut out, model_hint);
    string(&mut out, "controlvector.layer_count");
    out.extend(TYPE_U32.to_le_bytes());
    out.extend((layers.len() as u32).to_le_bytes());
    let mut offset = 0usize;
    for (l, v) in layers {
        string(&mut out, &format!("direction.{}", l + 1));
        out.extend(1u32.to_le_bytes());
        out.extend((v.len() as u64).to_le_bytes());
        out.extend(GGML_F32.to_le_bytes());
        out.extend((offset as u64).to_le_bytes());
        offset += (v.len() * 4).div_ceil(ALIGNMENT) * ALIGNMENT;
    }
    out.resize(out.len().div_ceil(ALIGNMENT) * ALIGNMENT, 0);
    for v in layers.values() {
        for x in v {
            out.extend(x.to_le_bytes());
        }
        out.resize(out.len().div_ceil(ALIGNMENT) * ALIGNMENT, 0);
    }
    out
}

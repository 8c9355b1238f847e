//! [`Model`]: a loaded checkpoint (architecture, config, tokenizer) on a device.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::tensor::{Tensor, backend::Backend};

use super::bert::Bert;
use super::cache::KvCache;
use super::decoder::Decoder;
use super::gguf_model::{GgufModel, is_gguf};
use super::names::load_decoder;
use crate::config::hf::HfConfig;
use crate::config::{Family, ModelConfig, limits};
use crate::error::{Error, Result};
use crate::input::TokenBatch;
use crate::probe::ProbeSet;
use crate::tokenizer::Tokenizer;
use crate::weights::{WeightSource, WeightStore};

/// The network itself.
#[derive(Module, Debug)]
pub(crate) enum Architecture<B: Backend> {
    /// A causal decoder.
    Decoder(Decoder<B>),
    /// A BERT encoder.
    Bert(Bert<B>),
}

/// A Hugging Face checkpoint loaded onto a burn device.
#[derive(Debug)]
pub struct Model<B: Backend> {
    /// The network.
    pub(crate) arch: Architecture<B>,
    /// Its configuration.
    pub(crate) config: ModelConfig,
    /// `tokenizer.json`, when the folder has one.
    pub(crate) tokenizer: Option<Tokenizer>,
    /// The folder or `.gguf` file it was loaded from.
    pub(crate) dir: PathBuf,
    /// Tensors in the weights that this config does not use.
    pub(crate) unused_tensors: Vec<String>,
}

impl<B: Backend> Model<B> {
    /// Reads only the config of a model folder (`config.json`) or of a `.gguf` file. A missing folder, a file given where a
    /// folder is expected, a `config.json` that is a folder or a link loop each get their own
    /// message.
    pub fn read_config(dir: &Path) -> Result<ModelConfig> {
        if is_gguf(dir) && dir.is_file() {
            return Ok(GgufModel::open(dir)?.config);
        }
        let kind = |reason: &str| Error::NotAModelFolder {
            path: dir.to_path_buf(),
            reason: reason.to_string(),
        };
        match std::fs::metadata(dir) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(kind("no such model folder (looked for its config.json)"));
            }
            Err(e) => return Err(Error::io(dir, e)),
            Ok(meta) if !meta.is_dir() => {
                return Err(kind(
                    "is a file, not a model folder (a Hugging Face folder holds config.json, \
                     the safetensors weights and tokenizer.json)",
                ));
            }
            Ok(_) => {}
        }
        let path = dir.join("config.json");
        match std::fs::metadata(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // A dangling link exists but has no target: say so.
                if std::fs::symlink_metadata(&path).is_ok() {
                    return Err(Error::NotAModelFolder {
                        path,
                        reason: "is a link to a file that does not exist".into(),
                    });
                }
                return Err(Error::MissingFile {
                    dir: dir.to_path_buf(),
                    file: "config.json".into(),
                });
            }
            Err(e) => return Err(Error::io(&path, e)),
            Ok(meta) if meta.is_dir() => {
                return Err(Error::NotAModelFolder {
                    path,
                    reason: "is a folder, not a JSON file".into(),
                });
            }
            Ok(_) => {}
        }
        HfConfig::read(&path)?.into_model_config(&path)
    }

    /// Loads a model: a Hugging Face folder (`config.json`, the safetensors weights and, if
    /// present, `tokenizer.json`) or a `.gguf` file (config, weights and tokenizer from its
    /// metadata and tensors).
    ///
    /// Weights are memory-mapped and moved to the device one tensor at a time.
    pub fn load(dir: &Path, device: &B::Device) -> Result<Self> {
        if is_gguf(dir) && dir.is_file() {
            let gguf = GgufModel::open(dir)?;
            let tokenizer = Some(gguf.tokenizer()?);
            return Self::build(gguf.config, &gguf.source, tokenizer, dir, dir, device);
        }
        let (config, store) = Self::open_weights(dir)?;
        let tok_path = dir.join("tokenizer.json");
        let tokenizer = if tok_path.is_file() {
            Some(Tokenizer::from_file(&tok_path)?)
        } else {
            None
        };
        Self::build(
            config,
            store.as_ref(),
            tokenizer,
            &dir.join("config.json"),
            dir,
            device,
        )
    }

    /// The config and the weights of a model folder or `.gguf` file, without building the
    /// network (what `strata info` reads). The weights are only indexed, not read.
    pub fn open_weights(path: &Path) -> Result<(ModelConfig, Box<dyn WeightSource>)> {
        if is_gguf(path) && path.is_file() {
            let gguf = GgufModel::open(path)?;
            return Ok((gguf.config, Box::new(gguf.source)));
        }
        let config = Self::read_config(path)?;
        Ok((config, Box::new(WeightStore::open(path)?)))
    }

    /// Checks `config` against the weights and the memory, then builds the network.
    fn build(
        config: ModelConfig,
        store: &dyn WeightSource,
        tokenizer: Option<Tokenizer>,
        config_file: &Path,
        dir: &Path,
        device: &B::Device,
    ) -> Result<Self> {
        limits::check_weights_fit(&config, store.n_elements(), config_file, store.source())?;
        limits::check_memory(
            "loading the model in f32",
            limits::n_params(&config) * 4,
            None,
        )?;
        let _span =
            tracing::info_span!("load", dir = %dir.display(), family = ?config.family).entered();
        let arch = match config.family {
            Family::Bert => Architecture::Bert(Bert::load(store, &config, device)?),
            _ => Architecture::Decoder(load_decoder(store, &config, device)?),
        };
        let unused = store.unread_names();
        if !unused.is_empty() {
            tracing::warn!(
                n_unused = unused.len(),
                "{}: {} tensor(s) in the weights are not used by this config: {}",
                store.source().display(),
                unused.len(),
                preview(&unused)
            );
        }
        tracing::info!(n_params = arch.num_params(), "model loaded");
        Ok(Self {
            arch,
            config,
            tokenizer,
            dir: dir.to_path_buf(),
            unused_tensors: unused,
        })
    }

    /// A model around a decoder built or fine-tuned in memory (no unused tensors).
    /// `source_path` is where its config came from; it names the model in messages.
    pub fn from_decoder(
        decoder: Decoder<B>,
        tokenizer: Option<Tokenizer>,
        source_path: PathBuf,
    ) -> Self {
        Self {
            config: decoder.config.clone(),
            arch: Architecture::Decoder(decoder),
            tokenizer,
            dir: source_path,
            unused_tensors: Vec::new(),
        }
    }

    /// Its configuration.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// The folder or `.gguf` file it was loaded from.
    pub fn source_path(&self) -> &Path {
        &self.dir
    }

    /// Tensors in the weights that this config does not use (transformers warns about them
    /// too): a sign of a config that does not match its weights.
    pub fn unused_tensors(&self) -> &[String] {
        &self.unused_tensors
    }

    /// The tokenizer, when the model came with one.
    pub fn tokenizer_if_any(&self) -> Option<&Tokenizer> {
        self.tokenizer.as_ref()
    }

    /// The tokenizer, or an error naming the folder that lacks one.
    pub fn tokenizer(&self) -> Result<&Tokenizer> {
        self.tokenizer.as_ref().ok_or_else(|| Error::MissingFile {
            dir: self.dir.clone(),
            file: "tokenizer.json".into(),
        })
    }

    /// The decoder, or an error for encoders.
    pub fn decoder(&self) -> Result<&Decoder<B>> {
        match &self.arch {
            Architecture::Decoder(d) => Ok(d),
            Architecture::Bert(_) => Err(Error::InvalidArgument {
                what: "model".into(),
                reason: format!(
                    "`{}` is an encoder; this needs a causal decoder",
                    self.config.model_type
                ),
            }),
        }
    }

    /// The decoder itself, consuming the model (to fine-tune it), or an error for encoders.
    pub fn into_decoder(self) -> Result<Decoder<B>> {
        match self.arch {
            Architecture::Decoder(d) => Ok(d),
            Architecture::Bert(_) => Err(Error::InvalidArgument {
                what: "model".into(),
                reason: format!(
                    "`{}` is an encoder; this needs a causal decoder",
                    self.config.model_type
                ),
            }),
        }
    }

    /// Number of parameters.
    pub fn n_params(&self) -> usize {
        self.arch.num_params()
    }

    /// Forward pass with probes: logits `[batch, pos, d_vocab]` for decoders,
    /// `last_hidden_state` `[batch, pos, d_model]` for encoders.
    pub fn forward_with(
        &self,
        batch: &TokenBatch,
        cache: Option<&mut KvCache<B>>,
        probes: &mut ProbeSet<'_, B>,
    ) -> Result<Tensor<B, 3>> {
        match &self.arch {
            Architecture::Decoder(d) => d.forward_with(batch, cache, probes),
            Architecture::Bert(b) => {
                if cache.is_some() {
                    return Err(Error::InvalidArgument {
                        what: "cache".into(),
                        reason: "encoders have no KV cache".into(),
                    });
                }
                b.forward_with(batch, probes)
            }
        }
    }

    /// Final norm and unembedding of a residual-stream tensor `[batch, pos, d_model]` from
    /// any layer: logit-lens decoding. Decoders only.
    pub fn unembed(&self, residual: Tensor<B, 3>) -> Result<Tensor<B, 3>> {
        self.decoder()?.unembed(residual)
    }

    /// The matrix of block `layer`'s MLP that maps its hidden activation (the value at
    /// `blocks.{layer}.mlp.hook_post`, width `d_mlp`) to the block's MLP output, as
    /// `[d_mlp, d_model]`: row `i` is what neuron `i` writes per unit of activation (HF's
    /// `down_proj.weight[:, i]`, GPT-2's `c_proj.weight[i, :]`). Decoders only.
    pub fn mlp_output_weight(&self, layer: usize) -> Result<Tensor<B, 2>> {
        let decoder = self.decoder()?;
        let block = decoder
            .blocks
            .get(layer)
            .ok_or_else(|| Error::InvalidArgument {
                what: "layer".into(),
                reason: format!(
                    "{layer} is out of range: the model has {} blocks",
                    decoder.blocks.len()
                ),
            })?;
        Ok(block.mlp.down.weight.val())
    }

    /// Forward pass with no probes and no cache.
    pub fn forward(&self, batch: &TokenBatch) -> Result<Tensor<B, 3>> {
        self.forward_with(batch, None, &mut ProbeSet::none())
    }
}

/// The first few names of a list, for a one-line message.
fn preview(names: &[String]) -> String {
    const SHOWN: usize = 5;
    let mut out = names
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > SHOWN {
        out.push_str(&format!(", ... ({} more)", names.len() - SHOWN));
    }
    out
}

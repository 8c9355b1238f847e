//! A GGUF file (llama.cpp's format) as a model: its metadata becomes a [`ModelConfig`], its
//! tensors a [`WeightSource`] under Hugging Face names, its vocabulary a tokenizer.
//!
//! llama.cpp's converter renames every tensor (`blk.{l}.attn_q.weight` for
//! `model.layers.{l}.self_attn.q_proj.weight`) and permutes the rows of the query and key
//! projections for its own rotary layout; [`GgufSource`] maps the names back and undoes the
//! permutation, so the decoder loads a GGUF exactly as it loads the HF checkpoint it came
//! from. Tensors are dequantized to f32 one at a time.
//!
//! Supported: `general.architecture` = `llama` (Llama, SmolLM, TinyLlama and other
//! Llama-layout models), `tokenizer.ggml.model` = `gpt2` (byte-level BPE).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::hf_names::{HfNames, QkvNames};
use crate::config::hf::HfConfig;
use crate::config::{Family, ModelConfig};
use crate::error::{Error, Result};
use crate::tokenizer::Tokenizer;
use crate::weights::gguf::GgufFile;
use crate::weights::{HostTensor, TensorInfo, WeightSource};

/// The architectures whose GGUF files strata reads.
pub const GGUF_ARCHITECTURES: &[&str] = &["llama"];

/// Whether `path` names a GGUF file (by its extension).
pub fn is_gguf(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("gguf"))
}

/// How a GGUF tensor becomes its HF counterpart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rows {
    /// Stored as HF stores it.
    AsIs,
    /// Rows permuted by llama.cpp for `n_heads` heads (q with the query heads, k with the
    /// key/value heads): undo it.
    Unpermute { n_heads: usize },
}

/// The tensors of a GGUF file under HF names.
pub struct GgufSource {
    file: GgufFile,
    /// HF name -> (GGUF name, row handling).
    names: BTreeMap<String, (String, Rows)>,
    read: Mutex<BTreeSet<String>>,
}

impl std::fmt::Debug for GgufSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufSource")
            .field("file", &self.file.path())
            .field("n_tensors", &self.names.len())
            .finish()
    }
}

/// A GGUF file opened as a model: config, weights and tokenizer.
#[derive(Debug)]
pub struct GgufModel {
    /// The validated config, from the metadata.
    pub config: ModelConfig,
    /// The tensors under HF names.
    pub source: GgufSource,
}

impl GgufModel {
    /// Opens `path` and reads its metadata into a config (validated like any `config.json`).
    pub fn open(path: &Path) -> Result<Self> {
        let file = GgufFile::open(path)?;
        let config = gguf_config(&file)?;
        let names = name_map(&file, &config);
        Ok(Self {
            config,
            source: GgufSource {
                file,
                names,
                read: Mutex::new(BTreeSet::new()),
            },
        })
    }

    /// The tokenizer the metadata describes.
    pub fn tokenizer(&self) -> Result<Tokenizer> {
        gguf_tokenizer(&self.source.file)
    }
}

/// The metadata as the HF config it stands for, then validated.
fn gguf_config(file: &GgufFile) -> Result<ModelConfig> {
    let path = file.path();
    let arch = file.get_str("general.architecture")?;
    if !GGUF_ARCHITECTURES.contains(&arch) {
        return Err(Error::UnknownModelType {
            file: path.to_path_buf(),
            value: format!("{arch} (general.architecture)"),
            known: format!("GGUF architectures {}", GGUF_ARCHITECTURES.join(", ")),
        });
    }
    let key = |name: &str| format!("{arch}.{name}");
    let size = |name: &str| -> Result<Option<usize>> {
        match file.metadata(&key(name)) {
            None => Ok(None),
            Some(_) => Ok(Some(
                usize::try_from(file.get_u64(&key(name))?).unwrap_or(usize::MAX),
            )),
        }
    };
    let float = |name: &str| -> Result<Option<f64>> {
        match file.metadata(&key(name)) {
            None => Ok(None),
            Some(_) => Ok(Some(file.get_f64(&key(name))?)),
        }
    };
    // The sizes first: a damaged size key is named before anything else is read.
    let n_layers = size("block_count")?;
    let n_heads = size("attention.head_count")?;
    let d_model = size("embedding_length")?;
    let vocab_size = match size("vocab_size")? {
        Some(n) => n,
        None => file.get_str_array("tokenizer.ggml.tokens")?.len(),
    };
    let token_id = |name: &str| -> Result<Option<u32>> {
        match file.metadata(name) {
            None => Ok(None),
            Some(_) => Ok(Some(u32::try_from(file.get_u64(name)?).unwrap_or(u32::MAX))),
        }
    };
    let head_dim = match (size("rope.dimension_count")?, n_heads, d_model) {
        (Some(rope), Some(h), Some(d)) if h > 0 && rope != d / h => Some(rope),
        _ => None,
    };
    let hf = HfConfig {
        model_type: Some("llama".into()),
        vocab_size: Some(vocab_size),
        hidden_size: d_model,
        num_hidden_layers: n_layers,
        num_attention_heads: n_heads,
        num_key_value_heads: size("attention.head_count_kv")?,
        head_dim,
        intermediate_size: size("feed_forward_length")?,
        max_position_embeddings: size("context_length")?,
        rms_norm_eps: float("attention.layer_norm_rms_epsilon")?,
        rope_theta: float("rope.freq_base")?,
        tie_word_embeddings: Some(!file.contains("output.weight")),
        bos_token_id: token_id("tokenizer.ggml.bos_token_id")?,
        eos_token_id: token_id("tokenizer.ggml.eos_token_id")?.map(serde_json::Value::from),
        dtype: Some("float32".into()),
        architectures: Some(vec!["LlamaForCausalLM".into()]),
        ..Default::default()
    };
    hf.into_model_config(path)
}

/// HF name -> GGUF name for every tensor of a Llama-layout file.
fn name_map(file: &GgufFile, cfg: &ModelConfig) -> BTreeMap<String, (String, Rows)> {
    let mut names = BTreeMap::new();
    for gguf in file.tensor_names() {
        let Some((hf, rows)) = hf_name(gguf, cfg) else {
            // Unknown tensors keep their name and are reported as unused after loading.
            names.insert(gguf.to_string(), (gguf.to_string(), Rows::AsIs));
            continue;
        };
        names.insert(hf, (gguf.to_string(), rows));
    }
    names
}

/// The HF name of one llama.cpp tensor name, and how its rows are laid out.
fn hf_name(gguf: &str, cfg: &ModelConfig) -> Option<(String, Rows)> {
    let n = HfNames::of(Family::Llama)?;
    let QkvNames::Separate { q, k, v } = n.qkv else {
        return None;
    };
    let top = match gguf {
        // token_embd -> embed_tokens
        "token_embd.weight" => Some(format!("{}{}", n.body, n.embed)),
        // output_norm -> norm
        "output_norm.weight" => Some(format!("{}{}", n.body, n.final_norm)),
        // output -> lm_head
        "output.weight" => Some(n.unembed.to_string()),
        _ => None,
    };
    if let Some(name) = top {
        return Some((format!("{name}.weight"), Rows::AsIs));
    }
    let rest = gguf.strip_prefix("blk.")?;
    let (layer, part) = rest.split_once('.')?;
    let layer: usize = layer.parse().ok()?;
    let unpermute = |n_heads: usize| Rows::Unpermute { n_heads };
    let (hf, rows) = match part {
        "attn_norm.weight" => (n.ln1, Rows::AsIs),
        "attn_q.weight" => (q, unpermute(cfg.n_heads)),
        "attn_k.weight" => (k, unpermute(cfg.n_kv_heads)),
        "attn_v.weight" => (v, Rows::AsIs),
        "attn_output.weight" => (n.attn_out, Rows::AsIs),
        "ffn_norm.weight" => (n.ln2, Rows::AsIs),
        "ffn_gate.weight" => (n.mlp_in, Rows::AsIs),
        "ffn_up.weight" => (n.mlp_up?, Rows::AsIs),
        "ffn_down.weight" => (n.mlp_out, Rows::AsIs),
        _ => return None,
    };
    Some((format!("{}.{hf}.weight", n.block(n.body, layer)), rows))
}

/// Undoes llama.cpp's `permute(w, n_heads)`: within each head, GGUF row `2 i + j` is HF row
/// `j * half + i` (`half` = half the head's rows).
fn unpermute(t: HostTensor, n_heads: usize, path: &Path, name: &str) -> Result<HostTensor> {
    let rows = t.shape.first().copied().unwrap_or(0);
    let cols: usize = t.shape.iter().skip(1).product();
    if n_heads == 0 || rows % (2 * n_heads) != 0 {
        return Err(Error::TensorShape {
            file: path.to_path_buf(),
            key: name.to_string(),
            expected: vec![rows - rows % (2 * n_heads.max(1)), cols],
            found: t.shape.clone(),
        });
    }
    let per_head = rows / n_heads;
    let half = per_head / 2;
    let mut data = vec![0.0f32; t.data.len()];
    for h in 0..n_heads {
        for i in 0..half {
            for j in 0..2 {
                let from = h * per_head + 2 * i + j;
                let to = h * per_head + j * half + i;
                data[to * cols..(to + 1) * cols]
                    .copy_from_slice(&t.data[from * cols..(from + 1) * cols]);
            }
        }
    }
    Ok(HostTensor::new(t.shape, data))
}

impl WeightSource for GgufSource {
    fn source(&self) -> &Path {
        self.file.path()
    }

    fn names(&self) -> Vec<String> {
        self.names.keys().cloned().collect()
    }

    fn contains(&self, name: &str) -> bool {
        self.names.contains_key(name)
    }

    fn info(&self, name: &str) -> Result<TensorInfo> {
        let (gguf, _) = self.entry(name)?;
        let info = self.file.tensor_info(gguf)?;
        Ok(TensorInfo {
            shape: info.shape().to_vec(),
            dtype: info.ggml_type().name().to_string(),
        })
    }

    fn read_f32(&self, name: &str) -> Result<HostTensor> {
        let (gguf, rows) = self.entry(name)?;
        if let Ok(mut read) = self.read.lock() {
            read.insert(name.to_string());
        }
        let tensor = self.file.read_f32(gguf)?;
        match rows {
            Rows::AsIs => Ok(tensor),
            Rows::Unpermute { n_heads } => unpermute(tensor, n_heads, self.file.path(), gguf),
        }
    }

    fn n_elements(&self) -> usize {
        self.file
            .tensors()
            .iter()
            .map(|t| usize::try_from(t.n_elements()).unwrap_or(usize::MAX))
            .fold(0usize, usize::saturating_add)
    }

    fn unread_names(&self) -> Vec<String> {
        let read = self.read.lock().map(|r| r.clone()).unwrap_or_default();
        self.names
            .keys()
            .filter(|n| !read.contains(*n))
            .cloned()
            .collect()
    }
}

impl GgufSource {
    fn entry(&self, name: &str) -> Result<(&str, Rows)> {
        self.names
            .get(name)
            .map(|(g, r)| (g.as_str(), *r))
            .ok_or_else(|| Error::MissingTensor {
                file: self.file.path().to_path_buf(),
                key: name.to_string(),
            })
    }
}

/// The byte-level BPE tokenizer of `tokenizer.ggml.*`, built as transformers builds it from
/// a GGUF (`GPT2Tokenizer` over the file's vocabulary and merges, control tokens special).
fn gguf_tokenizer(file: &GgufFile) -> Result<Tokenizer> {
    use tokenizers::AddedToken;
    use tokenizers::models::bpe::BPE;
    use tokenizers::pre_tokenizers::byte_level::ByteLevel;

    let path: PathBuf = file.path().to_path_buf();
    let kind = file.get_str("tokenizer.ggml.model")?;
    if kind != "gpt2" {
        return Err(Error::BadConfig {
            file: path,
            key: "tokenizer.ggml.model".into(),
            reason: format!("`{kind}`: strata builds byte-level BPE (`gpt2`) tokenizers from GGUF"),
        });
    }
    let tokens = file.get_str_array("tokenizer.ggml.tokens")?;
    let merges: Vec<(String, String)> = file
        .get_str_array("tokenizer.ggml.merges")?
        .iter()
        .filter_map(|m| {
            m.split_once(' ')
                .map(|(a, b)| (a.to_string(), b.to_string()))
        })
        .collect();
    let vocab: tokenizers::models::bpe::Vocab = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (t.clone(), u32::try_from(i).unwrap_or(u32::MAX)))
        .collect();
    let bad = |reason: String| Error::Tokenizer {
        path: path.clone(),
        reason,
    };
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .build()
        .map_err(|e| bad(e.to_string()))?;
    let mut inner = tokenizers::Tokenizer::new(bpe);
    inner.with_pre_tokenizer(Some(ByteLevel::new(false, true, true)));
    inner.with_decoder(Some(ByteLevel::default()));
    inner.with_post_processor(Some(ByteLevel::default()));
    // Control tokens (type 3) stay whole and are special, as transformers adds them.
    if let Ok(types) = file.get_i32_array("tokenizer.ggml.token_type") {
        let control: Vec<AddedToken> = tokens
            .iter()
            .zip(types)
            .filter(|(_, ty)| **ty == 3)
            .map(|(t, _)| AddedToken::from(t.clone(), true).normalized(false))
            .collect();
        inner.add_special_tokens(&control);
    }
    Ok(Tokenizer::from_parts(inner, path))
}

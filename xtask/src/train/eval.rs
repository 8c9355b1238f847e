//! Evaluating a finished model: validation perplexity under the baselines' token-stream
//! convention and a greedy sample, as recorded next to the published default model.

use std::path::Path;

use anyhow::{Result, anyhow};
use burn::backend::Flex;
use serde::{Deserialize, Serialize};
use strata_core::Model;
use strata_core::eval::{PerplexityConfig, perplexity};
use strata_core::generate::{GenerateConfig, Sampling, generate};
use strata_core::probe::ProbeSet;

/// Number of leading validation tokens the quick check (`tests/tiny_default.rs`) uses.
pub const PREFIX_TOKENS: usize = 20_000;

/// The prompt of the recorded sample generation.
pub const SAMPLE_PROMPT: &str = "And God said unto Moses,";

/// What `eval.json` records about a model.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EvalRecord {
    /// How the token stream is built.
    pub stream: String,
    /// The split evaluated.
    pub split: String,
    /// Window and stride of the sliding-window perplexity.
    pub window: usize,
    /// Stride of the sliding window.
    pub stride: usize,
    /// Predicted tokens of the whole split (the stream less its leading `<|endoftext|>`),
    /// as `n_tokens` in `baselines.json`.
    pub n_predicted: usize,
    /// Perplexity of the whole split (NaN, written as null, when only the prefix was run).
    pub ppl: f64,
    /// Number of leading tokens of the quick check.
    pub prefix_tokens: usize,
    /// Perplexity of the first `prefix_tokens` tokens.
    pub prefix_ppl: f64,
    /// Unigram baseline of the split (from `datasets/kjv/baselines.json`).
    pub unigram_ppl: f64,
    /// Bigram baseline of the split.
    pub bigram_ppl: f64,
    /// Prompt of the sample.
    pub sample_prompt: String,
    /// Greedy continuation of the prompt (48 tokens).
    pub sample_continuation: String,
}

/// Evaluates the model folder `dir` on `stream` (the valid split's tokens).
pub fn evaluate(
    dir: &Path,
    stream: &[u32],
    window: usize,
    baselines: (f64, f64),
    whole_split: bool,
) -> Result<EvalRecord> {
    let device = Default::default();
    let model = Model::<Flex>::load(dir, &device)?;
    let stride = window / 2;
    let n_prefix = PREFIX_TOKENS.min(stream.len());
    let config = PerplexityConfig::new(window, stride)?;
    let run = |tokens: &[u32]| {
        perplexity(
            &model,
            tokens,
            &config,
            &mut ProbeSet::none(),
            &mut |_, _| {},
        )
    };
    let prefix = run(&stream[..n_prefix])?;
    let full = if whole_split {
        run(stream)?.ppl()
    } else {
        f64::NAN
    };
    let tokenizer = model.tokenizer()?;
    let prompt = tokenizer.encode(SAMPLE_PROMPT)?;
    let config = GenerateConfig {
        max_new_tokens: 48,
        sampling: Sampling::Greedy,
        seed: 0,
        eos_token_id: None,
    };
    let new = generate(&model, &prompt, &config, &mut ProbeSet::none())?;
    let continuation = tokenizer
        .decode(&new)
        .map_err(|e| anyhow!("cannot decode the sample: {e}"))?;
    Ok(EvalRecord {
        stream: "each verse encoded alone and followed by <|endoftext|>; one leading <|endoftext|> as context (as datasets/kjv/baselines.json)".into(),
        split: "valid".into(),
        window,
        stride,
        n_predicted: stream.len() - 1,
        ppl: full,
        prefix_tokens: n_prefix,
        prefix_ppl: prefix.ppl(),
        unigram_ppl: baselines.0,
        bigram_ppl: baselines.1,
        sample_prompt: SAMPLE_PROMPT.into(),
        sample_continuation: continuation,
    })
}

/// The unigram and bigram perplexities of `split` in `baselines.json`.
pub fn read_baselines(path: &Path, split: &str) -> Result<(f64, f64)> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow!("{}: cannot read: {e}", path.display()))?;
    let json: serde_json::Value = serde_json::from_str(&text)?;
    let entry = json["splits"]
        .as_array()
        .and_then(|s| s.iter().find(|e| e["split"] == split))
        .ok_or_else(|| anyhow!("{}: no split `{split}`", path.display()))?;
    let get = |key: &str| {
        entry[key]
            .as_f64()
            .ok_or_else(|| anyhow!("{}: `{split}.{key}` missing", path.display()))
    };
    Ok((get("unigram_ppl")?, get("bigram_ppl")?))
}

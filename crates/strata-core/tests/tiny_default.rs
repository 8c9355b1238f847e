//! The embedded default model (`datasets/models/tiny-default`) still has the validation
//! perplexity recorded when it was trained, and beats the bigram baseline.
//!
//! The token stream follows `datasets/kjv/baselines.json`: one leading `<|endoftext|>` as
//! context, then each verse of `datasets/kjv/valid.txt` encoded alone and followed by
//! `<|endoftext|>`. The check runs on the first `prefix_tokens` tokens to stay fast.

use std::path::{Path, PathBuf};

use burn::backend::Flex;
use strata_core::Model;
use strata_core::ProbeSet;
use strata_core::eval::{PerplexityConfig, corpus, perplexity};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Relative tolerance on the recorded perplexity.
const PPL_TOLERANCE: f64 = 0.01;

#[test]
fn default_model_matches_its_recorded_validation_perplexity() {
    let dir = root().join("datasets/models/tiny-default");
    let eval = read_json(&dir.join("eval.json"));
    let n_prefix = eval["prefix_tokens"].as_u64().unwrap() as usize;
    let window = eval["window"].as_u64().unwrap() as usize;
    let stride = eval["stride"].as_u64().unwrap() as usize;
    let recorded = eval["prefix_ppl"].as_f64().unwrap();

    let model = Model::<Flex>::load(&dir, &Default::default()).unwrap();
    let tokenizer = model.tokenizer().unwrap();
    let text = std::fs::read_to_string(root().join("datasets/kjv/valid.txt")).unwrap();
    // The first 2,000 lines hold more than the prefix.
    let mut stream = corpus::frame_lines(tokenizer, text.lines().take(2_000)).unwrap();
    assert!(stream.len() >= n_prefix);
    assert_eq!(stream[0], tokenizer.token_id("<|endoftext|>").unwrap());
    stream.truncate(n_prefix);

    let ppl = perplexity(
        &model,
        &stream,
        &PerplexityConfig::new(window, stride).unwrap(),
        &mut ProbeSet::none(),
        &mut |_, _| {},
    )
    .unwrap()
    .ppl();
    assert!(
        (ppl / recorded - 1.0).abs() <= PPL_TOLERANCE,
        "validation perplexity {ppl:.3}, recorded {recorded:.3}"
    );
}

#[test]
fn default_model_beats_the_bigram_baseline() {
    let baselines = read_json(&root().join("datasets/kjv/baselines.json"));
    let valid = baselines["splits"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["split"] == "valid")
        .unwrap();
    let bigram = valid["bigram_ppl"].as_f64().unwrap();
    let eval = read_json(&root().join("datasets/models/tiny-default/eval.json"));
    assert_eq!(
        eval["n_predicted"].as_u64(),
        valid["n_tokens"].as_u64(),
        "the model was evaluated on the same token stream as the baselines"
    );
    let ppl = eval["ppl"].as_f64().unwrap();
    assert!(
        ppl < 0.8 * bigram,
        "valid ppl {ppl:.2} vs bigram {bigram:.2}"
    );
}

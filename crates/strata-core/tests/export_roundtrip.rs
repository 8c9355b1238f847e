//! `save_hf` is the inverse of loading: a parity fixture saved by strata reloads with the
//! same logits, and the saved tensors equal the ones transformers wrote (the independent
//! reference). Freshly initialised models survive the same round trip.

use std::path::{Path, PathBuf};

use burn::backend::Flex;
use strata_core::models::save_hf;
use strata_core::models::{INIT_STD, init_decoder};
use strata_core::weights::{HostTensor, WeightStore};
use strata_core::{Model, ModelConfig, TokenBatch};

type B = Flex;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(name)
}

/// A fresh folder under the system temp dir, unique to this test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("strata-export-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

const IDS: [u32; 12] = [3, 17, 42, 5, 88, 0, 61, 9, 33, 70, 2, 95];

fn logits(model: &Model<B>, ids: &[u32]) -> HostTensor {
    HostTensor::from_tensor(model.forward(&TokenBatch::single(ids).unwrap()).unwrap())
}

fn max_abs_diff(a: &HostTensor, b: &HostTensor) -> f32 {
    assert_eq!(a.shape, b.shape);
    a.data
        .iter()
        .zip(&b.data)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Loads a fixture, saves it, reloads it: same config, same logits, same tensors.
fn check_roundtrip(name: &str) {
    let device = Default::default();
    let src = fixture(name);
    let model = Model::<B>::load(&src, &device).unwrap();
    let out = scratch(name);
    save_hf(model.decoder().unwrap(), &out).unwrap();
    let reloaded = Model::<B>::load(&out, &device).unwrap();

    let mut expected_cfg = model.config().clone();
    expected_cfg.dtype = "float32".into();
    assert_eq!(reloaded.config(), &expected_cfg, "{name}: config changed");

    let before = logits(&model, &IDS);
    let after = logits(&reloaded, &IDS);
    assert_eq!(max_abs_diff(&before, &after), 0.0, "{name}: logits changed");

    // The independent reference: the tensors transformers wrote.
    let original = WeightStore::open(&src).unwrap();
    let saved = WeightStore::open(&out).unwrap();
    let mut original_names = original.names();
    let mut saved_names = saved.names();
    original_names.sort();
    saved_names.sort();
    assert_eq!(saved_names, original_names, "{name}: tensor names differ");
    for key in &original_names {
        let want = original.read_f32(key).unwrap();
        let got = saved.read_f32(key).unwrap();
        assert_eq!(got.shape, want.shape, "{name}: `{key}` shape");
        assert!(got.data == want.data, "{name}: `{key}` values differ");
    }
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn gpt_neox_export_round_trips() {
    check_roundtrip("gpt-neox-tiny");
}

#[test]
fn gpt_neox_serial_export_round_trips() {
    check_roundtrip("gpt-neox-serial-tiny");
}

#[test]
fn llama_export_round_trips() {
    check_roundtrip("llama-tiny");
}

#[test]
fn mistral_export_round_trips() {
    check_roundtrip("mistral-tiny");
}

#[test]
fn qwen2_export_round_trips() {
    check_roundtrip("qwen2-tiny");
}

#[test]
fn gpt2_export_round_trips() {
    check_roundtrip("gpt2-tiny");
}

fn fixture_config(name: &str) -> ModelConfig {
    Model::<B>::read_config(&fixture(name)).unwrap()
}

fn std_of(t: &HostTensor) -> f64 {
    let n = t.data.len() as f64;
    let mean = t.data.iter().map(|&x| x as f64).sum::<f64>() / n;
    (t.data
        .iter()
        .map(|&x| (x as f64 - mean).powi(2))
        .sum::<f64>()
        / n)
        .sqrt()
}

#[test]
fn initialised_models_round_trip_and_follow_the_init_scheme() {
    let device = Default::default();
    for (name, tied) in [("llama-tiny", true), ("gpt-neox-tiny", false)] {
        let mut cfg = fixture_config(name);
        cfg.tied_embeddings = tied;
        cfg.dtype = "float32".into();
        let decoder = init_decoder::<B>(&cfg, &device, 7).unwrap();
        let out = scratch(&format!("init-{name}"));
        save_hf(&decoder, &out).unwrap();

        // The saved checkpoint, read back under its HF names.
        let (embed_name, down_name, ln_name, head_name) = if name.starts_with("llama") {
            (
                "model.embed_tokens.weight",
                "model.layers.0.mlp.down_proj.weight",
                "model.layers.0.input_layernorm.weight",
                "lm_head.weight",
            )
        } else {
            (
                "gpt_neox.embed_in.weight",
                "gpt_neox.layers.0.mlp.dense_4h_to_h.weight",
                "gpt_neox.layers.0.input_layernorm.weight",
                "embed_out.weight",
            )
        };
        let saved = WeightStore::open(&out).unwrap();
        let embed = saved.read_f32(embed_name).unwrap();
        assert!((std_of(&embed) / INIT_STD - 1.0).abs() < 0.05, "{name}");
        let down = saved.read_f32(down_name).unwrap();
        let scaled = INIT_STD / (2.0 * cfg.n_layers as f64).sqrt();
        assert!((std_of(&down) / scaled - 1.0).abs() < 0.1, "{name}");
        let ln = saved.read_f32(ln_name).unwrap();
        assert!(ln.data.iter().all(|&w| w == 1.0), "{name}");
        assert_eq!(!saved.contains(head_name), tied, "{name}");

        // Same seed, same weights; another seed, other weights.
        let embedding_of = |seed: u64| {
            let dir = scratch(&format!("init-{name}-seed{seed}"));
            save_hf(&init_decoder::<B>(&cfg, &device, seed).unwrap(), &dir).unwrap();
            let t = WeightStore::open(&dir)
                .unwrap()
                .read_f32(embed_name)
                .unwrap();
            std::fs::remove_dir_all(&dir).unwrap();
            t
        };
        assert_eq!(embedding_of(7), embed);
        assert_ne!(embedding_of(8), embed);

        let reloaded = Model::<B>::load(&out, &device).unwrap();
        assert_eq!(reloaded.config(), &cfg, "{name}");
        let ids = &IDS[..8];
        let direct =
            HostTensor::from_tensor(decoder.forward(&TokenBatch::single(ids).unwrap()).unwrap());
        assert_eq!(
            max_abs_diff(&direct, &logits(&reloaded, ids)),
            0.0,
            "{name}"
        );
        std::fs::remove_dir_all(&out).unwrap();
    }
}

#[test]
fn configs_that_do_not_fit_are_refused() {
    let device = Default::default();
    let mut cfg = fixture_config("llama-tiny");
    cfg.n_kv_heads = 3;
    let err = init_decoder::<B>(&cfg, &device, 0).unwrap_err().to_string();
    assert!(err.contains("n_kv_heads"), "{err}");
    assert!(
        err.contains("3 key/value heads do not divide 4 query heads"),
        "{err}"
    );
}

//! Per-layer CETT thresholds against an independent numpy reference
//! (`tests/fixtures/sparsity/reference.py`, output `reference.json`) on the HF-captured
//! `blocks.{l}.mlp.hook_post` activations of the parity fixtures and the fixtures' own MLP
//! output weights as strata loads them; and against hand-derived cases.

use std::path::{Path, PathBuf};

use burn::backend::Flex;
use burn::tensor::{Tensor, TensorData};
use strata_core::Model;
use strata_sparsity::{LayerSolver, ThresholdConfig, layer_threshold};

type B = Flex;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

/// Relative agreement within `1e-5` (the bound), absolute near zero.
fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-5 * a.abs().max(b.abs()) + 1e-9
}

/// `blocks.{layer}.mlp.hook_post` of a fixture's reference file as `[pos, d_mlp]`.
fn reference_acts(dir: &Path, layer: usize) -> Tensor<B, 2> {
    let bytes = std::fs::read(dir.join("reference.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let view = st.tensor(&format!("blocks.{layer}.mlp.hook_post")).unwrap();
    let shape = view.shape().to_vec();
    let values: Vec<f32> = view
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let d = shape[shape.len() - 1];
    let rows = values.len() / d;
    Tensor::from_data(TensorData::new(values, [rows, d]), &Default::default())
}

#[test]
fn thresholds_match_the_numpy_reference() {
    let text = std::fs::read_to_string(fixtures().join("sparsity/reference.json")).unwrap();
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    let cases = doc["cases"].as_array().unwrap();
    assert!(cases.len() >= 100, "{} cases", cases.len());
    let mut n_checked = 0;
    for family in ["llama-tiny", "gpt-neox-tiny", "gpt2-tiny"] {
        let dir = fixtures().join(family);
        let model = Model::<B>::load(&dir, &Default::default()).unwrap();
        for case in cases.iter().filter(|c| c["family"] == family) {
            let layer = case["layer"].as_u64().unwrap() as usize;
            let config = ThresholdConfig {
                grid_size: case["grid_size"].as_u64().unwrap() as usize,
                wraparound: case["wraparound"].as_bool().unwrap(),
                ..ThresholdConfig::default()
            };
            let target = case["target"].as_f64().unwrap();
            let got = layer_threshold(
                reference_acts(&dir, layer),
                model.mlp_output_weight(layer).unwrap(),
                target,
                &config,
            )
            .unwrap();
            let what = format!(
                "{family} layer {layer} grid {} c {target}",
                config.grid_size
            );
            assert_eq!(
                got.grid_idx,
                case["grid_idx"].as_u64().map(|v| v as usize),
                "{what}: grid index"
            );
            let expect = |key: &str| case[key].as_f64().unwrap();
            assert!(
                close(got.threshold, expect("threshold")),
                "{what}: threshold {} vs {}",
                got.threshold,
                expect("threshold")
            );
            assert_eq!(got.n_dropped, case["n_dropped"].as_u64().unwrap(), "{what}");
            assert_eq!(got.n_pairs, case["n_pairs"].as_u64().unwrap(), "{what}");
            assert!(
                close(got.cett(), expect("cett")),
                "{what}: cett {} vs {}",
                got.cett(),
                expect("cett")
            );
            assert!(
                close(got.activation_ratio(), expect("activation_ratio")),
                "{what}: activation ratio"
            );
            n_checked += 1;
        }
    }
    assert_eq!(n_checked, cases.len());
}

fn tensor(rows: usize, cols: usize, values: &[f32]) -> Tensor<B, 2> {
    Tensor::from_data(
        TensorData::new(values.to_vec(), [rows, cols]),
        &Default::default(),
    )
}

/// One token `a = (1, 3)` through an identity output weight: neuron output norms 1 and 3,
/// output norm `sqrt(10)`. The grid runs from 1 to the linear 99th percentile of {1, 3},
/// `1 + 0.99 * 2 = 2.98`. Every grid value drops neuron 0 alone in the search (norm <= g),
/// a CETT of `1 / sqrt(10) = 0.316` (methods/sparsity.md, "Per-layer threshold").
const HAND_TOP: f64 = 2.98;
const HAND_CETT: f64 = 0.316_227_766_016_837_94;

#[test]
fn hand_derived_threshold_above_and_below_the_only_cett() {
    let acts = || tensor(1, 2, &[1.0, 3.0]);
    let eye = || tensor(2, 2, &[1.0, 0.0, 0.0, 1.0]);
    let config = ThresholdConfig::default();
    let n = config.grid_size;

    // c = 0.5 is above every CETT on the grid: the search ends at the last index, and the
    // threshold is the one before it, 1 + 1.98 * 65534 / 65535; neuron 0 is dropped.
    let t = layer_threshold(acts(), eye(), 0.5, &config).unwrap();
    assert_eq!(t.grid_idx, Some(n - 2));
    let expect = f64::from((1.0 + (HAND_TOP - 1.0) * (n - 2) as f64 / (n - 1) as f64) as f32);
    assert_eq!(t.threshold, expect);
    assert_eq!((t.n_dropped, t.n_pairs), (1, 2));
    assert!((t.cett() - HAND_CETT).abs() < 1e-6, "{}", t.cett());
    assert_eq!(t.activation_ratio(), 0.5);

    // c = 0.2 is below every CETT: the reference code's `lo = 0` case. Guarded, the threshold
    // is the grid's first value, 1, which with the strict "<" drops nothing.
    let t = layer_threshold(acts(), eye(), 0.2, &config).unwrap();
    assert_eq!(t.grid_idx, Some(0));
    assert_eq!(t.threshold, 1.0);
    assert_eq!(t.n_dropped, 0);
    assert_eq!(t.cett(), 0.0);

    // Faithful to the reference code, index -1 wraps to the grid top and drops neuron 0.
    let wrap = ThresholdConfig {
        wraparound: true,
        ..config.clone()
    };
    let t = layer_threshold(acts(), eye(), 0.2, &wrap).unwrap();
    assert_eq!(t.grid_idx, Some(n - 1));
    assert!((t.threshold - HAND_TOP).abs() < 1e-6, "{}", t.threshold);
    assert_eq!(t.n_dropped, 1);

    // c = 0 uses the fixed threshold 1e-7.
    let t = layer_threshold(acts(), eye(), 0.0, &config).unwrap();
    assert_eq!((t.grid_idx, t.threshold, t.n_dropped), (None, 1e-7, 0));
}

/// Equal activations, unequal output weights: `a = (1, 1)`, neuron 0 writes `(2, 0)` and
/// neuron 1 writes `(0, 1)`, so the output norms are 2 and 1 and the output norm is
/// `sqrt(5)`. Dropping neuron 1 costs `1 / sqrt(5) = 0.447`: below 0.5, so neuron 1 goes
/// and neuron 0 stays, although both activations are 1.
const WEIGHTED_CETT: f64 = 0.447_213_595_499_957_9;

#[test]
fn hand_derived_threshold_weighs_activations_by_the_output_weight() {
    let acts = tensor(1, 2, &[1.0, 1.0]);
    let weight = tensor(2, 2, &[2.0, 0.0, 0.0, 1.0]);
    let mut solver = LayerSolver::new(acts, weight, &ThresholdConfig::default()).unwrap();
    let t = solver.solve(0.5).unwrap();
    assert_eq!(t.n_dropped, 1);
    assert!((t.cett() - WEIGHTED_CETT).abs() < 1e-6, "{}", t.cett());
    // Grid from 1 to 1 + 0.99 * (2 - 1); the search ends one before the last index.
    let n = ThresholdConfig::default().grid_size as f64;
    let expect = 1.0 + 0.99 * (n - 2.0) / (n - 1.0);
    assert!((t.threshold - expect).abs() < 1e-6, "{}", t.threshold);
    let t = solver.solve(0.4).unwrap();
    assert_eq!(t.n_dropped, 0);
}

//! strata-steer against an independent reference: directions computed with numpy from the
//! activations HF transformers gives on `tests/fixtures/llama-tiny`
//! (`tests/fixtures/steer/make_reference.py`), and the steering operators checked by capture.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::backend::Flex;
use strata_core::probe::Capture;
use strata_core::{Model, ProbeSet, Site, TokenBatch};
use strata_steer::{
    ExtractConfig, Method, ReadPosition, SiteKind, Steering, aggregate, extract_activations,
};

type B = Flex;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

struct Reference {
    tensors: BTreeMap<String, Vec<f32>>,
    positive: Vec<Vec<u32>>,
    negative: Vec<Vec<u32>>,
}

fn reference() -> Reference {
    let dir = root().join("tests/fixtures/steer");
    let bytes = std::fs::read(dir.join("reference.safetensors")).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let tensors = file
        .tensors()
        .into_iter()
        .map(|(name, view)| {
            let values = view
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            (name, values)
        })
        .collect();
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("reference.json")).unwrap())
            .unwrap();
    let ids = |side: &str| -> Vec<Vec<u32>> {
        json["pairs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                p[side]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_u64().unwrap() as u32)
                    .collect()
            })
            .collect()
    };
    Reference {
        tensors,
        positive: ids("positive"),
        negative: ids("negative"),
    }
}

fn model() -> Model<B> {
    Model::<B>::load(
        &root().join("tests/fixtures/llama-tiny"),
        &Default::default(),
    )
    .unwrap()
}

/// The workspace's parity bound for activations of a forward pass: `1e-4 * max(1, max|ref|)`.
fn parity_tolerance(reference: &[f32]) -> f32 {
    1e-4 * reference.iter().fold(1.0f32, |m, x| m.max(x.abs()))
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Equal within `tol`, or equal up to sign when `up_to_sign`.
fn check_close(name: &str, got: &[f32], want: &[f32], tol: f32, up_to_sign: bool) {
    let direct = max_abs_diff(got, want);
    let flipped: Vec<f32> = got.iter().map(|x| -x).collect();
    let err = if up_to_sign {
        direct.min(max_abs_diff(&flipped, want))
    } else {
        direct
    };
    assert!(err <= tol, "{name}: max |got - want| = {err:e} > {tol:e}");
}

const N_LAYERS: usize = 2;
const D_MODEL: usize = 64;
/// The bound the aggregators meet on the same activations (f64 arithmetic, f32 storage).
const AGGREGATE_TOL: f32 = 1e-5;

#[test]
fn aggregators_match_numpy_on_hf_activations() {
    let r = reference();
    for l in 0..N_LAYERS {
        let pos = &r.tensors[&format!("positive.last.{l}")];
        let neg = &r.tensors[&format!("negative.last.{l}")];
        for (method, key, up_to_sign) in [
            (Method::MeanDiff, format!("mean_diff.last.{l}"), false),
            (Method::Pca, format!("pca.{l}"), true),
            (Method::PcaCentered, format!("pca_centered.{l}"), true),
        ] {
            let got = aggregate(method, pos, neg, D_MODEL).unwrap();
            check_close(&key, &got, &r.tensors[&key], AGGREGATE_TOL, up_to_sign);
        }
        // The sign rules themselves: mean(delta . v) > 0 for the uncentred PCA.
        let v = aggregate(Method::Pca, pos, neg, D_MODEL).unwrap();
        let mean_proj: f64 = pos
            .chunks(D_MODEL)
            .zip(neg.chunks(D_MODEL))
            .map(|(p, n)| {
                p.iter()
                    .zip(n)
                    .zip(&v)
                    .map(|((a, b), c)| ((a - b) * c) as f64)
                    .sum::<f64>()
            })
            .sum();
        assert!(
            mean_proj > 0.0,
            "layer {l}: uncentred PCA points against the differences"
        );
    }
}

#[test]
fn extraction_matches_hf_at_every_read_position() {
    let r = reference();
    let model = model();
    for (read, position) in [
        ("last", ReadPosition::Last),
        ("m2", ReadPosition::Index(-2)),
        ("mean", ReadPosition::MeanFrom(0)),
    ] {
        // Batches of 5 rows of unequal lengths: right padding must not leak into the reads.
        let config = ExtractConfig {
            position,
            batch_size: 5,
            ..ExtractConfig::default()
        };
        let acts =
            extract_activations(&model, &r.positive, &r.negative, &config, &mut |_, _| {}).unwrap();
        assert_eq!(acts.layers, vec![0, 1]);
        assert_eq!(acts.n_pairs, r.positive.len());
        for (i, l) in acts.layers.iter().enumerate() {
            for (side, got) in [
                ("positive", &acts.positive[i]),
                ("negative", &acts.negative[i]),
            ] {
                let key = format!("{side}.{read}.{l}");
                let want = &r.tensors[&key];
                check_close(&key, got, want, parity_tolerance(want), false);
            }
            let key = format!("mean_diff.{read}.{l}");
            let got = aggregate(
                Method::MeanDiff,
                &acts.positive[i],
                &acts.negative[i],
                D_MODEL,
            )
            .unwrap();
            let want = &r.tensors[&key];
            check_close(&key, &got, want, parity_tolerance(want), false);
        }
    }
}

fn capture_resid(
    model: &Model<B>,
    batch: &TokenBatch,
    steering: Option<&mut Steering>,
) -> BTreeMap<Site, Vec<f32>> {
    let sites: Vec<Site> = (0..N_LAYERS)
        .flat_map(|l| {
            [
                Site::ResidPre { layer: l },
                Site::ResidMid { layer: l },
                Site::ResidPost { layer: l },
            ]
        })
        .collect();
    let mut capture = Capture::new(sites);
    {
        let mut probes = ProbeSet::none();
        if let Some(s) = steering {
            probes = probes.with(s);
        }
        let mut probes = probes.with(&mut capture);
        model.forward_with(batch, None, &mut probes).unwrap();
    }
    capture
        .captured
        .into_iter()
        .map(|(site, t)| (site, t.data))
        .collect()
}

fn test_vector() -> Vec<f32> {
    (0..D_MODEL).map(|i| ((i as f32) * 0.37).sin()).collect()
}

#[test]
fn steering_adds_exactly_alpha_v_at_the_chosen_site_once() {
    let model = model();
    let r = reference();
    let batch = TokenBatch::single(&r.positive[0]).unwrap();
    let v = test_vector();
    let alpha = 2.5f32;
    let plain = capture_resid(&model, &batch, None);
    let mut steer =
        Steering::add(SiteKind::ResidPost, BTreeMap::from([(0, v.clone())]), alpha).unwrap();
    let steered = capture_resid(&model, &batch, Some(&mut steer));
    let site = Site::ResidPost { layer: 0 };
    let n_pos = r.positive[0].len();
    let expected: Vec<f32> = plain[&site]
        .iter()
        .enumerate()
        .map(|(i, h)| h + alpha * v[i % D_MODEL])
        .collect();
    check_close(
        "steered resid_post 0",
        &steered[&site],
        &expected,
        1e-5,
        false,
    );
    // Before the site nothing moved; after it, the next block's input is the steered output.
    for before in [Site::ResidPre { layer: 0 }, Site::ResidMid { layer: 0 }] {
        check_close(
            &before.to_string(),
            &steered[&before],
            &plain[&before],
            0.0,
            false,
        );
    }
    check_close(
        "resid_pre 1",
        &steered[&Site::ResidPre { layer: 1 }],
        &steered[&site],
        0.0,
        false,
    );
    assert_eq!(steered[&site].len(), n_pos * D_MODEL);
}

#[test]
fn steering_spares_padding_and_early_positions() {
    let model = model();
    let rows = vec![vec![5, 6, 7, 8, 9], vec![10, 11, 12]];
    let batch = TokenBatch::padded(&rows, 0, strata_core::PadSide::Right).unwrap();
    let v = test_vector();
    let plain = capture_resid(&model, &batch, None);
    let mut steer = Steering::add(SiteKind::ResidPost, BTreeMap::from([(1, v.clone())]), 1.0)
        .unwrap()
        .with_positions(strata_steer::ApplyPositions::From(2));
    let steered = capture_resid(&model, &batch, Some(&mut steer));
    let site = Site::ResidPost { layer: 1 };
    for (row, tokens) in rows.iter().enumerate() {
        for pos in 0..5 {
            let off = (row * 5 + pos) * D_MODEL;
            let diff: Vec<f32> = (0..D_MODEL)
                .map(|j| steered[&site][off + j] - plain[&site][off + j])
                .collect();
            let steered_here = pos >= 2 && pos < tokens.len();
            let want: Vec<f32> = if steered_here {
                v.clone()
            } else {
                vec![0.0; D_MODEL]
            };
            check_close(&format!("row {row} pos {pos}"), &diff, &want, 1e-5, false);
        }
    }
}

#[test]
fn ablation_leaves_no_component_along_v_at_any_residual_site() {
    let model = model();
    let r = reference();
    let rows = vec![r.positive[1].clone(), r.negative[1].clone()];
    let batch = TokenBatch::padded(&rows, 0, strata_core::PadSide::Right).unwrap();
    // Ablate a direction the model really uses: its own mean difference at layer 0.
    let pos = &r.tensors["positive.last.0"];
    let neg = &r.tensors["negative.last.0"];
    let v = aggregate(Method::MeanDiff, pos, neg, D_MODEL).unwrap();
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    let unit: Vec<f32> = v.iter().map(|x| x / norm).collect();
    let plain = capture_resid(&model, &batch, None);
    let mut ablate = Steering::ablate(&v).unwrap();
    let ablated = capture_resid(&model, &batch, Some(&mut ablate));
    let dot_max = |acts: &[f32]| {
        acts.chunks(D_MODEL)
            .map(|h| h.iter().zip(&unit).map(|(a, b)| a * b).sum::<f32>().abs())
            .fold(0.0f32, f32::max)
    };
    let mut plain_max = 0.0f32;
    for (site, acts) in &ablated {
        let worst = dot_max(acts);
        assert!(
            worst < 1e-5,
            "{site}: |<h, v_hat>| = {worst:e} after ablation"
        );
        plain_max = plain_max.max(dot_max(&plain[site]));
    }
    assert!(
        plain_max > 1e-2,
        "the unablated stream has a component along v ({plain_max})"
    );
}

#[test]
fn kv_cached_generation_steers_new_tokens_like_a_full_recompute() {
    use strata_core::generate::{GenerateConfig, generate};
    let model = model();
    let v: Vec<f32> = test_vector().iter().map(|x| x * 3.0).collect();
    let make =
        || Steering::add(SiteKind::ResidPost, BTreeMap::from([(0, v.clone())]), 2.0).unwrap();
    let prompt = vec![3u32, 17, 42, 8];
    let config = GenerateConfig {
        max_new_tokens: 8,
        ..GenerateConfig::default()
    };
    let mut steer = make();
    let cached = generate(&model, &prompt, &config, &mut ProbeSet::one(&mut steer)).unwrap();
    // The same greedy decoding without a cache: every step recomputes the whole sequence.
    let mut seq = prompt.clone();
    let mut recomputed = Vec::new();
    for _ in 0..config.max_new_tokens {
        let mut steer = make();
        let logits = model
            .forward_with(
                &TokenBatch::single(&seq).unwrap(),
                None,
                &mut ProbeSet::one(&mut steer),
            )
            .unwrap();
        let [_, p, vocab] = logits.dims();
        let last = strata_core::weights::HostTensor::from_tensor(logits).data
            [(p - 1) * vocab..p * vocab]
            .to_vec();
        let next = strata_core::generate::argmax(&last);
        recomputed.push(next);
        seq.push(next);
    }
    assert_eq!(cached, recomputed);
    let plain = generate(&model, &prompt, &config, &mut ProbeSet::none()).unwrap();
    assert_ne!(
        cached, plain,
        "a strong vector changes the greedy continuation"
    );
}

//! Fine-tuning: every parameter has one HF name, an unknown name is an error, and after
//! training steps exactly the selected tensors changed (weight decay on, so a frozen tensor
//! that reached the optimiser would shrink). The cross-entropy's value and gradient equal the
//! textbook formulas, computed here in f64.

mod common;

use std::collections::BTreeSet;

use burn::backend::{Autodiff, Flex};
use burn::module::Module;
use burn::tensor::{Tensor, TensorData};
use strata_core::Model;
use strata_core::models::Decoder;
use strata_core::train::{
    AdamWSettings, FineTuneConfig, TrainBatch, TrainableParams, cross_entropy, fine_tune,
    named_params,
};

type B = Autodiff<Flex>;

fn llama() -> Decoder<B> {
    Model::<B>::load(&common::fixture("llama-tiny"), &Default::default())
        .unwrap()
        .into_decoder()
        .unwrap()
}

fn batch(step: usize) -> TrainBatch {
    let ids: Vec<u32> = (0..16).map(|i| ((i * 5 + step) % 96) as u32).collect();
    let targets: Vec<u32> = (0..16).map(|i| ((i * 5 + 3 + step) % 96) as u32).collect();
    TrainBatch {
        inputs: ids,
        targets,
        n_rows: 2,
        seq_len: 8,
    }
}

fn config(max_steps: usize, target_loss: Option<f64>) -> FineTuneConfig {
    FineTuneConfig {
        max_steps,
        target_loss,
        loss_window: 2,
        adamw: AdamWSettings {
            beta_1: 0.9,
            beta_2: 0.95,
            weight_decay: 0.1,
            grad_clip_norm: 1.0,
        },
    }
}

#[test]
fn every_parameter_has_one_hf_name() {
    let d = llama();
    let params = named_params(&d).unwrap();
    assert_eq!(
        params.iter().map(|p| p.n_params).sum::<usize>(),
        d.num_params()
    );
    let names: BTreeSet<&str> = params.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names.len(), params.len());
    // The names are those of the checkpoint the decoder was loaded from.
    let store = strata_core::weights::WeightStore::open(&common::fixture("llama-tiny")).unwrap();
    let stored: BTreeSet<String> = store.names().into_iter().collect();
    let named: BTreeSet<String> = names.iter().map(|n| n.to_string()).collect();
    assert_eq!(named, stored);
}

#[test]
fn an_unknown_trainable_name_is_an_error() {
    let required = BTreeSet::from(["model.layers.9.self_attn.q_proj.weight".to_string()]);
    let err = TrainableParams::only(&llama(), &required)
        .unwrap_err()
        .to_string();
    assert!(err.contains("layers.9"), "{err}");
}

#[test]
fn after_fine_tuning_exactly_the_selected_tensors_changed() {
    let decoder = llama();
    let selected = BTreeSet::from([
        "model.layers.0.self_attn.q_proj.weight".to_string(),
        "model.layers.1.mlp.down_proj.weight".to_string(),
    ]);
    let trainable = TrainableParams::only(&decoder, &selected).unwrap();
    assert_eq!(trainable.trainable_names, selected);
    assert_eq!(trainable.n_trainable, 64 * 64 + 112 * 64);
    let before = named_params(&decoder).unwrap();
    let (decoder, losses) = fine_tune(
        decoder,
        &config(3, None),
        Some(&trainable),
        &mut batch,
        &|_| 1e-2,
        &mut |_, _| {},
    )
    .unwrap();
    assert_eq!(losses.len(), 3);
    let after = named_params(&decoder).unwrap();
    for (b, a) in before.iter().zip(&after) {
        assert_eq!(b.name, a.name);
        let same = b.data.as_bytes() == a.data.as_bytes();
        if selected.contains(&b.name) {
            assert!(!same, "{} was selected but did not change", b.name);
        } else {
            assert!(same, "{} was frozen but changed", b.name);
        }
    }
}

#[test]
fn fine_tuning_lowers_the_loss_and_stops_at_the_target() {
    let decoder = llama();
    let trainable = TrainableParams::all(&decoder).unwrap();
    // The same batch every step: the loss must fall.
    let (_, losses) = fine_tune(
        decoder,
        &config(20, None),
        Some(&trainable),
        &mut |_| batch(0),
        &|_| 3e-3,
        &mut |_, _| {},
    )
    .unwrap();
    assert!(losses[19] < 0.5 * losses[0], "{losses:?}");
    // A target above the first losses stops after the loss window.
    let (_, stopped) = fine_tune(
        llama(),
        &config(20, Some(1e9)),
        None,
        &mut |_| batch(0),
        &|_| 3e-3,
        &mut |_, _| {},
    )
    .unwrap();
    assert_eq!(stopped.len(), 2);
}

#[test]
fn cross_entropy_value_and_gradient_are_the_textbook_ones() {
    // Two rows of a batch, the second with a target 200 nats below its best logit, where
    // the target's probability underflows f32.
    let (n_rows, pos, vocab) = (1usize, 2usize, 4usize);
    let logits: Vec<f32> = vec![0.5, -1.0, 2.0, 0.25, 0.0, 100.0, -100.0, 3.0];
    let targets = [2u32, 2];
    let device = Default::default();
    let x = Tensor::<B, 3>::from_data(
        TensorData::new(logits.clone(), [n_rows, pos, vocab]),
        &device,
    )
    .require_grad();
    let loss = cross_entropy(x.clone(), &targets);
    let value = f64::from(loss.clone().into_scalar());
    let grads = loss.backward();
    let grad = x.grad(&grads).expect("logits get a gradient");
    let grad: Vec<f32> = grad.into_data().to_vec().unwrap();

    let mut expected_loss = 0.0f64;
    let mut expected_grad = Vec::new();
    for (row, &t) in logits.chunks(vocab).zip(&targets) {
        let row: Vec<f64> = row.iter().map(|&v| f64::from(v)).collect();
        let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let lse = max + row.iter().map(|v| (v - max).exp()).sum::<f64>().ln();
        expected_loss += (lse - row[t as usize]) / targets.len() as f64;
        for (j, v) in row.iter().enumerate() {
            let onehot = if j == t as usize { 1.0 } else { 0.0 };
            expected_grad.push(((v - lse).exp() - onehot) / targets.len() as f64);
        }
    }
    assert!(
        (value - expected_loss).abs() <= 1e-5 * expected_loss.abs(),
        "loss {value} vs {expected_loss}"
    );
    for (j, (&g, e)) in grad.iter().zip(&expected_grad).enumerate() {
        assert!((f64::from(g) - e).abs() <= 1e-6, "gradient {j}: {g} vs {e}");
    }
}

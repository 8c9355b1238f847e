//! Fine-tuning: every parameter has one HF name, an unknown name is an error, and after
//! training steps exactly the selected tensors changed (weight decay on, so a frozen tensor
//! that reached the optimiser would shrink).

mod common;

use std::collections::BTreeSet;

use burn::backend::{Autodiff, Flex};
use burn::module::Module;
use strata_core::Model;
use strata_core::models::Decoder;
use strata_core::train::{
    AdamWSettings, FineTuneConfig, TrainBatch, TrainableParams, fine_tune, named_params,
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

//! LoRA adapters: the loss and the factors' gradients equal PyTorch's on HF transformers'
//! Llama with the same merged weights (tests/fixtures/lora/reference.py); fresh adapters
//! leave the model as it was; fine-tuning them changes exactly the adapted weights; bad
//! targets, ranks and factor shapes are clear errors.

mod common;

use burn::backend::{Autodiff, Flex};
use burn::tensor::{Tensor, TensorData};
use strata_core::Model;
use strata_core::TokenBatch;
use strata_core::models::Decoder;
use strata_core::train::{
    AdamWSettings, FineTuneConfig, LoraAdapters, LoraConfig, TrainBatch, fine_tune_lora,
    named_params,
};

type B = Autodiff<Flex>;
type Inner = Flex;

fn llama() -> Decoder<B> {
    Model::<B>::load(&common::fixture("llama-tiny"), &Default::default())
        .unwrap()
        .into_decoder()
        .unwrap()
}

/// `batch(0)` of tests/train.rs, the batch of the reference.
fn batch() -> TrainBatch {
    TrainBatch {
        inputs: (0..16).map(|i| ((i * 5) % 96) as u32).collect(),
        targets: (0..16).map(|i| ((i * 5 + 3) % 96) as u32).collect(),
        n_rows: 2,
        seq_len: 8,
    }
}

fn targets() -> Vec<String> {
    (0..2)
        .flat_map(|i| {
            ["q_proj", "v_proj"].map(|p| format!("model.layers.{i}.self_attn.{p}.weight"))
        })
        .collect()
}

/// A reference matrix `[rows, cols]` transposed into burn's layout `[cols, rows]`.
fn transposed(key: &str) -> (Vec<usize>, Vec<f64>) {
    let (shape, v) = common::reference("lora", key);
    let (rows, cols) = (shape[0], shape[1]);
    let t = (0..cols)
        .flat_map(|c| (0..rows).map(move |r| (r, c)))
        .map(|(r, c)| v[r * cols + c])
        .collect();
    (vec![cols, rows], t)
}

fn tensor(shape: &[usize], values: &[f64]) -> Tensor<Inner, 2> {
    let v: Vec<f32> = values.iter().map(|&x| x as f32).collect();
    Tensor::from_data(
        TensorData::new(v, [shape[0], shape[1]]),
        &Default::default(),
    )
}

fn values(t: Tensor<Inner, 2>) -> Vec<f32> {
    t.into_data().to_vec().unwrap()
}

#[test]
fn loss_and_factor_gradients_equal_pytorch() {
    let decoder = llama();
    let names = targets();
    // PEFT's A is [r, d_in] and B [d_out, r]; burn's are their transposes.
    let (down, up): (Vec<_>, Vec<_>) = names
        .iter()
        .map(|n| {
            let (sa, a) = transposed(&format!("{n}.lora_A"));
            let (sb, b) = transposed(&format!("{n}.lora_B"));
            (tensor(&sa, &a), tensor(&sb, &b))
        })
        .unzip();
    let adapters = LoraAdapters::from_factors(&decoder, &names, down, up, 8.0 / 4.0).unwrap();
    let (grads, loss) = adapters.gradients(decoder, &batch()).unwrap();
    let (_, ref_loss) = common::reference("lora", "loss");
    assert!(
        (loss - ref_loss[0]).abs() <= 1e-5 * ref_loss[0].abs(),
        "loss {loss} vs PyTorch {}",
        ref_loss[0]
    );
    for (i, name) in names.iter().enumerate() {
        for (factor, param) in [
            ("grad_A", &adapters.factors.down[i]),
            ("grad_B", &adapters.factors.up[i]),
        ] {
            let (shape, expected) = transposed(&format!("{name}.{factor}"));
            let got = grads
                .get::<Inner, 2>(param.id)
                .unwrap_or_else(|| panic!("{name}: no {factor}"));
            assert_eq!(got.dims().to_vec(), shape, "{name} {factor}");
            let err = common::max_abs_diff(&values(got), &expected);
            let tol = common::tolerance(&expected);
            assert!(err <= tol, "{name} {factor}: max error {err:e} > {tol:e}");
        }
    }
}

#[test]
fn fresh_adapters_leave_the_model_as_it_was() {
    let decoder = llama();
    let config = LoraConfig {
        targets: targets(),
        rank: 3,
        alpha: 6.0,
        seed: 7,
    };
    let adapters = LoraAdapters::new(&decoder, &config).unwrap();
    // q_proj is [64, 64] and v_proj [64, 32] (2 KV heads of 16) in burn's layout.
    let shapes = [[64, 64], [64, 32], [64, 64], [64, 32]];
    assert_eq!(adapters.n_trainable(), LoraConfig::n_params(3, &shapes));
    assert_eq!(adapters.n_trainable(), 3 * (128 + 96) * 2);
    let input = TokenBatch {
        ids: batch().inputs,
        batch: 2,
        pos: 8,
        mask: None,
    };
    let before: Vec<f32> = decoder
        .forward(&input)
        .unwrap()
        .into_data()
        .to_vec()
        .unwrap();
    let after: Vec<f32> = adapters
        .attach(decoder)
        .forward(&input)
        .unwrap()
        .into_data()
        .to_vec()
        .unwrap();
    assert_eq!(before, after, "B = 0 must leave the logits unchanged");
}

#[test]
fn fine_tuning_adapters_changes_exactly_the_adapted_weights() {
    let decoder = llama();
    let names = targets()[..2].to_vec();
    let mut adapters = LoraAdapters::new(
        &decoder,
        &LoraConfig {
            targets: names.clone(),
            rank: 4,
            alpha: 8.0,
            seed: 1,
        },
    )
    .unwrap();
    let before = named_params(&decoder).unwrap();
    let config = FineTuneConfig {
        max_steps: 25,
        target_loss: None,
        loss_window: 2,
        adamw: AdamWSettings {
            beta_1: 0.9,
            beta_2: 0.95,
            weight_decay: 0.0,
            grad_clip_norm: 1.0,
        },
    };
    let (tuned, losses) = fine_tune_lora(
        decoder,
        &mut adapters,
        &config,
        &mut |_| batch(),
        &|_| 1e-2,
        &mut |_, _| {},
    )
    .unwrap();
    assert_eq!(losses.len(), 25);
    assert!(losses[24] < 0.8 * losses[0], "{losses:?}");
    let after = named_params(&tuned).unwrap();
    for (b, a) in before.iter().zip(&after) {
        let same = b.data.as_bytes() == a.data.as_bytes();
        if names.contains(&b.name) {
            assert!(!same, "{} was adapted but did not change", b.name);
        } else {
            assert!(same, "{} was frozen but changed", b.name);
        }
    }
}

#[test]
fn bad_targets_ranks_and_factors_are_clear_errors() {
    let decoder = llama();
    let config = |targets: Vec<String>, rank| LoraConfig {
        targets,
        rank,
        alpha: 1.0,
        seed: 0,
    };
    let unknown = vec!["model.layers.9.self_attn.q_proj.weight".to_string()];
    let err = LoraAdapters::new(&decoder, &config(unknown, 2))
        .unwrap_err()
        .to_string();
    assert!(err.contains("layers.9"), "{err}");
    let norm = vec!["model.norm.weight".to_string()];
    let err = LoraAdapters::new(&decoder, &config(norm, 2))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("model.norm.weight") && err.contains("2-D"),
        "{err}"
    );
    let err = LoraAdapters::new(&decoder, &config(targets(), 0))
        .unwrap_err()
        .to_string();
    assert!(err.contains("rank"), "{err}");
    let err = LoraAdapters::new(&decoder, &config(Vec::new(), 2))
        .unwrap_err()
        .to_string();
    assert!(err.contains("targets"), "{err}");
    let q = targets()[..1].to_vec();
    let wrong = LoraAdapters::from_factors(
        &decoder,
        &q,
        vec![Tensor::zeros([64, 2], &Default::default())],
        vec![Tensor::zeros([3, 64], &Default::default())],
        1.0,
    )
    .unwrap_err()
    .to_string();
    assert!(
        wrong.contains("q_proj") && wrong.contains("[3, 64]"),
        "{wrong}"
    );
}

//! Two probes in one forward pass: a `Capture` of every block's residual stream beside
//! strata-massive's streaming `MassiveProbe`; then strata-sparsity's `ThresholdMask`, which
//! zeroes MLP neurons, between two captures of the neuron activations. The library chapter
//! of the book (`book/src/library.md`) shows this file.
//!
//! ```sh
//! cargo run --example compose_probes        # from the repository root
//! ```

use burn::backend::Flex;
use strata::core::eval::corpus;
use strata::core::probe::{Capture, ProbeSet, Site};
use strata::core::weights::HostTensor;
use strata::core::{Model, TokenBatch};
use strata::massive::{MassiveConfig, MassiveProbe};
use strata::sparsity::{SparsityConfig, ThresholdMask, at_cett};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // ANCHOR: load
    let device = Default::default();
    let model = Model::<Flex>::load("datasets/models/tiny-default".as_ref(), &device)?;
    let n_layers = model.config().n_layers;
    let text = "In the beginning God created the heaven and the";
    let ids = model.tokenizer()?.encode(text)?;
    let batch = TokenBatch::single(&ids)?;
    // ANCHOR_END: load

    // ANCHOR: observe
    // Two observers of the same sites in one pass: the whole residual streams, copied to
    // the host, and the massive-activation statistics, reduced on the device.
    let resid_post: Vec<Site> = (0..n_layers)
        .map(|layer| Site::ResidPost { layer })
        .collect();
    let mut capture = Capture::new(resid_post.iter().copied());
    let mut massive = MassiveProbe::new(n_layers, MassiveConfig::default());
    let dense_logits = model.forward_with(
        &batch,
        None,
        &mut ProbeSet::one(&mut capture).with(&mut massive),
    )?;
    massive.finish_call(batch.batch);
    let stats = massive.into_result();
    for (site, layer) in resid_post.iter().zip(&stats.layers) {
        let h = &capture.captured[site];
        let max_abs = h.data.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        println!(
            "{site}: captured {:?}, max |h| {max_abs:.3} | probe: top-1 {:.3}, median {:.4}, ratio {:.1}",
            h.shape,
            layer.mean_top1(),
            layer.mean_median(),
            layer.ratio_of_means(),
        );
    }
    // ANCHOR_END: observe

    // ANCHOR: intervene
    // Per-layer thresholds at CETT 0.2, solved on the KJV validation split.
    let corpus_text = std::fs::read_to_string("datasets/kjv/valid.txt")?;
    let tokens = corpus::frame_lines(model.tokenizer()?, corpus_text.lines())?;
    let config = SparsityConfig::for_model(model.config());
    let thresholds = at_cett(&model, &tokens, 0.2, &config, &mut |_, _| {})?.mean_thresholds();

    // Probes run in the order they are attached: `before` sees the dense neuron
    // activations, the mask zeroes the neurons under their layer's threshold, and `after`
    // sees what the down projection receives.
    let mlp_post: Vec<Site> = (0..n_layers).map(|layer| Site::MlpPost { layer }).collect();
    let mut before = Capture::new(mlp_post.iter().copied());
    let mut mask = ThresholdMask::new(&model, &thresholds)?;
    let mut after = Capture::new(mlp_post.iter().copied());
    let sparse_logits = model.forward_with(
        &batch,
        None,
        &mut ProbeSet::one(&mut before).with(&mut mask).with(&mut after),
    )?;
    for (layer, site) in mlp_post.iter().enumerate() {
        println!(
            "{site}: threshold {:.4}, zero before {:.1}%, after {:.1}% (mask: {} of {} labelled pairs)",
            thresholds[layer],
            100.0 * zero_fraction(&before.captured[site]),
            100.0 * zero_fraction(&after.captured[site]),
            mask.n_dropped[layer],
            mask.n_pairs[layer],
        );
    }
    let tokenizer = model.tokenizer()?;
    let dense_next = tokenizer.decode(&[last_argmax(HostTensor::from_tensor(dense_logits))])?;
    let sparse_next = tokenizer.decode(&[last_argmax(HostTensor::from_tensor(sparse_logits))])?;
    println!("next token after {text:?}: dense {dense_next:?}, sparse {sparse_next:?}");
    // ANCHOR_END: intervene
    Ok(())
}

/// The fraction of exact zeros in a captured activation.
fn zero_fraction(t: &HostTensor) -> f64 {
    t.data.iter().filter(|v| **v == 0.0).count() as f64 / t.data.len() as f64
}

/// The highest-scoring token at the last position of `[1, pos, d_vocab]` logits.
fn last_argmax(logits: HostTensor) -> u32 {
    let d_vocab = logits.shape[2];
    let last = &logits.data[logits.data.len() - d_vocab..];
    let (idx, _) = last
        .iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |best, (i, &v)| {
            if v > best.1 { (i, v) } else { best }
        });
    idx as u32
}

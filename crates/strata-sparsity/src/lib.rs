//! Activation sparsity of MLP neurons: how many neurons of each layer a model can skip at a
//! perplexity cost of p% (PPL-p%, or CETT-PPL-p%), with per-layer CETT thresholds.
//!
//! The Sparsing Law paper (Luo et al., arXiv:2411.02335) measures sparsity by the neuron
//! output norm `||n_i|| = |a_i| * ||W_out[:, i]||`, where `a` is the MLP hidden activation
//! at `blocks.{l}.mlp.hook_post` (`act(gate) * up` for gated MLPs, `act(pre)` for plain
//! ones). For a CETT target `c` shared by all layers, each layer gets the largest threshold
//! `eps_l` whose dropped neurons (`||n_i|| < eps_l`) change the MLP output by a relative L2
//! error of at most `c`, averaged over tokens; a sparse pass then zeroes every neuron under
//! its threshold. PPL-p% bisects on `c` until the sparse model's perplexity is `1 + p/100`
//! times the dense model's, and reports the activation ratio there. The method, its
//! defaults and the reference code's pitfalls are in `methods/sparsity.md`.
//!
//! # Example
//! ```no_run
//! use burn::backend::Flex;
//! use strata_core::Model;
//! use strata_core::eval::corpus;
//! use strata_sparsity::{SparsityConfig, ppl_p};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let model = Model::<Flex>::load("datasets/models/tiny-default".as_ref(), &Default::default())?;
//! let text = std::fs::read_to_string("datasets/kjv/valid.txt")?;
//! let tokens = corpus::frame_lines(model.tokenizer()?, text.lines())?;
//! let config = SparsityConfig::for_model(model.config());
//! let found = ppl_p(&model, &tokens, &[1.0], &config, &mut |_, _| {})?;
//! let at = &found[0].result;
//! println!("PPL-1%: CETT {:.3}, activation ratio {:.3}", found[0].cett, at.mean_activation_ratio());
//! for layer in &at.layers {
//!     println!("layer {}: {:.3}", layer.layer, layer.activation_ratio());
//! }
//! # Ok(()) }
//! ```
//!
//! # Defaults and cost
//! - Windows of the model's context (at most 256 tokens), 4 of them, back to back from the
//!   start of the token stream; the thresholds of a window are solved on its own dense
//!   activations of the label-bearing tokens (in-sample, as the reference code does).
//! - Threshold grid: 65,536 linear candidates from the smallest norm to the 99th percentile
//!   of a strided subsample; strict `<`; the reference code's index wraparound is guarded
//!   ([`ThresholdConfig::wraparound`] reproduces it); a target of 0 uses the threshold 1e-7.
//! - Outer bisection on `c` in `[0, 1]` to a bracket of 1e-3 (10 steps); the PPL ratio is
//!   the mean of per-window ratios.
//! - Cost: one dense pass per window (its `mlp.hook_post` activations stay on the device),
//!   then per CETT target about 16 `[n_tokens, d_mlp] x [d_mlp, d_model]` products per layer
//!   and window on the device (CETT values at grid points are remembered across targets) and
//!   one sparse pass per window. Only scalars come back to the host.
//! - The activation ratio is counted on the activations the sparse pass computes; the one
//!   on the dense activations the thresholds were solved on, and the exact-zero fraction
//!   (ProSparse's metric for ReLU models, not CETT-based), are kept beside it.
//! - Checkpoint series ([`measure_series`]): one CETT target for every checkpoint of a run,
//!   fixed or found by PPL-p% jointly on the last checkpoints (the mean of their PPL ratios,
//!   the paper's App. E), and the paper's fitted laws of the mean activation ratio against
//!   the tokens seen ([`fit_law`], Eq. 4-5, Levenberg-Marquardt), warm-up checkpoints dropped.
//! - Not offered: top-k and FAT-epsilon comparisons, fixed out-of-sample thresholds in the
//!   sparse pass.
//!
//! No cargo features. The book chapter is `book/src/sparsity.md`.
#![warn(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod error;
mod law;
mod probe;
mod result;
mod search;
mod series;
mod threshold;

pub use error::{Error, Result};
pub use law::{Law, LawConfig, LawFit, LawParams, fit_law};
pub use probe::{DenseCapture, ThresholdMask, weight_norms};
pub use result::{LayerSparsity, SparsityResult};
pub use search::{
    DensePass, PplSearch, Progress, SearchStatus, SearchStep, SparsityConfig, at_cett, ppl_p,
    windows,
};
pub use series::{
    CheckpointSparsity, JointSearch, SeriesCheckpoint, SeriesTarget, SparsitySeries,
    discover_checkpoints, measure_series, planned_passes, recorded_warmup_steps,
};
pub use threshold::{
    LayerSolver, LayerThreshold, ThresholdConfig, layer_threshold, neuron_weight_norms,
};

//! Voids: which layers a language model actually uses for each token, by the L2 Adaptive
//! Computation (LAC) rule, in prompt processing and in generation, and what skipping the
//! unused layers does to its answers.
//!
//! For each token, a block's change of the residual-stream L2 norm,
//! `delta_l = ||h_{l+1}|| - ||h_l||` (signed), is compared with
//! `alpha x (max - min)` of the same token's deltas at earlier layers: below it the layer
//! is a **void**, otherwise **active** (Shemiranifar, "Void in Language Models",
//! arXiv:2505.14467; the rule as in the author's code, `methods/void.md`). The rule has no
//! state across tokens or calls and nothing to train; `alpha` is its one knob.
//!
//! # Example
//!
//! ```no_run
//! use burn::backend::Flex;
//! use strata_core::Model;
//! use strata_core::generate::GenerateConfig;
//! use strata_void::{Phase, Skip, VoidConfig, generate_with_voids};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let model = Model::<Flex>::load("datasets/models/tiny-default".as_ref(), &Default::default())?;
//! let prompt = model.tokenizer()?.encode("In the beginning God created")?;
//! let config = VoidConfig { alpha: 0.8, skip: Skip::DeepestActive, ..VoidConfig::default() };
//! let generate = GenerateConfig { max_new_tokens: 8, ..Default::default() };
//! let (new_tokens, voids) = generate_with_voids(&model, &prompt, &generate, &config)?;
//! println!("{} new tokens", new_tokens.len());
//! for phase in [Phase::Prompt, Phase::Generation] {
//!     println!("{}: {:.0}% of layers", phase.name(), 100.0 * voids.phase(phase).usage());
//! }
//! # Ok(()) }
//! ```
//!
//! The rule itself, on the worked example of the method note:
//!
//! ```
//! let (_, active) = strata_void::lac_map(&[5.0, 2.0, 3.0, 8.0, 1.0, 10.0], 0.8);
//! assert_eq!(active, [true, true, true, true, false, true]);
//! ```
//!
//! # Defaults and what is not done
//!
//! - `alpha` 0.8, norms and deltas in f32, measure only ([`Skip::Off`]).
//! - [`Skip::DeepestActive`] (variant A, the reference code's behaviour) changes only what
//!   the final norm and LM head read: each token decodes from its deepest active layer.
//!   [`Skip::PassThrough`] (variant B) makes void layers pass their input on, so later
//!   layers and KV caches see the skipped stream. Both still compute every layer (a layer's
//!   void test needs its output), so neither is faster.
//! - Real compute skipping goes through core's [`LayerSkip`](strata_core::probe::LayerSkip):
//!   [`VoidConfig::compute_skip`] names layers chosen ahead of time (e.g. by
//!   [`rarely_active_layers`] on a prompt's usage profile) that then run neither attention
//!   nor MLP.
//! - Batches are measured per token with no coupling between rows or padding (the
//!   reference's batch-axis max/min at layer 0 is not reproduced); padding is not counted.
//! - Cost: [`VoidProbe`] reads `hook_resid_pre` and `hook_resid_post` of every block,
//!   reduces each to one norm per token on the device and copies `[batch, pos]` floats to
//!   the host per block.
//!
//! No cargo features. Book chapter: `book/src/void.md`.

#![warn(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod error;
mod probe;
mod result;
mod rule;
mod run;

pub use error::{Error, Result};
pub use probe::{Skip, VoidConfig, VoidProbe};
pub use result::{Phase, PhaseUsage, TokenMap, VoidResult};
pub use rule::{History, MIN_LAYERS, check_alpha, check_depth, lac_map};
pub use run::{
    LetterAccuracy, LetterPrompt, answer_letter, generate_with_voids, map_prompt,
    perplexity_with_voids, rarely_active_layers, score_by_letter, score_task_with_voids,
};

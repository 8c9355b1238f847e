//! Fine-tuning a decoder: one training step shared by every trainer, the fine-tuning loop,
//! which parameters may change ([`TrainableParams`], e.g. a KappaTune selection), and LoRA
//! adapters trained in the same loop ([`LoraAdapters`]).
//!
//! Runs on any burn autodiff backend (`Autodiff<Flex>` on the CPU).
//!
//! ```no_run
//! use std::collections::BTreeSet;
//! use burn::backend::{Autodiff, Flex};
//! use strata_core::Model;
//! use strata_core::train::{AdamWSettings, FineTuneConfig, TrainBatch, TrainableParams, fine_tune};
//! # fn main() -> strata_core::Result<()> {
//! type B = Autodiff<Flex>;
//! let model = Model::<B>::load("datasets/models/tiny-default".as_ref(), &Default::default())?;
//! let decoder = model.into_decoder()?;
//! let names = BTreeSet::from(["model.layers.0.mlp.down_proj.weight".to_string()]);
//! let trainable = TrainableParams::only(&decoder, &names)?;
//! let config = FineTuneConfig {
//!     max_steps: 10,
//!     target_loss: None,
//!     loss_window: 5,
//!     adamw: AdamWSettings { beta_1: 0.9, beta_2: 0.95, weight_decay: 0.1, grad_clip_norm: 1.0 },
//! };
//! let batch = TrainBatch { inputs: vec![1; 16], targets: vec![2; 16], n_rows: 2, seq_len: 8 };
//! let (_tuned, losses) =
//!     fine_tune(decoder, &config, Some(&trainable), &mut |_| batch.clone(), &|_| 1e-3, &mut |_, _| {})?;
//! println!("last loss {:.3}", losses[losses.len() - 1]);
//! # Ok(()) }
//! ```

mod lora;
mod step;
mod trainable;

pub use lora::{
    LoraAdapters, LoraConfig, LoraFactors, LoraOptimizer, fine_tune_lora, lora_optimizer,
};
pub use step::{
    AdamWSettings, DecoderOptimizer, FineTuneConfig, TrainBatch, cross_entropy, fine_tune,
    mean_tail, train_step,
};
pub use trainable::{NamedParam, TrainableParams, named_params};

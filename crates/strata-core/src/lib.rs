//! Hugging Face transformer checkpoints on burn, with probes at every TransformerLens site.
//!
//! `strata-core` loads a model folder (`config.json`, safetensors weights, `tokenizer.json`)
//! of the GPT-2, GPT-NeoX (Pythia), Llama, Mistral, Qwen2 or BERT families, or a Llama-layout
//! `.gguf` file, onto any burn
//! device, runs batched forward passes, KV-cached generation and sliding-window perplexity,
//! and lets analyses observe or replace the activation at any named [`Site`] through
//! [`Probe`]s. Every analysis crate of strata stands on it.
//!
//! # Example
//! ```no_run
//! use burn::backend::Flex;
//! use strata_core::{Model, TokenBatch, probe::{Capture, ProbeSet, Site}};
//! # fn main() -> strata_core::Result<()> {
//! let device = Default::default();
//! let model = Model::<Flex>::load("datasets/models/tiny-default".as_ref(), &device)?;
//! let ids = model.tokenizer()?.encode("In the beginning")?;
//! let mut capture = Capture::new([Site::ResidPost { layer: 0 }]);
//! let logits = model.forward_with(&TokenBatch::single(&ids)?, None, &mut ProbeSet::one(&mut capture))?;
//! assert_eq!(logits.dims()[1], ids.len());
//! println!("{:?}", capture.captured[&Site::ResidPost { layer: 0 }].shape);
//! # Ok(()) }
//! ```
//!
//! # What it does and does not do
//! - Weights are memory-mapped and moved to the device one tensor at a time; f16 and bf16
//!   files are upcast, GGUF block quantizations dequantized, and the model computes in f32.
//! - With no probes attached, a forward pass is the plain forward pass.
//! - Library code never names a backend: everything is generic over `B: Backend`. Binaries
//!   choose one from a [`DeviceSpec`].
//! - It evaluates with probes attached ([`eval`]) and fine-tunes ([`train`]: one training
//!   step, AdamW, frozen parameters).
//! - It does not reach the network: models come from local folders and `.gguf` files. The
//!   one exception is opt-in: with the `remote` feature, a device on another machine that the
//!   caller names (`device::remote_device`).
//!
//! # Cargo features
//! - `wgpu`, `vulkan`, `metal`, `cuda`: the GPU backends (flex, the CPU backend, is always on).
//! - `remote`: burn's remote backend, a device on another machine ([`DeviceSpec::Remote`],
//!   `device::remote_device`); `server`: serve a local device to such clients
//!   (`device::serve`).
#![warn(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod config;
pub mod device;
mod error;
pub mod eval;
pub mod generate;
mod input;
pub mod io;
pub mod models;
pub mod probe;
mod shard;
mod tokenizer;
pub mod train;
pub mod weights;

pub use config::ModelConfig;
pub use device::DeviceSpec;
pub use error::{Error, Result};
pub use input::{PadSide, TokenBatch};
pub use models::{KvCache, Model};
pub use probe::{Probe, ProbeSet, Site};
pub use shard::Shard;
pub use tokenizer::Tokenizer;

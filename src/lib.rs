//! strata: look inside transformer language models.
//!
//! This facade re-exports strata's crates so one dependency brings them all:
//! - [`core`] (`strata-core`): Hugging Face checkpoints on burn, probes at every
//!   TransformerLens site, generation, evaluation and fine-tuning.
//! - [`spectra`] (`strata-spectra`): condition-number spectra of weight tensors and KappaTune.
//! - [`massive`] (`strata-massive`): where the massive activations sit, layer by layer.
//! - [`sparsity`] (`strata-sparsity`): how sparse the MLP neurons are at a perplexity cost
//!   of p% (CETT thresholds, PPL-p%).
//! - [`void`] (`strata-void`): which layers each token uses (L2 Adaptive Computation void
//!   maps) and what skipping the voids does.
//! - [`steer`] (`strata-steer`): steering vectors from contrastive pairs: extract, choose the
//!   layer, apply, ablate, compare, save.
//! - [`report`] (`strata-report`): tables and figures of analysis results.
//!
//! Each analysis is a crate of its own that depends only on `strata-core`; see the book for a
//! tour.
//!
//! # Cargo features
//! - `wgpu`: the WebGPU backend (any GPU vendor, or Mesa's software Vulkan on a CPU).
//! - `vulkan`: wgpu forced onto Vulkan (SPIR-V kernels).
//! - `metal`: wgpu forced onto Metal.
//! - `cuda`: NVIDIA CUDA (kernels compiled at run time by NVRTC).
#![warn(missing_docs)]

pub use strata_core as core;
pub use strata_massive as massive;
pub use strata_report as report;
pub use strata_sparsity as sparsity;
pub use strata_spectra as spectra;
pub use strata_steer as steer;
pub use strata_void as void;

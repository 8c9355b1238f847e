//! strata: look inside transformer language models.
//!
//! This facade re-exports strata's crates so one dependency brings them all:
//! - [`core`] (`strata-core`): Hugging Face checkpoints on burn, probes at every
//!   TransformerLens site, generation and perplexity.
//!
//! The analyses (spectra, massive activations, sparsity, voids, steering) are crates of their
//! own that depend only on `strata-core`; see the book for a tour.
//!
//! # Cargo features
//! - `wgpu`: the WebGPU backend (any GPU vendor, or Mesa's software Vulkan on a CPU).
#![warn(missing_docs)]

pub use strata_core as core;

//! Steering vectors: a direction for a concept from contrastive pairs, a score per layer to
//! choose where to use it, and a probe that adds it to (or projects it out of) the residual
//! stream, in a batch forward pass or KV-cached generation.
//!
//! Given pairs `(x⁺, x⁻)` that differ only in the concept, [`extract_activations`] reads
//! every block's residual stream (`hook_resid_post` by default) at a [`ReadPosition`] in one
//! pass per batch; [`aggregate`] turns a layer's activations into a direction (mean
//! difference, uncentred or centred PCA of the differences, or a logistic-probe direction);
//! [`score_layers`] gives each layer a Fisher-like separation and a held-out probe accuracy
//! (and the TA2 code's legacy score, for reproduction). [`Steering`] applies a direction
//! once at the chosen blocks (`h + α·v`), or ablates it at every block; [`dose_response`]
//! measures a behaviour metric and perplexity over `α`. [`SteeringVectors`] saves and loads
//! directions with their provenance (safetensors) and exports llama.cpp control vectors
//! (GGUF). The method and its sources (CAA, repeng, steering-vectors, TA2, "How
//! Post-Training Reshapes LLMs") are in `shared/methods/steer.md`.
//!
//! # Example
//! ```no_run
//! use std::collections::BTreeMap;
//! use burn::backend::Flex;
//! use strata_core::{Model, ProbeSet};
//! use strata_core::generate::{GenerateConfig, generate};
//! use strata_steer::{ExtractConfig, Method, Steering, aggregate, extract_activations};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let model = Model::<Flex>::load("datasets/models/tiny-default".as_ref(), &Default::default())?;
//! let tok = model.tokenizer()?;
//! let positive = vec![tok.encode("And he said unto them, thou shalt not.")?];
//! let negative = vec![tok.encode("And he said to them, you shall not.")?];
//! let acts = extract_activations(&model, &positive, &negative, &ExtractConfig::default(),
//!     &mut |_, _| {})?;
//! let layer = 1;
//! let i = acts.layers.iter().position(|&l| l == layer).unwrap();
//! let v = aggregate(Method::MeanDiff, &acts.positive[i], &acts.negative[i], acts.d_model)?;
//! let mut steer = Steering::add(acts.site, BTreeMap::from([(layer, v)]), 4.0)?;
//! let prompt = tok.encode("And the LORD spake")?;
//! let ids = generate(&model, &prompt, &GenerateConfig::default(), &mut ProbeSet::one(&mut steer))?;
//! println!("{}", tok.decode(&ids)?);
//! # Ok(()) }
//! ```
//!
//! # Defaults and limits
//! Mean difference at `hook_resid_post`, last token, every layer; vectors are saved raw
//! unless normalised. Extraction runs one forward pass per batch with a probe that reduces
//! each chosen site to `[batch, d_model]` on the device; only those rows reach the host.
//! PCA and the probe run on the host in f64 (nalgebra). Not offered: sparse-autoencoder
//! encodings, classifier judges of generations, and the TA2 task evaluations. The book
//! chapter is `book/src/steer.md`.
#![warn(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod aggregate;
mod apply;
mod compare;
mod error;
mod extract;
mod pairs;
mod position;
mod score;
mod sweep;
mod vectors;

use std::collections::BTreeMap;

pub use aggregate::{Method, aggregate};
pub use apply::{ApplyPositions, Operator, Steering};
pub use compare::{CosineCell, cosine, cosine_matrix, layer_cosines};
pub use error::{Error, Result};
pub use extract::{ExtractConfig, PairActivations, SiteKind, extract_activations};
pub use pairs::{ContrastivePair, read_pairs};
pub use position::ReadPosition;
pub use score::{LayerScore, js_divergence, legacy_ta2_score, score_layer, score_layers, softmax};
pub use sweep::{DosePoint, dose_response, sequence_log_probs};
pub use vectors::{META_KEY, SteeringMeta, SteeringVectors};

/// One direction per layer of a contrastive set, by `method`.
pub fn directions(acts: &PairActivations, method: Method) -> Result<BTreeMap<usize, Vec<f32>>> {
    acts.layers
        .iter()
        .zip(acts.positive.iter().zip(&acts.negative))
        .map(|(&l, (p, n))| Ok((l, aggregate(method, p, n, acts.d_model)?)))
        .collect()
}

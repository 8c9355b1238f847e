//! Massive activations: the handful of residual-stream scalars, on fixed feature dimensions
//! and special tokens, that are orders of magnitude larger than the median (Sun et al.,
//! 2024). For every block's `hook_resid_post` this crate records, per input sequence, the
//! largest magnitudes with where they sit (sequence, position, token, feature) and the exact
//! median of `|h|` over all `pos x d_model` entries, and flags the massive ones: `|a| > 100`
//! and `|a| >= 1000 x median` by default (both thresholds configurable: tiny models never
//! reach 100).
//!
//! The statistics follow the dynamics paper's definitions: per input, top-1 and the median
//! over the whole hidden state of a layer; over a corpus, the ratio of the means
//! (`mean top-1 / mean median`). Results hold a fixed number of entries per layer, so memory
//! does not grow with the corpus, and shards [`Merge`](strata_core::probe::Merge) exactly.
//!
//! Over training (arXiv:2508.03616, `shared/methods/massive.md`): [`discover_series`] and
//! [`measure_series`] run the same measurement on every checkpoint of a run, on the same
//! tokens; [`fit_dynamics`] fits the five-parameter curve
//! `f(t) = A exp(-lambda x) ln x + K`, `x = gamma t + t0`, to a layer's series by
//! Levenberg-Marquardt and reports R^2, AIC and the peak step; [`predict_parameters`]
//! regresses the fitted parameters on architecture features (ridge, k-fold
//! cross-validation, held-out R^2).
//!
//! ```no_run
//! use burn::backend::Flex;
//! use strata_core::Model;
//! use strata_massive::{MassiveConfig, measure};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let model = Model::<Flex>::load("datasets/models/tiny-default".as_ref(), &Default::default())?;
//! let ids = model.tokenizer()?.encode("In the beginning God created the heaven and the earth.")?;
//! let result = measure(&model, &[ids], &MassiveConfig::default(), &mut |_, _| {})?;
//! for layer in &result.layers {
//!     println!("layer {}: top-1 / median = {:.1}", layer.layer, layer.ratio_of_means());
//! }
//! # Ok(()) }
//! ```
#![warn(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod error;
mod fit;
mod intervene;
mod predict;
mod probe;
mod result;
mod series;
mod table;

pub use error::{Error, Result};
pub use fit::{
    DynamicsFit, DynamicsParams, FitConfig, N_PARAMS, PARAM_NAMES, fit_dynamics, lambert_w0,
};
pub use intervene::{MassiveIntervention, Replacement};
pub use predict::{
    DepthConvention, FEATURE_NAMES, LayerArch, ParamPrediction, PredictorConfig, Ridge, features,
    predict_parameters, r2, yeo_johnson, yeo_johnson_lambda,
};
pub use probe::{MassiveConfig, MassiveProbe, measure, measure_with};
pub use result::{LayerStats, MassiveEntry, MassiveResult};
pub use series::{
    Checkpoint, CheckpointResult, SeriesResult, Statistic, check_architecture, discover_series,
    measure_series,
};
pub use table::{LayerRow, SeriesRow, TopRow, layer_rows, series_rows, top_rows};

//! The measurement: one dense pass per window ([`DensePass`]), then sparse passes at a fixed
//! CETT target ([`DensePass::evaluate`]) or the outer bisection on the target for PPL-p%
//! ([`DensePass::search`]).

use burn::tensor::{Tensor, backend::Backend};
use serde::{Deserialize, Serialize};
use strata_core::eval::{PerplexityConfig, perplexity};
use strata_core::{Model, ProbeSet};

use crate::error::{Error, Result};
use crate::probe::{DenseCapture, ThresholdMask, weight_norms};
use crate::result::{LayerSparsity, SparsityResult};
use crate::threshold::{LayerSolver, ThresholdConfig};

/// Windows, tolerance and threshold grid of a measurement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SparsityConfig {
    /// Tokens per window: one forward pass, thresholds solved on its label-bearing tokens
    /// (all but the last).
    pub window: usize,
    /// Windows taken from the start of the token stream, back to back.
    pub n_windows: usize,
    /// The outer bisection on the CETT target stops when the bracket is narrower than this
    /// (the reference code: 1e-3, about 10 steps).
    pub tol: f64,
    /// How per-layer thresholds are solved.
    pub threshold: ThresholdConfig,
}

impl SparsityConfig {
    /// Windows of the model's context (at most 256 tokens), 4 of them, tolerance 1e-3, the
    /// reference grid.
    pub fn for_model(config: &strata_core::ModelConfig) -> Self {
        Self {
            window: config.n_ctx.min(256),
            n_windows: 4,
            tol: 1e-3,
            threshold: ThresholdConfig::default(),
        }
    }

    /// Fails unless the window holds at least 2 tokens, at least one window is asked for,
    /// the tolerance is in `(0, 1)` and the grid is valid.
    pub fn validate(&self) -> Result<()> {
        if self.window < 2 {
            return Err(Error::InvalidConfig {
                what: "window",
                value: self.window.to_string(),
                reason: "a window needs at least 2 tokens (one to predict)".into(),
            });
        }
        if self.n_windows == 0 {
            return Err(Error::InvalidConfig {
                what: "n_windows",
                value: "0".into(),
                reason: "measure at least one window".into(),
            });
        }
        if !(self.tol > 0.0 && self.tol < 1.0) {
            return Err(Error::InvalidConfig {
                what: "tol",
                value: self.tol.to_string(),
                reason: "the bisection tolerance is in (0, 1), e.g. 1e-3".into(),
            });
        }
        self.threshold.validate()
    }
}

/// One dense window: its tokens, its dense log-likelihood and its layers' solvers.
#[derive(Debug)]
struct DenseWindow<B: Backend> {
    tokens: Vec<u32>,
    dense: strata_core::eval::Perplexity,
    solvers: Vec<LayerSolver<B>>,
    n_exact_zero: Vec<u64>,
}

/// The dense passes of a measurement: per window, the dense log-likelihood and every layer's
/// `mlp.hook_post` activations of the label-bearing tokens, kept on the device
/// (`n_windows * (window - 1) * n_layers * d_mlp` floats, twice: activations and norms).
/// The dense pass does not depend on the CETT target, so it runs once and every target
/// reuses it.
#[derive(Debug)]
pub struct DensePass<B: Backend> {
    config: SparsityConfig,
    windows: Vec<DenseWindow<B>>,
    weight_norms: Vec<Tensor<B, 2>>,
    n_sparse_passes: usize,
}

/// Progress of a long measurement: forward passes done and planned.
pub type Progress<'a> = &'a mut dyn FnMut(usize, usize);

/// The first `n_windows` back-to-back windows of `window` tokens of `tokens`.
pub fn windows(tokens: &[u32], window: usize, n_windows: usize) -> Result<Vec<&[u32]>> {
    let needed = window.saturating_mul(n_windows);
    if window < 2 || tokens.len() < needed {
        return Err(Error::CorpusTooShort {
            n_tokens: tokens.len(),
            window,
            n_windows,
            needed,
        });
    }
    Ok(tokens.chunks_exact(window).take(n_windows).collect())
}

impl<B: Backend> DensePass<B> {
    /// Runs the dense pass over the first `config.n_windows` windows of `tokens`.
    /// `progress` gets (windows done, windows).
    pub fn run(
        model: &Model<B>,
        tokens: &[u32],
        config: &SparsityConfig,
        progress: Progress<'_>,
    ) -> Result<Self> {
        config.validate()?;
        let chunks = windows(tokens, config.window, config.n_windows)?;
        let n_layers = model.config().n_layers;
        let weight_norms = weight_norms(model)?;
        let weights: Vec<Tensor<B, 2>> = (0..n_layers)
            .map(|l| model.mlp_output_weight(l))
            .collect::<strata_core::Result<_>>()?;
        let ppl_config = PerplexityConfig::new(config.window, config.window)?;
        let mut out = Vec::with_capacity(chunks.len());
        for (w, chunk) in chunks.iter().enumerate() {
            let _span = tracing::info_span!("dense window", window = w).entered();
            let mut capture = DenseCapture::<B>::new(n_layers);
            let dense = perplexity(
                model,
                chunk,
                &ppl_config,
                &mut ProbeSet::one(&mut capture),
                &mut |_, _| {},
            )?;
            let mut solvers = Vec::with_capacity(n_layers);
            let mut n_exact_zero = Vec::with_capacity(n_layers);
            for (layer, acts) in capture.layers.into_iter().enumerate() {
                let acts = acts.ok_or_else(|| Error::NoMlp {
                    model: model.source_path().to_path_buf(),
                    layer,
                    reason: "the forward pass produced no `mlp.hook_post` activation".into(),
                })?;
                let solver = LayerSolver::new(acts, weights[layer].clone(), &config.threshold)?;
                n_exact_zero.push(solver.n_exact_zero()?);
                solvers.push(solver);
            }
            out.push(DenseWindow {
                tokens: chunk.to_vec(),
                dense,
                solvers,
                n_exact_zero,
            });
            progress(w + 1, chunks.len());
        }
        Ok(Self {
            config: config.clone(),
            windows: out,
            weight_norms,
            n_sparse_passes: 0,
        })
    }

    /// The configuration of the measurement.
    pub fn config(&self) -> &SparsityConfig {
        &self.config
    }

    /// Dense forward passes run (one per window).
    pub fn n_dense_passes(&self) -> usize {
        self.windows.len()
    }

    /// Sparse forward passes run so far.
    pub fn n_sparse_passes(&self) -> usize {
        self.n_sparse_passes
    }

    /// Sparsity at CETT target `cett` (in `[0, 1]`): per window, every layer's threshold is
    /// solved on that window's dense activations, then one sparse pass runs with every layer
    /// masked at once. `progress` gets (windows done, windows).
    pub fn evaluate(
        &mut self,
        model: &Model<B>,
        cett: f64,
        progress: Progress<'_>,
    ) -> Result<SparsityResult> {
        if !(0.0..=1.0).contains(&cett) {
            return Err(Error::InvalidCett { value: cett });
        }
        let n_layers = self.weight_norms.len();
        let ppl_config = PerplexityConfig::new(self.config.window, self.config.window)?;
        let mut result = SparsityResult {
            cett,
            window: self.config.window,
            n_windows: 0,
            dense: strata_core::eval::Perplexity {
                nll_sum: 0.0,
                n_predicted: 0,
            },
            sparse: strata_core::eval::Perplexity {
                nll_sum: 0.0,
                n_predicted: 0,
            },
            sum_ppl_ratio: 0.0,
            layers: (0..n_layers).map(LayerSparsity::empty).collect(),
        };
        let n = self.windows.len();
        for (w, window) in self.windows.iter_mut().enumerate() {
            let _span = tracing::info_span!("sparse window", window = w, cett).entered();
            let mut thresholds = Vec::with_capacity(n_layers);
            for (layer, solver) in window.solvers.iter_mut().enumerate() {
                let t = solver.solve(cett)?;
                let rec = &mut result.layers[layer];
                rec.sum_threshold += t.threshold;
                rec.sum_cett += t.sum_cett;
                rec.n_tokens += t.n_tokens;
                rec.n_dropped_dense += t.n_dropped;
                rec.n_pairs_dense += t.n_pairs;
                rec.n_exact_zero += window.n_exact_zero[layer];
                thresholds.push(t.threshold);
            }
            let mut mask = ThresholdMask::from_norms(self.weight_norms.clone(), &thresholds)?;
            let sparse = perplexity(
                model,
                &window.tokens,
                &ppl_config,
                &mut ProbeSet::one(&mut mask),
                &mut |_, _| {},
            )?;
            self.n_sparse_passes += 1;
            for (layer, rec) in result.layers.iter_mut().enumerate() {
                rec.n_dropped += mask.n_dropped[layer];
                rec.n_pairs += mask.n_pairs[layer];
            }
            let ratio = (sparse.nats_per_token() - window.dense.nats_per_token()).exp();
            if !ratio.is_finite() {
                return Err(Error::NonFinite {
                    what: format!("the perplexity ratio of window {w} at CETT {cett}"),
                    value: ratio,
                });
            }
            result.sum_ppl_ratio += ratio;
            result.n_windows += 1;
            result.dense.nll_sum += window.dense.nll_sum;
            result.dense.n_predicted += window.dense.n_predicted;
            result.sparse.nll_sum += sparse.nll_sum;
            result.sparse.n_predicted += sparse.n_predicted;
            progress(w + 1, n);
        }
        tracing::info!(
            cett,
            ppl_ratio = result.ppl_ratio(),
            activation_ratio = result.mean_activation_ratio(),
            "evaluated"
        );
        Ok(result)
    }

    /// PPL-p%: the outer bisection on the shared CETT target `c` in `[0, 1]` until the
    /// bracket is narrower than `config.tol`, keeping `c` where the mean per-window PPL
    /// ratio is below `1 + p / 100`; the result is evaluated at the bracket's midpoint.
    /// `p` is a percentage in `(0, 100]`. `progress` gets (sparse passes done, planned).
    pub fn search(
        &mut self,
        model: &Model<B>,
        p: f64,
        progress: Progress<'_>,
    ) -> Result<PplSearch> {
        if !(p > 0.0 && p <= 100.0) {
            return Err(Error::InvalidP { value: p });
        }
        let tol = self.config.tol;
        let n_windows = self.windows.len();
        let planned = (bisection_steps(tol) + 1) * n_windows;
        let mut n_evaluated = 0;
        let mut last = None;
        let bisection = bisect(p, tol, &mut |c| {
            let done = n_evaluated * n_windows;
            n_evaluated += 1;
            let r = self.evaluate(model, c, &mut |w, _| progress(done + w, planned))?;
            let point = (r.ppl_ratio(), r.mean_activation_ratio());
            last = Some(r);
            Ok(point)
        })?;
        let result = last.ok_or_else(|| Error::InvalidConfig {
            what: "tol",
            value: tol.to_string(),
            reason: "the bisection evaluated nothing".into(),
        })?;
        let Bisection {
            cett,
            status,
            steps,
        } = bisection;
        Ok(PplSearch {
            p,
            tol,
            cett,
            status,
            steps,
            n_dense_passes: self.n_dense_passes(),
            n_sparse_passes: self.n_sparse_passes,
            result,
        })
    }
}

/// Steps of the outer bisection on `[0, 1]` to a bracket of `tol`.
pub(crate) fn bisection_steps(tol: f64) -> usize {
    (1.0 / tol).log2().ceil() as usize
}

/// What the outer bisection found.
#[derive(Debug)]
pub(crate) struct Bisection {
    /// The final bracket's midpoint (evaluated last).
    pub cett: f64,
    /// Whether the target was bracketed.
    pub status: SearchStatus,
    /// The steps before the final evaluation.
    pub steps: Vec<SearchStep>,
}

/// The outer bisection of PPL-p% on the CETT target in `[0, 1]`: `measure(c)` returns the
/// PPL ratio and the mean activation ratio at `c`; `c` is kept where the ratio is below
/// `1 + p / 100` until the bracket is narrower than `tol`, then its midpoint is measured
/// (the last call of `measure`).
pub(crate) fn bisect(
    p: f64,
    tol: f64,
    measure: &mut dyn FnMut(f64) -> Result<(f64, f64)>,
) -> Result<Bisection> {
    if !(p > 0.0 && p <= 100.0) {
        return Err(Error::InvalidP { value: p });
    }
    let target = 1.0 + p / 100.0;
    let (mut lo, mut hi) = (0.0f64, 1.0f64);
    let mut steps = Vec::new();
    while hi - lo > tol {
        let c = (lo + hi) / 2.0;
        let (ppl_ratio, mean_activation_ratio) = measure(c)?;
        steps.push(SearchStep {
            cett: c,
            ppl_ratio,
            mean_activation_ratio,
        });
        if ppl_ratio < target {
            lo = c;
        } else {
            hi = c;
        }
    }
    let cett = (lo + hi) / 2.0;
    let (ratio, _) = measure(cett)?;
    let status = if hi == 1.0 {
        SearchStatus::Unreachable {
            reason: format!(
                "even at CETT {cett:.4} (nearly every neuron contribution dropped up to the \
                 grid top) perplexity rises by only {:.3}%: the q99 grid cap limits the \
                 sparsity to about 99% per layer",
                (ratio - 1.0) * 100.0
            ),
        }
    } else if lo == 0.0 {
        SearchStatus::Unreachable {
            reason: format!(
                "even at CETT {cett:.2e} perplexity rises by {:.3}%, more than {p}%: the \
                 model has no neurons to drop at this cost",
                (ratio - 1.0) * 100.0
            ),
        }
    } else {
        SearchStatus::Reached
    };
    if let SearchStatus::Unreachable { reason } = &status {
        tracing::warn!("PPL-{p}% not reached: {reason}");
    }
    Ok(Bisection {
        cett,
        status,
        steps,
    })
}

/// One step of the outer bisection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchStep {
    /// The CETT target tried.
    pub cett: f64,
    /// Its mean per-window PPL ratio.
    pub ppl_ratio: f64,
    /// Its mean activation ratio over layers.
    pub mean_activation_ratio: f64,
}

/// Whether the bisection bracketed the target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum SearchStatus {
    /// The PPL ratio crosses `1 + p / 100` inside the final bracket.
    Reached,
    /// The target lies outside what CETT in `[0, 1]` reaches; the result is the closest
    /// end of the range.
    Unreachable {
        /// Why, with the closest PPL increase.
        reason: String,
    },
}

/// PPL-p% sparsity: the CETT target found and the sparsity there.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PplSearch {
    /// The allowed perplexity increase, in percent.
    pub p: f64,
    /// The bracket width the bisection stopped at.
    pub tol: f64,
    /// The CETT target found (the final bracket's midpoint).
    pub cett: f64,
    /// Whether the target was reached.
    pub status: SearchStatus,
    /// Every bisection step, in order.
    pub steps: Vec<SearchStep>,
    /// Dense forward passes of the measurement (one per window, shared by every target).
    pub n_dense_passes: usize,
    /// Sparse forward passes run by the measurement so far (every step and the final
    /// evaluation, one per window each).
    pub n_sparse_passes: usize,
    /// The sparsity at `cett`.
    pub result: SparsityResult,
}

/// PPL-p% sparsity of `model` on `tokens` for each `p` in `ps` (percent), sharing one dense
/// pass. `progress` gets (forward passes done, planned).
pub fn ppl_p<B: Backend>(
    model: &Model<B>,
    tokens: &[u32],
    ps: &[f64],
    config: &SparsityConfig,
    progress: Progress<'_>,
) -> Result<Vec<PplSearch>> {
    if let Some(&p) = ps.iter().find(|&&p| !(p > 0.0 && p <= 100.0)) {
        return Err(Error::InvalidP { value: p });
    }
    config.validate()?;
    let n_steps = bisection_steps(config.tol);
    let planned = config.n_windows * (1 + ps.len() * (n_steps + 1));
    let mut dense = DensePass::run(model, tokens, config, &mut |w, _| progress(w, planned))?;
    let mut out = Vec::with_capacity(ps.len());
    for (i, &p) in ps.iter().enumerate() {
        let done = config.n_windows * (1 + i * (n_steps + 1));
        out.push(dense.search(model, p, &mut |d, _| progress(done + d, planned))?);
    }
    Ok(out)
}

/// Sparsity of `model` on `tokens` at the fixed CETT target `cett`.
pub fn at_cett<B: Backend>(
    model: &Model<B>,
    tokens: &[u32],
    cett: f64,
    config: &SparsityConfig,
    progress: Progress<'_>,
) -> Result<SparsityResult> {
    if !(0.0..=1.0).contains(&cett) {
        return Err(Error::InvalidCett { value: cett });
    }
    let n = config.n_windows;
    let mut dense = DensePass::run(model, tokens, config, &mut |w, _| progress(w, 2 * n))?;
    dense.evaluate(model, cett, &mut |w, _| progress(n + w, 2 * n))
}

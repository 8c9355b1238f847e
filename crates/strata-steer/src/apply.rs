//! Applying a direction: the [`Steering`] probe adds `α·v` once at chosen blocks and
//! positions, or projects a direction out of the residual stream at every block.
//!
//! Operators on the hooked residual `h` at masked tokens `m_t ∈ {0, 1}`:
//! - add: `h ← h + m_t·α·v` (applied once per site, so the block's output moves by exactly
//!   `α·v`);
//! - ablate: `h ← h − m_t·(h·v̂)v̂`, at `hook_resid_pre`, `hook_resid_mid` and
//!   `hook_resid_post` of every block (as refusal-direction work does), so no block's input
//!   or output keeps a component along `v̂`;
//! - ablate then add: `h ← h − (h·v̂)v̂ + α·v` at the chosen blocks.
//!
//! The mask excludes padding and, with [`ApplyPositions::From`], tokens before a position;
//! positions are absolute (cache included), so KV-cached generation steers each new token.

use std::collections::BTreeMap;

use burn::tensor::{Tensor, TensorData, backend::Backend};
use serde::{Deserialize, Serialize};
use strata_core::ModelConfig;
use strata_core::probe::{HookContext, Probe, Site};

use crate::error::{Error, Result};
use crate::extract::SiteKind;

/// What a [`Steering`] probe does to the residual stream.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Operator {
    /// `h + α·v` at the chosen blocks.
    Add {
        /// The multiplier.
        alpha: f32,
    },
    /// `h − (h·v̂)v̂` at every residual site of every block.
    Ablate,
    /// `h − (h·v̂)v̂ + α·v` at the chosen blocks.
    AblateAdd {
        /// The multiplier.
        alpha: f32,
    },
}

/// Which tokens are steered (padding never is).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum ApplyPositions {
    /// Every token, prompt and generated.
    #[default]
    All,
    /// Tokens at absolute position `k` or later (e.g. only the generated ones).
    From(usize),
}

/// A probe that steers: adds or ablates directions at residual sites.
#[derive(Debug, Clone, PartialEq)]
pub struct Steering {
    /// The site kind the vectors are added at.
    pub site: SiteKind,
    /// Per block, the raw vector (`[d_model]`) added (scaled by `α`) or ablated (normalised).
    pub vectors: BTreeMap<usize, Vec<f32>>,
    /// What is done.
    pub operator: Operator,
    /// Which tokens are steered.
    pub positions: ApplyPositions,
    /// For [`Operator::Ablate`]: the unit direction ablated at every residual site.
    ablate_all: Option<Vec<f32>>,
}

impl Steering {
    /// Adds `alpha · vectors[l]` at `site` of every block `l` in `vectors`.
    ///
    /// Fails on a non-finite `alpha`, an empty set of vectors, or vectors of unequal width.
    pub fn add(site: SiteKind, vectors: BTreeMap<usize, Vec<f32>>, alpha: f32) -> Result<Self> {
        check_alpha(alpha)?;
        check_vectors(&vectors)?;
        Ok(Self {
            site,
            vectors,
            operator: Operator::Add { alpha },
            positions: ApplyPositions::All,
            ablate_all: None,
        })
    }

    /// Ablates `v̂ = direction/‖direction‖` at `hook_resid_pre`, `hook_resid_mid` and
    /// `hook_resid_post` of every block. Fails on a zero or non-finite direction.
    pub fn ablate(direction: &[f32]) -> Result<Self> {
        let unit = unit(direction, "ablated direction")?;
        Ok(Self {
            site: SiteKind::ResidPost,
            vectors: BTreeMap::new(),
            operator: Operator::Ablate,
            positions: ApplyPositions::All,
            ablate_all: Some(unit),
        })
    }

    /// Ablates `v̂_l` then adds `alpha · v_l` at `site` of every block `l` in `vectors`.
    pub fn ablate_add(
        site: SiteKind,
        vectors: BTreeMap<usize, Vec<f32>>,
        alpha: f32,
    ) -> Result<Self> {
        check_alpha(alpha)?;
        check_vectors(&vectors)?;
        for (l, v) in &vectors {
            unit(v, &format!("vector of block {l}"))?;
        }
        Ok(Self {
            site,
            vectors,
            operator: Operator::AblateAdd { alpha },
            positions: ApplyPositions::All,
            ablate_all: None,
        })
    }

    /// The same probe steering only the given tokens.
    pub fn with_positions(mut self, positions: ApplyPositions) -> Self {
        self.positions = positions;
        self
    }

    /// Checks the probe against a model: every block exists and every vector is `d_model`
    /// wide (the error names both widths and the model).
    pub fn check_model(&self, config: &ModelConfig, model: &str) -> Result<()> {
        let widths = self
            .vectors
            .iter()
            .map(|(l, v)| (format!("the vector of block {l}"), v.len()))
            .chain(
                self.ablate_all
                    .iter()
                    .map(|v| ("the ablated direction".to_string(), v.len())),
            );
        for (what, width) in widths {
            if width != config.d_model {
                return Err(Error::WidthMismatch {
                    what,
                    width,
                    model: model.to_string(),
                    d_model: config.d_model,
                });
            }
        }
        if let Some(l) = self.vectors.keys().find(|&&l| l >= config.n_layers) {
            return Err(Error::InvalidArgument {
                what: "layer".into(),
                reason: format!(
                    "{l} is out of range: {model} has {} blocks",
                    config.n_layers
                ),
            });
        }
        Ok(())
    }

    /// Row-major `[batch, n_pos]` mask of the steered tokens of a call, `None` when all are.
    fn mask(&self, ctx: &HookContext<impl Backend>) -> Option<Vec<f32>> {
        let from = match self.positions {
            ApplyPositions::All => 0,
            ApplyPositions::From(k) => k,
        };
        if from == 0 && ctx.padding_mask.is_none() {
            return None;
        }
        Some(
            (0..ctx.batch * ctx.n_pos)
                .map(|i| {
                    let real = ctx.is_real(i / ctx.n_pos, i % ctx.n_pos);
                    let pos = ctx.positions.get(i).copied().unwrap_or(0);
                    if real && pos >= from { 1.0 } else { 0.0 }
                })
                .collect(),
        )
    }
}

fn check_alpha(alpha: f32) -> Result<()> {
    if !alpha.is_finite() {
        return Err(Error::InvalidArgument {
            what: "alpha".into(),
            reason: format!("is {alpha}; it must be a finite number"),
        });
    }
    Ok(())
}

fn check_vectors(vectors: &BTreeMap<usize, Vec<f32>>) -> Result<()> {
    let Some(first) = vectors.values().next() else {
        return Err(Error::InvalidArgument {
            what: "vectors".into(),
            reason: "at least one block's vector is needed".into(),
        });
    };
    for (l, v) in vectors {
        if v.len() != first.len() {
            return Err(Error::InvalidArgument {
                what: "vectors".into(),
                reason: format!(
                    "block {l}'s vector is {} wide, the first one {}",
                    v.len(),
                    first.len()
                ),
            });
        }
        if let Some(x) = v.iter().find(|x| !x.is_finite()) {
            return Err(Error::InvalidArgument {
                what: "vectors".into(),
                reason: format!("block {l}'s vector holds {x}"),
            });
        }
    }
    Ok(())
}

fn unit(v: &[f32], what: &str) -> Result<Vec<f32>> {
    let norm = v.iter().map(|&x| x as f64 * x as f64).sum::<f64>().sqrt();
    if !(norm > 0.0 && norm.is_finite()) {
        return Err(Error::InvalidArgument {
            what: what.into(),
            reason: format!("has norm {norm}; ablation needs a non-zero finite direction"),
        });
    }
    Ok(v.iter().map(|&x| (x as f64 / norm) as f32).collect())
}

impl<B: Backend> Probe<B> for Steering {
    fn wants(&self, site: Site) -> bool {
        match SiteKind::of(site) {
            Some((kind, layer)) => {
                self.ablate_all.is_some()
                    || (kind == self.site && self.vectors.contains_key(&layer))
            }
            None => false,
        }
    }

    fn hook(
        &mut self,
        site: Site,
        activation: Tensor<B, 3>,
        ctx: &HookContext<B>,
    ) -> strata_core::Result<Tensor<B, 3>> {
        let [b, p, d] = activation.dims();
        let device = activation.device();
        let probe_error = |reason: String| strata_core::Error::Probe {
            site: site.to_string(),
            reason,
        };
        let mask = self
            .mask(ctx)
            .map(|m| Tensor::<B, 3>::from_data(TensorData::new(m, [b, p, 1]), &device));
        let masked = |x: Tensor<B, 3>| match &mask {
            Some(m) => x * m.clone(),
            None => x,
        };
        let to_device = |v: &[f32]| -> strata_core::Result<Tensor<B, 3>> {
            if v.len() != d {
                return Err(probe_error(format!(
                    "a steering vector {} wide for a residual stream {d} wide",
                    v.len()
                )));
            }
            Ok(Tensor::<B, 3>::from_data(
                TensorData::new(v.to_vec(), [1, 1, d]),
                &device,
            ))
        };
        let ablate = |h: Tensor<B, 3>, u: Tensor<B, 3>| {
            let proj = (h.clone() * u.clone()).sum_dim(2);
            h - masked(proj * u)
        };
        match self.operator {
            Operator::Ablate => {
                let u = to_device(self.ablate_all.as_deref().unwrap_or(&[]))?;
                Ok(ablate(activation, u))
            }
            Operator::Add { alpha } => {
                let Some((_, layer)) = SiteKind::of(site) else {
                    return Ok(activation);
                };
                let v = to_device(&self.vectors[&layer])?;
                Ok(activation + masked(v.mul_scalar(alpha).repeat_dim(0, b).repeat_dim(1, p)))
            }
            Operator::AblateAdd { alpha } => {
                let Some((_, layer)) = SiteKind::of(site) else {
                    return Ok(activation);
                };
                let raw = &self.vectors[&layer];
                let u = to_device(&unit(raw, "vector").map_err(|e| probe_error(e.to_string()))?)?;
                let v = to_device(raw)?;
                let ablated = ablate(activation, u);
                Ok(ablated + masked(v.mul_scalar(alpha).repeat_dim(0, b).repeat_dim(1, p)))
            }
        }
    }
}

//! Reading the activations of contrastive pairs: every chosen layer in one forward pass per
//! batch, at one read position per sequence.

use std::collections::BTreeMap;

use burn::tensor::{Tensor, TensorData, backend::Backend};
use serde::{Deserialize, Serialize};
use strata_core::probe::{HookContext, Probe, Site};
use strata_core::weights::HostTensor;
use strata_core::{Model, PadSide, ProbeSet, TokenBatch};

use crate::error::{Error, Result};
use crate::position::ReadPosition;

/// Which residual-stream site of a block a direction lives at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum SiteKind {
    /// `blocks.{l}.hook_resid_pre`: the block's input.
    ResidPre,
    /// `blocks.{l}.hook_resid_mid`: after attention (sequential-residual families only).
    ResidMid,
    /// `blocks.{l}.hook_resid_post`: the block's output (the default).
    ResidPost,
}

impl SiteKind {
    /// The site of this kind at block `layer`.
    pub fn at(self, layer: usize) -> Site {
        match self {
            SiteKind::ResidPre => Site::ResidPre { layer },
            SiteKind::ResidMid => Site::ResidMid { layer },
            SiteKind::ResidPost => Site::ResidPost { layer },
        }
    }

    /// The kind and block of a residual site; `None` for any other site.
    pub fn of(site: Site) -> Option<(SiteKind, usize)> {
        match site {
            Site::ResidPre { layer } => Some((SiteKind::ResidPre, layer)),
            Site::ResidMid { layer } => Some((SiteKind::ResidMid, layer)),
            Site::ResidPost { layer } => Some((SiteKind::ResidPost, layer)),
            _ => None,
        }
    }
}

/// What to read, where.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExtractConfig {
    /// The residual site (default `hook_resid_post`).
    pub site: SiteKind,
    /// Blocks to read; `None` reads every block.
    pub layers: Option<Vec<usize>>,
    /// Which tokens of each sequence are read (default the last).
    pub position: ReadPosition,
    /// Sequences per forward pass (right-padded to the longest).
    pub batch_size: usize,
}

impl Default for ExtractConfig {
    fn default() -> Self {
        Self {
            site: SiteKind::ResidPost,
            layers: None,
            position: ReadPosition::Last,
            batch_size: 16,
        }
    }
}

/// The activations of a contrastive set: per layer, one row of `d_model` values per pair and
/// side, read at the configured position.
#[derive(Debug, Clone, PartialEq)]
pub struct PairActivations {
    /// The site kind read.
    pub site: SiteKind,
    /// The blocks read, in order; `positive[i]` and `negative[i]` belong to `layers[i]`.
    pub layers: Vec<usize>,
    /// Residual width.
    pub d_model: usize,
    /// Number of pairs.
    pub n_pairs: usize,
    /// Per layer, `[n_pairs, d_model]` row-major activations of the positive side.
    pub positive: Vec<Vec<f32>>,
    /// Per layer, `[n_pairs, d_model]` row-major activations of the negative side.
    pub negative: Vec<Vec<f32>>,
}

impl PairActivations {
    /// Wraps activations given per layer as `[n_pairs, d_model]` rows; fails on an empty or
    /// unpaired set or rows of the wrong width.
    pub fn new(
        site: SiteKind,
        layers: Vec<usize>,
        d_model: usize,
        positive: Vec<Vec<f32>>,
        negative: Vec<Vec<f32>>,
    ) -> Result<Self> {
        if layers.len() != positive.len() || layers.len() != negative.len() {
            return Err(Error::InvalidArgument {
                what: "activations".into(),
                reason: format!(
                    "{} layers but {} positive and {} negative blocks",
                    layers.len(),
                    positive.len(),
                    negative.len()
                ),
            });
        }
        if d_model == 0 {
            return Err(Error::InvalidArgument {
                what: "d_model".into(),
                reason: "must be at least 1".into(),
            });
        }
        let mut n_pairs = None;
        for ((layer, pos), neg) in layers.iter().zip(&positive).zip(&negative) {
            if !pos.len().is_multiple_of(d_model) || !neg.len().is_multiple_of(d_model) {
                return Err(Error::WidthMismatch {
                    what: format!("activations of layer {layer}"),
                    width: pos.len(),
                    model: "of these activations".into(),
                    d_model,
                });
            }
            let (n_pos, n_neg) = (pos.len() / d_model, neg.len() / d_model);
            if n_pos != n_neg || n_pos == 0 {
                return Err(Error::Unpaired {
                    what: format!("activations of layer {layer}"),
                    n_positive: n_pos,
                    n_negative: n_neg,
                    reason: "both sides need the same number of examples, at least one".into(),
                });
            }
            n_pairs = Some(n_pos);
        }
        Ok(Self {
            site,
            layers,
            d_model,
            n_pairs: n_pairs.unwrap_or(0),
            positive,
            negative,
        })
    }
}

/// Reads the activations of paired token sequences at every chosen layer, in one forward pass
/// per batch. `progress(done, total)` is called after each batch (counting sequences).
///
/// Fails on an empty or unpaired set, an empty sequence, a layer the model does not have,
/// and a read position outside a sequence.
pub fn extract_activations<B: Backend>(
    model: &Model<B>,
    positive: &[Vec<u32>],
    negative: &[Vec<u32>],
    config: &ExtractConfig,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<PairActivations> {
    if positive.is_empty() || positive.len() != negative.len() {
        return Err(Error::Unpaired {
            what: "contrastive set".into(),
            n_positive: positive.len(),
            n_negative: negative.len(),
            reason: "both sides need the same number of sequences, at least one".into(),
        });
    }
    if config.batch_size == 0 {
        return Err(Error::InvalidArgument {
            what: "batch_size".into(),
            reason: "must be at least 1".into(),
        });
    }
    let n_layers = model.config().n_layers;
    let d_model = model.config().d_model;
    let layers = match &config.layers {
        Some(l) => l.clone(),
        None => (0..n_layers).collect(),
    };
    if layers.is_empty() {
        return Err(Error::InvalidArgument {
            what: "layers".into(),
            reason: "at least one layer is needed".into(),
        });
    }
    if let Some(bad) = layers.iter().find(|&&l| l >= n_layers) {
        return Err(Error::InvalidArgument {
            what: "layers".into(),
            reason: format!("{bad} is out of range: the model has {n_layers} blocks"),
        });
    }
    let total = 2 * positive.len();
    let mut done = 0;
    let mut sides = Vec::with_capacity(2);
    for sequences in [positive, negative] {
        let mut rows: Vec<Vec<f32>> = vec![Vec::new(); layers.len()];
        for chunk in sequences.chunks(config.batch_size) {
            let read = read_batch(model, chunk, &layers, config)?;
            for (acc, r) in rows.iter_mut().zip(read) {
                acc.extend(r);
            }
            done += chunk.len();
            progress(done, total);
        }
        sides.push(rows);
    }
    let negative_rows = sides.pop().expect("two sides were read");
    let positive_rows = sides.pop().expect("two sides were read");
    PairActivations::new(config.site, layers, d_model, positive_rows, negative_rows)
}

/// One right-padded batch: per layer, `[n_seq, d_model]` rows.
fn read_batch<B: Backend>(
    model: &Model<B>,
    sequences: &[Vec<u32>],
    layers: &[usize],
    config: &ExtractConfig,
) -> Result<Vec<Vec<f32>>> {
    let pad = model.config().eos_token_id.unwrap_or(0);
    let batch = TokenBatch::padded(sequences, pad, PadSide::Right)?;
    let mut weights = vec![0.0f32; batch.batch * batch.pos];
    for (r, seq) in sequences.iter().enumerate() {
        let read = config.position.resolve(seq.len())?;
        let w = 1.0 / read.len() as f32;
        for p in read {
            weights[r * batch.pos + p] += w;
        }
    }
    let mut reader = Reader {
        sites: layers
            .iter()
            .enumerate()
            .map(|(i, &l)| (config.site.at(l), i))
            .collect(),
        weights: TensorData::new(weights, [batch.batch, batch.pos, 1]),
        rows: vec![None; layers.len()],
    };
    model.forward_with(&batch, None, &mut ProbeSet::one(&mut reader))?;
    reader
        .rows
        .into_iter()
        .zip(layers)
        .map(|(r, l)| {
            r.ok_or_else(|| Error::InvalidArgument {
                what: "site".into(),
                reason: format!(
                    "{} never ran in this model (parallel-residual families have no \
                     hook_resid_mid)",
                    config.site.at(*l)
                ),
            })
        })
        .collect()
}

/// Weighted sums over positions of the chosen sites, copied to the host.
struct Reader {
    sites: BTreeMap<Site, usize>,
    /// `[batch, pos, 1]`: the weight of each token in the read (0 for unread ones).
    weights: TensorData,
    rows: Vec<Option<Vec<f32>>>,
}

impl<B: Backend> Probe<B> for Reader {
    fn wants(&self, site: Site) -> bool {
        self.sites.contains_key(&site)
    }

    fn hook(
        &mut self,
        site: Site,
        activation: Tensor<B, 3>,
        _ctx: &HookContext<B>,
    ) -> strata_core::Result<Tensor<B, 3>> {
        let [b, _, d] = activation.dims();
        let weights = Tensor::<B, 3>::from_data(self.weights.clone(), &activation.device());
        let read: Tensor<B, 2> = (activation.clone() * weights).sum_dim(1).reshape([b, d]);
        let slot = self.sites[&site];
        self.rows[slot] = Some(HostTensor::from_tensor(read).data);
        Ok(activation)
    }
}

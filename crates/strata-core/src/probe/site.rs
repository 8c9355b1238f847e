//! [`Site`]: the only place a hook name is spelled.
//!
//! Names follow TransformerLens (`hook_embed`, `blocks.{l}.hook_resid_pre`,
//! `blocks.{l}.mlp.hook_post`, ...). `logits` is strata's one name beyond TransformerLens's:
//! the unembedding output, `[batch, pos, d_vocab]`.

use std::fmt;
use std::str::FromStr;

use crate::config::ModelConfig;
use crate::error::{Error, Result};

/// A hook site in the forward pass. Shapes are `[batch, pos, width]`, except the attention
/// pattern (`[batch, n_heads, query_pos, key_pos]`, see [`Site::rank`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Site {
    /// `hook_embed`: token embeddings, `[batch, pos, d_model]`.
    Embed,
    /// `hook_pos_embed`: learned position embeddings (GPT-2, BERT), `[batch, pos, d_model]`.
    PosEmbed,
    /// `blocks.{l}.hook_resid_pre`: the residual stream entering block `layer`.
    ResidPre {
        /// Block index.
        layer: usize,
    },
    /// `blocks.{l}.ln1.hook_normalized`: the output of the norm before attention (scale and
    /// shift applied), `[batch, pos, d_model]`. Pre-norm decoders only.
    Ln1Normalized {
        /// Block index.
        layer: usize,
    },
    /// `blocks.{l}.attn.hook_pattern`: attention weights after the softmax,
    /// `[batch, n_heads, query_pos, key_pos]` (keys include cached positions).
    AttnPattern {
        /// Block index.
        layer: usize,
    },
    /// `blocks.{l}.attn.hook_z`: the heads' weighted values before the output projection,
    /// `[batch, pos, n_heads * d_head]` (TransformerLens's `[batch, pos, n_heads, d_head]`
    /// with the head axes flattened, head-major).
    AttnZ {
        /// Block index.
        layer: usize,
    },
    /// `blocks.{l}.hook_attn_out`: the attention output (after the output projection).
    AttnOut {
        /// Block index.
        layer: usize,
    },
    /// `blocks.{l}.hook_resid_mid`: the residual stream between attention and MLP
    /// (`resid_pre + attn_out`). Serial-residual decoders only.
    ResidMid {
        /// Block index.
        layer: usize,
    },
    /// `blocks.{l}.ln2.hook_normalized`: the output of the norm before the MLP.
    /// Pre-norm decoders only.
    Ln2Normalized {
        /// Block index.
        layer: usize,
    },
    /// `blocks.{l}.mlp.hook_pre`: MLP pre-activation (the gate projection in gated MLPs),
    /// `[batch, pos, d_mlp]`.
    MlpPre {
        /// Block index.
        layer: usize,
    },
    /// `blocks.{l}.mlp.hook_post`: neuron activations, `act(pre)` or `act(gate) * up`,
    /// `[batch, pos, d_mlp]`: the input of the down projection.
    MlpPost {
        /// Block index.
        layer: usize,
    },
    /// `blocks.{l}.hook_mlp_out`: the MLP output (after the down projection).
    MlpOut {
        /// Block index.
        layer: usize,
    },
    /// `blocks.{l}.hook_resid_post`: the residual stream leaving block `layer`.
    ResidPost {
        /// Block index.
        layer: usize,
    },
    /// `ln_final.hook_normalized`: the final norm's output, `[batch, pos, d_model]`.
    LnFinal,
    /// `logits`: the unembedding output, `[batch, pos, d_vocab]`.
    Logits,
}

/// Builds the site of one block from its layer index.
type BlockSite = fn(usize) -> Site;

/// Hook names within a block, in forward order.
const BLOCK_HOOKS: &[(&str, BlockSite)] = &[
    ("hook_resid_pre", |layer| Site::ResidPre { layer }),
    ("ln1.hook_normalized", |layer| Site::Ln1Normalized { layer }),
    ("attn.hook_pattern", |layer| Site::AttnPattern { layer }),
    ("attn.hook_z", |layer| Site::AttnZ { layer }),
    ("hook_attn_out", |layer| Site::AttnOut { layer }),
    ("hook_resid_mid", |layer| Site::ResidMid { layer }),
    ("ln2.hook_normalized", |layer| Site::Ln2Normalized { layer }),
    ("mlp.hook_pre", |layer| Site::MlpPre { layer }),
    ("mlp.hook_post", |layer| Site::MlpPost { layer }),
    ("hook_mlp_out", |layer| Site::MlpOut { layer }),
    ("hook_resid_post", |layer| Site::ResidPost { layer }),
];

impl Site {
    /// The block this site belongs to, if any.
    pub fn layer(&self) -> Option<usize> {
        match *self {
            Site::ResidPre { layer }
            | Site::Ln1Normalized { layer }
            | Site::AttnPattern { layer }
            | Site::AttnZ { layer }
            | Site::AttnOut { layer }
            | Site::ResidMid { layer }
            | Site::Ln2Normalized { layer }
            | Site::MlpPre { layer }
            | Site::MlpPost { layer }
            | Site::MlpOut { layer }
            | Site::ResidPost { layer } => Some(layer),
            _ => None,
        }
    }

    /// The hook name within a block (`hook_resid_post`), or the whole name outside blocks.
    fn block_hook(&self) -> &'static str {
        match self {
            Site::Embed => "hook_embed",
            Site::PosEmbed => "hook_pos_embed",
            Site::ResidPre { .. } => "hook_resid_pre",
            Site::Ln1Normalized { .. } => "ln1.hook_normalized",
            Site::AttnPattern { .. } => "attn.hook_pattern",
            Site::AttnZ { .. } => "attn.hook_z",
            Site::AttnOut { .. } => "hook_attn_out",
            Site::ResidMid { .. } => "hook_resid_mid",
            Site::Ln2Normalized { .. } => "ln2.hook_normalized",
            Site::MlpPre { .. } => "mlp.hook_pre",
            Site::MlpPost { .. } => "mlp.hook_post",
            Site::MlpOut { .. } => "hook_mlp_out",
            Site::ResidPost { .. } => "hook_resid_post",
            Site::LnFinal => "ln_final.hook_normalized",
            Site::Logits => "logits",
        }
    }

    /// Every site of a model, in forward order.
    pub fn all(config: &ModelConfig) -> Vec<Site> {
        let mut sites = vec![Site::Embed];
        if config.has_learned_positions() {
            sites.push(Site::PosEmbed);
        }
        for layer in 0..config.n_layers {
            sites.extend(
                BLOCK_HOOKS
                    .iter()
                    .map(|(_, make)| make(layer))
                    .filter(|site| site.exists_in(config)),
            );
        }
        if config.family.is_decoder() {
            sites.push(Site::LnFinal);
            sites.push(Site::Logits);
        }
        sites
    }

    /// Whether a block site exists in this model's forward pass: `hook_resid_mid` needs a
    /// serial residual, the `ln1`/`ln2` sites a pre-norm decoder (BERT is post-norm).
    fn exists_in(&self, config: &ModelConfig) -> bool {
        match self {
            Site::ResidMid { .. } => config.family.is_decoder() && !config.parallel_residual,
            Site::Ln1Normalized { .. } | Site::Ln2Normalized { .. } => config.family.is_decoder(),
            _ => true,
        }
    }

    /// The rank of the activation at this site: 4 for the attention pattern
    /// (`[batch, n_heads, query_pos, key_pos]`, seen through [`crate::Probe::hook_pattern`]),
    /// 3 everywhere else (`[batch, pos, width]`, seen through [`crate::Probe::hook`]).
    pub fn rank(&self) -> usize {
        match self {
            Site::AttnPattern { .. } => 4,
            _ => 3,
        }
    }

    /// The output width at this site: the last axis, except for the attention pattern, where
    /// it is the number of heads (axis 1).
    pub fn width(&self, config: &ModelConfig) -> usize {
        match self {
            Site::AttnZ { .. } => config.n_heads * config.d_head,
            Site::AttnPattern { .. } => config.n_heads,
            Site::MlpPre { .. } | Site::MlpPost { .. } => config.d_mlp,
            Site::Logits => config.vocab_size,
            _ => config.d_model,
        }
    }

    /// Parses a comma-free site pattern against a model: an exact name, or `blocks.*.X`
    /// for every layer. Errors list the valid names.
    pub fn expand(pattern: &str, config: &ModelConfig) -> Result<Vec<Site>> {
        let valid = Site::all(config);
        let unknown = || Error::UnknownSite {
            name: pattern.to_string(),
            valid: format!(
                "{} (and `blocks.*.<hook>` for every layer)",
                valid
                    .iter()
                    .filter(|s| s.layer().is_none_or(|l| l == 0))
                    .map(|s| s.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        if let Some(hook) = pattern.strip_prefix("blocks.*.") {
            let (_, make) = BLOCK_HOOKS
                .iter()
                .find(|(name, _)| *name == hook)
                .ok_or_else(unknown)?;
            let sites: Vec<Site> = (0..config.n_layers)
                .map(make)
                .filter(|site| site.exists_in(config))
                .collect();
            if sites.is_empty() {
                return Err(unknown());
            }
            return Ok(sites);
        }
        let site: Site = pattern.parse().map_err(|_| unknown())?;
        if valid.contains(&site) {
            Ok(vec![site])
        } else {
            Err(unknown())
        }
    }
}

impl fmt::Display for Site {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.layer() {
            Some(layer) => write!(f, "blocks.{layer}.{}", self.block_hook()),
            None => f.write_str(self.block_hook()),
        }
    }
}

impl FromStr for Site {
    type Err = Error;

    fn from_str(name: &str) -> Result<Self> {
        let unknown = || Error::UnknownSite {
            name: name.to_string(),
            valid: format!(
                "hook_embed, hook_pos_embed, {}, ln_final.hook_normalized, logits",
                BLOCK_HOOKS
                    .iter()
                    .map(|(hook, _)| format!("blocks.{{l}}.{hook}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        for site in [Site::Embed, Site::PosEmbed, Site::LnFinal, Site::Logits] {
            if name == site.block_hook() {
                return Ok(site);
            }
        }
        let rest = name.strip_prefix("blocks.").ok_or_else(unknown)?;
        let (layer, hook) = rest.split_once('.').ok_or_else(unknown)?;
        let layer: usize = layer.parse().map_err(|_| unknown())?;
        BLOCK_HOOKS
            .iter()
            .find(|(h, _)| *h == hook)
            .map(|(_, make)| make(layer))
            .ok_or_else(unknown)
    }
}

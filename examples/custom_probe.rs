//! A probe of one's own: the mean L2 norm of the residual stream leaving each block, reduced
//! on the device, with a result that merges across shards; then the same probe beside an
//! intervention in one pass. The library chapter of the book (`book/src/library.md`) shows
//! this file.
//!
//! ```sh
//! cargo run --example custom_probe          # from the repository root
//! ```

use burn::backend::Flex;
use burn::tensor::{ElementConversion, Tensor, backend::Backend};
use strata::core::probe::{FnProbe, HookContext, Merge, Probe, ProbeSet, Site};
use strata::core::{Model, PadSide, TokenBatch};

// ANCHOR: probe
/// Mean L2 norm of `blocks.{l}.hook_resid_post` over the real tokens seen, per layer. Plain
/// data: it holds sums and counts, never a tensor, so it is its own result.
#[derive(Debug, Clone, PartialEq)]
struct ResidNorms {
    /// Per layer, the sum of the token norms.
    sum_norm: Vec<f64>,
    /// Per layer, the real (unpadded) tokens measured.
    n_tokens: Vec<u64>,
}

impl ResidNorms {
    fn new(n_layers: usize) -> Self {
        Self {
            sum_norm: vec![0.0; n_layers],
            n_tokens: vec![0; n_layers],
        }
    }

    /// Mean norm of layer `layer`'s residual stream.
    fn mean(&self, layer: usize) -> f64 {
        self.sum_norm[layer] / self.n_tokens[layer].max(1) as f64
    }
}

impl<B: Backend> Probe<B> for ResidNorms {
    fn wants(&self, site: Site) -> bool {
        matches!(site, Site::ResidPost { layer } if layer < self.sum_norm.len())
    }

    fn hook(
        &mut self,
        site: Site,
        activation: Tensor<B, 3>,
        ctx: &HookContext<B>,
    ) -> strata::core::Result<Tensor<B, 3>> {
        let Site::ResidPost { layer } = site else {
            return Ok(activation);
        };
        let [batch, n_pos, _] = activation.dims();
        // [batch, pos, d_model] -> [batch, pos]: one norm per token, on the device.
        let norms: Tensor<B, 2> = (activation.clone() * activation.clone())
            .sum_dim(2)
            .sqrt()
            .reshape([batch, n_pos]);
        // Padding slots count for nothing: weight each token by the attention mask.
        let (norms, n_real) = match (&ctx.attention_mask, &ctx.padding_mask) {
            (Some(weights), Some(mask)) => (
                norms * weights.clone(),
                mask.iter().filter(|&&real| real).count(),
            ),
            _ => (norms, batch * n_pos),
        };
        // One scalar comes back to the host per layer and call.
        self.sum_norm[layer] += norms.sum().into_scalar().elem::<f64>();
        self.n_tokens[layer] += n_real as u64;
        // Observe only: the model continues with the activation unchanged.
        Ok(activation)
    }
}

impl Merge for ResidNorms {
    /// Sums and counts add, so merged shards equal one run over their concatenation.
    fn merge(mut self, other: Self) -> Self {
        for (a, b) in self.sum_norm.iter_mut().zip(other.sum_norm) {
            *a += b;
        }
        for (a, b) in self.n_tokens.iter_mut().zip(other.n_tokens) {
            *a += b;
        }
        self
    }
}
// ANCHOR_END: probe

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // ANCHOR: shards
    let model = Model::<Flex>::load("datasets/models/tiny-default".as_ref(), &Default::default())?;
    let n_layers = model.config().n_layers;
    let tokenizer = model.tokenizer()?;
    let a = tokenizer.encode("In the beginning God created the heaven and the earth.")?;
    let b = tokenizer.encode("And God said, Let there be light: and there was light.")?;
    let (batch_a, batch_b) = (TokenBatch::single(&a)?, TokenBatch::single(&b)?);

    // Two shards, one forward pass each, merged...
    let mut first = ResidNorms::new(n_layers);
    let mut second = ResidNorms::new(n_layers);
    model.forward_with(&batch_a, None, &mut ProbeSet::one(&mut first))?;
    model.forward_with(&batch_b, None, &mut ProbeSet::one(&mut second))?;
    let merged = first.merge(second);

    // ... against both sequences in one right-padded batch.
    let mut together = ResidNorms::new(n_layers);
    let padded = TokenBatch::padded(&[a, b], 0, PadSide::Right)?;
    model.forward_with(&padded, None, &mut ProbeSet::one(&mut together))?;
    assert_eq!(merged.n_tokens, together.n_tokens);
    for layer in 0..n_layers {
        println!(
            "layer {layer}: mean |resid_post| {:.4} (two shards merged), {:.4} (one padded batch), {} tokens",
            merged.mean(layer),
            together.mean(layer),
            merged.n_tokens[layer],
        );
    }
    // ANCHOR_END: shards

    // ANCHOR: compose
    // The same probe behind an intervention: zero block 1's attention output, and watch the
    // residual stream from there on.
    let mut ablate = FnProbe::<Flex, _>::new(
        |site| site == Site::AttnOut { layer: 1 },
        |_site, x, _ctx| Ok(x.zeros_like()),
    );
    let mut ablated = ResidNorms::new(n_layers);
    model.forward_with(
        &batch_a,
        None,
        &mut ProbeSet::one(&mut ablate).with(&mut ablated),
    )?;
    let mut plain = ResidNorms::new(n_layers);
    model.forward_with(&batch_a, None, &mut ProbeSet::one(&mut plain))?;
    for layer in 0..n_layers {
        println!(
            "layer {layer}: mean |resid_post| {:.4} plain, {:.4} with blocks.1.hook_attn_out zeroed",
            plain.mean(layer),
            ablated.mean(layer),
        );
    }
    // ANCHOR_END: compose
    Ok(())
}

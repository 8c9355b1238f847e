//! Random initialisation of a [`Decoder`] for training from scratch.
//!
//! The scheme is the one GPT-2, GPT-NeoX and Llama reimplementations share: every linear
//! weight and embedding is drawn from `N(0, 0.02^2)`, the two projections that write into
//! the residual stream (`attn.o` and `mlp.down`) use `0.02 / sqrt(2 n_layers)` so the
//! residual's variance does not grow with depth (GPT-2 paper, section 2.3), biases are 0,
//! and norms start at weight 1, bias 0.
//!
//! The numbers come from a seeded generator on the host (`rand_xoshiro`'s SplitMix64, whose
//! stream is fixed by its definition, and Box-Muller), so the same `(config, seed)` gives
//! bit-identical weights on every backend, device and platform. Box-Muller rather than
//! `rand_distr`'s ziggurat keeps the weights of the shipped tiny models reproducible from
//! their recorded seed.

use burn::module::Param;
use burn::nn::{Embedding, Linear};
use burn::tensor::{Tensor, TensorData, backend::Backend};

use super::attention::Attention;
use super::decoder::{Decoder, DecoderBlock};
use super::mlp::Mlp;
use super::norm::NormLayer;
use crate::config::{ModelConfig, Norm, Positions};
use crate::error::{Error, Result};
use rand::{RngCore, SeedableRng};
use rand_xoshiro::SplitMix64;

/// Standard deviation of every linear weight and embedding (HF `initializer_range`).
pub const INIT_STD: f64 = 0.02;

/// Builds a randomly initialised decoder for `cfg` on `device`.
///
/// Fails for encoder families and for configs whose shapes do not fit together (query
/// heads not a multiple of key/value heads, a rotary width larger than the head).
pub fn init_decoder<B: Backend>(
    cfg: &ModelConfig,
    device: &B::Device,
    seed: u64,
) -> Result<Decoder<B>> {
    check_config(cfg)?;
    let mut init = Init::<B> {
        rng: Normals::new(seed),
        device,
    };
    let (d, d_mlp, dh) = (cfg.d_model, cfg.d_mlp, cfg.d_head);
    let (q_out, kv_out) = (cfg.n_heads * dh, cfg.n_kv_heads * dh);
    let out_std = INIT_STD / (2.0 * cfg.n_layers as f64).sqrt();
    let embed = init.embedding(cfg.vocab_size, d);
    let pos_embed = cfg
        .has_learned_positions()
        .then(|| init.embedding(cfg.n_ctx, d));
    let mut blocks = Vec::with_capacity(cfg.n_layers);
    for _ in 0..cfg.n_layers {
        let ln1 = init.norm(cfg);
        let attn = Attention {
            q: init.linear(d, q_out, cfg.qkv_bias, INIT_STD),
            k: init.linear(d, kv_out, cfg.qkv_bias, INIT_STD),
            v: init.linear(d, kv_out, cfg.qkv_bias, INIT_STD),
            o: init.linear(q_out, d, cfg.attn_out_bias, out_std),
            n_heads: cfg.n_heads,
            n_kv_heads: cfg.n_kv_heads,
            d_head: dh,
        };
        let ln2 = init.norm(cfg);
        let up_or_gate = init.linear(d, d_mlp, cfg.mlp_bias, INIT_STD);
        let up = cfg
            .gated_mlp
            .then(|| init.linear(d, d_mlp, cfg.mlp_bias, INIT_STD));
        let down = init.linear(d_mlp, d, cfg.mlp_bias, out_std);
        blocks.push(DecoderBlock {
            ln1,
            attn,
            ln2,
            mlp: Mlp {
                up_or_gate,
                up,
                down,
                activation: cfg.activation,
            },
            parallel_residual: cfg.parallel_residual,
        });
    }
    let ln_final = init.norm(cfg);
    let unembed = (!cfg.tied_embeddings).then(|| init.linear(d, cfg.vocab_size, false, INIT_STD));
    Ok(Decoder {
        embed,
        pos_embed,
        blocks,
        ln_final,
        unembed,
        config: cfg.clone(),
    })
}

/// Checks that the shapes of `cfg` fit together, naming the field at fault.
pub fn check_config(cfg: &ModelConfig) -> Result<()> {
    let bad = |what: &str, reason: String| {
        Err(Error::InvalidArgument {
            what: format!("model config `{what}`"),
            reason,
        })
    };
    if !cfg.family.is_decoder() {
        return bad(
            "family",
            format!("`{}` is not a causal decoder", cfg.model_type),
        );
    }
    for (name, value) in [
        ("vocab_size", cfg.vocab_size),
        ("d_model", cfg.d_model),
        ("n_layers", cfg.n_layers),
        ("n_heads", cfg.n_heads),
        ("n_kv_heads", cfg.n_kv_heads),
        ("d_head", cfg.d_head),
        ("d_mlp", cfg.d_mlp),
        ("n_ctx", cfg.n_ctx),
    ] {
        if value == 0 {
            return bad(name, "must be positive".into());
        }
    }
    if !cfg.n_heads.is_multiple_of(cfg.n_kv_heads) {
        return bad(
            "n_kv_heads",
            format!(
                "{} key/value heads do not divide {} query heads",
                cfg.n_kv_heads, cfg.n_heads
            ),
        );
    }
    if let Positions::Rotary { rotary_dim, .. } = cfg.positions
        && (rotary_dim > cfg.d_head || !rotary_dim.is_multiple_of(2))
    {
        return bad(
            "rotary_dim",
            format!(
                "{rotary_dim} must be even and at most d_head {}",
                cfg.d_head
            ),
        );
    }
    Ok(())
}

/// Draws parameters in a fixed order from one generator.
struct Init<'a, B: Backend> {
    rng: Normals,
    device: &'a B::Device,
}

impl<B: Backend> Init<'_, B> {
    fn normal<const D: usize>(&mut self, shape: [usize; D], std: f64) -> Tensor<B, D> {
        let n = shape.iter().product();
        let values: Vec<f32> = (0..n)
            .map(|_| (self.rng.standard_normal() * std) as f32)
            .collect();
        Tensor::from_data(TensorData::new(values, shape), self.device)
    }

    fn constant(&self, len: usize, value: f32) -> Param<Tensor<B, 1>> {
        Param::from_tensor(Tensor::from_data(
            TensorData::new(vec![value; len], [len]),
            self.device,
        ))
    }

    /// A linear map in burn's `[d_in, d_out]` layout.
    fn linear(&mut self, d_in: usize, d_out: usize, bias: bool, std: f64) -> Linear<B> {
        Linear {
            weight: Param::from_tensor(self.normal([d_in, d_out], std)),
            bias: bias.then(|| self.constant(d_out, 0.0)),
        }
    }

    fn embedding(&mut self, n: usize, d: usize) -> Embedding<B> {
        Embedding {
            weight: Param::from_tensor(self.normal([n, d], INIT_STD)),
        }
    }

    fn norm(&self, cfg: &ModelConfig) -> NormLayer<B> {
        let rms = matches!(cfg.norm, Norm::RmsNorm { .. });
        NormLayer {
            weight: self.constant(cfg.d_model, 1.0),
            bias: (!rms).then(|| self.constant(cfg.d_model, 0.0)),
            eps: cfg.norm_eps(),
            rms,
        }
    }
}

/// Standard normal draws from SplitMix64 (Steele, Lea and Flood 2014).
#[derive(Debug, Clone)]
struct Normals {
    rng: SplitMix64,
    spare: Option<f64>,
}

impl Normals {
    fn new(seed: u64) -> Self {
        Self {
            rng: SplitMix64::seed_from_u64(seed),
            spare: None,
        }
    }

    /// Uniform in (0, 1]: never 0, so its logarithm is finite.
    fn uniform(&mut self) -> f64 {
        ((self.rng.next_u64() >> 11) + 1) as f64 / (1u64 << 53) as f64
    }

    /// A standard normal draw (Box-Muller, both values used).
    fn standard_normal(&mut self) -> f64 {
        if let Some(z) = self.spare.take() {
            return z;
        }
        let radius = (-2.0 * self.uniform().ln()).sqrt();
        let angle = 2.0 * std::f64::consts::PI * self.uniform();
        self.spare = Some(radius * angle.sin());
        radius * angle.cos()
    }
}

#[cfg(test)]
mod tests {
    use super::Normals;
    use rand::RngCore;
    use rand::SeedableRng;
    use rand_xoshiro::SplitMix64;

    /// The generator's stream is SplitMix64's published one: the first outputs of the
    /// reference C implementation (Vigna's `splitmix64.c`) for this seed, so the seeds
    /// recorded with the shipped models keep giving the same weights.
    #[test]
    fn the_stream_is_the_reference_splitmix64() {
        let mut rng = SplitMix64::seed_from_u64(1477776061723855037);
        let expected: [u64; 5] = [
            1985237415132408290,
            2979275885539914483,
            13511426838097143398,
            8488337342461049707,
            15141737807933549159,
        ];
        for e in expected {
            assert_eq!(rng.next_u64(), e);
        }
    }

    #[test]
    fn normal_draws_have_unit_variance() {
        let mut rng = Normals::new(7);
        let n = 200_000;
        let draws: Vec<f64> = (0..n).map(|_| rng.standard_normal()).collect();
        let mean = draws.iter().sum::<f64>() / n as f64;
        let var = draws.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
        // Standard errors: 1/sqrt(n) = 0.0022 for the mean, sqrt(2/n) = 0.0032 for the variance.
        assert!(mean.abs() < 0.01, "mean {mean}");
        assert!((var - 1.0).abs() < 0.015, "variance {var}");
    }
}

//! Forward throughput of a GPT-2-small-shaped model on the Flex backend, with and without a
//! probe capturing every `hook_resid_post`; the Rust half of `scripts/bench_forward.py`.
//!
//! ```sh
//! cargo run --release --example forward_throughput -- write-random target/bench/gpt2-small
//! cargo run --release --example forward_throughput -- time target/bench/gpt2-small 4 256 5
//! cargo run --release --example forward_throughput -- load target/bench/gpt2-small
//! cargo run --release --example forward_throughput -- gemm-peak 2048
//! ```
//!
//! `time` and `gemm-peak` take an optional last argument, a `--device` name of the `strata`
//! command line (default `flex`); GPU devices need the cargo feature of the same name, as in
//! `cargo run --release --features cuda --example forward_throughput -- time DIR 4 256 5 cuda`
//! (`scripts/gpu-lanes.sh`).

use std::path::Path;
use std::time::Instant;

use burn::backend::Flex;
use burn::tensor::backend::Backend;
use rand::{Rng, SeedableRng};

#[path = "../benches/support/gpt2_small.rs"]
mod gpt2_small;
use strata::core::probe::{Capture, ProbeSet, Site};
use strata::core::{DeviceSpec, Model, TokenBatch};

// The binaries' allocator: mimalloc, keeping freed activation buffers for reuse.
#[path = "../crates/strata-cli/src/allocator.rs"]
mod allocator;

/// Calls `$run::<Backend>(&device, args...)` on the backend a [`DeviceSpec`] names, as the
/// command line does; GPU arms exist only when their cargo feature is enabled.
macro_rules! on_device {
    ($spec:expr, $run:ident ( $($arg:expr),* $(,)? )) => {{
        let spec: DeviceSpec = $spec;
        match spec {
            DeviceSpec::Flex => $run::<Flex>(&Default::default(), &spec, $($arg),*),
            #[cfg(feature = "wgpu")]
            DeviceSpec::Wgpu => $run::<burn::backend::Wgpu>(&Default::default(), &spec, $($arg),*),
            #[cfg(feature = "vulkan")]
            DeviceSpec::Vulkan => $run::<burn::backend::Vulkan>(&Default::default(), &spec, $($arg),*),
            #[cfg(feature = "metal")]
            DeviceSpec::Metal => $run::<burn::backend::Metal>(&Default::default(), &spec, $($arg),*),
            #[cfg(feature = "cuda")]
            DeviceSpec::Cuda(index) => $run::<burn::backend::Cuda>(
                &burn::backend::cuda::CudaDevice::new(index),
                &spec,
                $($arg),*
            ),
            #[allow(unreachable_patterns)]
            other => Err(format!("device `{other}` is not compiled into this example").into()),
        }
    }};
}

/// The device named by argument `idx`, `flex` when it is absent.
fn device_arg(args: &[String], idx: usize) -> Result<DeviceSpec, Box<dyn std::error::Error>> {
    let name = args.get(idx).map_or("flex", String::as_str);
    Ok(DeviceSpec::parse_available(name)?)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    allocator::keep_freed_memory();
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("write-random") => gpt2_small::write_random(Path::new(&args[1])),
        Some("time") => {
            let n = |i: usize| args[i].parse::<usize>();
            let (dir, batch, seq, iters) = (Path::new(&args[1]), n(2)?, n(3)?, n(4)?);
            on_device!(device_arg(&args, 5)?, time(dir, batch, seq, iters))
        }
        Some("gemm-peak") => {
            let n: usize = args[1].parse()?;
            on_device!(device_arg(&args, 2)?, gemm_peak(n))
        }
        Some("load") => {
            let model = Model::<Flex>::load(Path::new(&args[1]), &Default::default())?;
            println!("{{\"n_params\": {}}}", model.n_params());
            Ok(())
        }
        _ => Err(
            "usage: forward_throughput (write-random DIR | time DIR BATCH SEQ ITERS [DEVICE] | load DIR | gemm-peak N [DEVICE])"
                .into(),
        ),
    }
}

/// Times `iters` forward passes of a `[batch, seq]` batch, plain and with every resid_post
/// captured, and prints tokens per second as JSON.
fn time<B: Backend>(
    device: &B::Device,
    spec: &DeviceSpec,
    dir: &Path,
    batch: usize,
    seq: usize,
    iters: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    let model = Model::<B>::load(dir, device)?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let rows: Vec<Vec<u32>> = (0..batch)
        .map(|_| {
            (0..seq)
                .map(|_| rng.random_range(0..model.config().vocab_size as u32))
                .collect()
        })
        .collect();
    let tokens = TokenBatch::padded(&rows, 0, strata::core::PadSide::Right)?;
    let run = |probes: &mut ProbeSet<'_, B>| -> Result<f64, Box<dyn std::error::Error>> {
        let start = Instant::now();
        let logits = model.forward_with(&tokens, None, probes)?;
        // Reading one value forces the whole computation.
        let _ = logits.slice([0..1, 0..1, 0..1]).into_data();
        Ok(start.elapsed().as_secs_f64())
    };
    run(&mut ProbeSet::none())?;
    let mut plain = Vec::new();
    let mut probed = Vec::new();
    for _ in 0..iters {
        plain.push(run(&mut ProbeSet::none())?);
        let mut capture =
            Capture::new((0..model.config().n_layers).map(|layer| Site::ResidPost { layer }));
        probed.push(run(&mut ProbeSet::one(&mut capture))?);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let n_tokens = (batch * seq) as f64;
    println!(
        "{{\"device\": \"{spec}\", \"tokens_per_s\": {:.1}, \"tokens_per_s_capture_resid_post\": {:.1}, \"median_s\": {:.4}, \"median_s_capture\": {:.4}, \"flops_per_forward\": {:.6e}}}",
        n_tokens / median(&mut plain),
        n_tokens / median(&mut probed),
        median(&mut plain),
        median(&mut probed),
        forward_flops(model.config(), batch, seq)
    );
    Ok(())
}

/// Multiply-adds times two of one forward pass: every projection, the unembedding, and the
/// two attention products over all `seq x seq` scores (eager attention computes the masked
/// half too). Norms, activations and the softmax are left out.
fn forward_flops(config: &strata::core::ModelConfig, batch: usize, seq: usize) -> f64 {
    let (d, h, kv, dh) = (
        config.d_model as f64,
        config.n_heads as f64,
        config.n_kv_heads as f64,
        config.d_head as f64,
    );
    let mlp_matrices = if config.gated_mlp { 3.0 } else { 2.0 };
    let per_layer = 2.0 * d * h * dh + 2.0 * d * kv * dh + mlp_matrices * d * config.d_mlp as f64;
    let per_token = config.n_layers as f64 * per_layer + d * config.vocab_size as f64;
    let tokens = (batch * seq) as f64;
    let attention = config.n_layers as f64 * batch as f64 * 2.0 * (seq * seq) as f64 * h * dh;
    2.0 * (tokens * per_token + attention)
}

/// The device's single-GEMM throughput: the best of 5 products of two `n x n` f32 matrices,
/// as JSON.
fn gemm_peak<B: Backend>(
    device: &B::Device,
    spec: &DeviceSpec,
    n: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    use burn::tensor::{Distribution, Tensor};
    let a = Tensor::<B, 2>::random([n, n], Distribution::Normal(0.0, 1.0), device);
    let b = Tensor::<B, 2>::random([n, n], Distribution::Normal(0.0, 1.0), device);
    let _ = a.clone().matmul(b.clone()).into_data();
    let mut best = f64::INFINITY;
    for _ in 0..5 {
        let start = Instant::now();
        let _ = a.clone().matmul(b.clone()).into_data();
        best = best.min(start.elapsed().as_secs_f64());
    }
    println!(
        "{{\"device\": \"{spec}\", \"n\": {n}, \"gflops\": {:.1}}}",
        2.0 * (n as f64).powi(3) / best / 1e9
    );
    Ok(())
}

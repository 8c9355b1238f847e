//! One dense + sparse pass pair of the CETT measurement on the Flex backend, timed: the dense
//! pass with its `mlp.hook_post` capture, every layer's threshold solve for one CETT target,
//! and the sparse pass. The Rust half of `scripts/bench_sparsity.py`.
//!
//! ```sh
//! cargo run --release -p strata-sparsity --example pass_pair -- MODEL TOKENS.json CETT ITERS
//! ```
//!
//! `TOKENS.json` is a JSON list of token ids: one window. Prints one JSON line: the median,
//! smallest and largest wall time of a pair over `ITERS` pairs (after one untimed pair),
//! and what the last pair measured.

use std::path::Path;
use std::time::Instant;

use burn::backend::Flex;
use strata_core::Model;
use strata_sparsity::{DensePass, SparsityConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [model, tokens, cett, iters] = args.as_slice() else {
        return Err("usage: pass_pair MODEL TOKENS.json CETT ITERS".into());
    };
    let model = Model::<Flex>::load(Path::new(model), &Default::default())?;
    let tokens: Vec<u32> = serde_json::from_str(&std::fs::read_to_string(tokens)?)?;
    let (cett, iters): (f64, usize) = (cett.parse()?, iters.parse()?);
    let config = SparsityConfig {
        window: tokens.len(),
        n_windows: 1,
        ..SparsityConfig::for_model(model.config())
    };
    let mut times = Vec::with_capacity(iters);
    let mut last = None;
    for i in 0..=iters {
        let started = Instant::now();
        let mut dense = DensePass::run(&model, &tokens, &config, &mut |_, _| {})?;
        let result = dense.evaluate(&model, cett, &mut |_, _| {})?;
        if i > 0 {
            times.push(started.elapsed().as_secs_f64());
        }
        last = Some(result);
    }
    let result = last.ok_or("no pair ran")?;
    let mut sorted = times.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted.get(sorted.len() / 2).copied().unwrap_or(f64::NAN);
    let out = serde_json::json!({
        "median_s": median,
        "min_s": sorted.first(),
        "max_s": sorted.last(),
        "times_s": times,
        "ppl_ratio": result.ppl_ratio(),
        "mean_activation_ratio": result.mean_activation_ratio(),
        "thresholds": result.mean_thresholds(),
        "activation_ratios": result.layers.iter().map(|l| l.activation_ratio()).collect::<Vec<_>>(),
    });
    println!("{out}");
    Ok(())
}

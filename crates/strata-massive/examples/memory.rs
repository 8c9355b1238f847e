//! Peak memory of a massive-activation measurement against the number of sequences: runs
//! `measure` over N sequences of 128 tokens of the embedded tiny model and prints the
//! process's peak resident memory (`VmHWM`, Linux) and the size of the result.
//!
//! `cargo run --release -p strata-massive --example memory -- N`; compare N = 10, 100, 1000.

use std::path::PathBuf;

use burn::backend::Flex;
use strata_core::Model;
use strata_massive::{MassiveConfig, measure};

fn peak_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: usize = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "10".into())
        .parse()?;
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../datasets/models/tiny-default");
    let model = Model::<Flex>::load(&dir, &Default::default())?;
    let vocab = model.config().vocab_size as u32;
    let sequences: Vec<Vec<u32>> = (0..n as u32)
        .map(|s| {
            (0..128u32)
                .map(|p| (s * 104_729 + p * 7919 + 13) % vocab)
                .collect()
        })
        .collect();
    let before = peak_kib();
    let result = measure(
        &model,
        &sequences,
        &MassiveConfig::default(),
        &mut |_, _| {},
    )?;
    let json = serde_json::to_string(&result)?;
    println!(
        "sequences {n} tokens {} peak_rss_kib_before {:?} peak_rss_kib_after {:?} result_json_bytes {}",
        n * 128,
        before,
        peak_kib(),
        json.len()
    );
    Ok(())
}

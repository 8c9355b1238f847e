//! Times strata's spectra of every 2-D tensor of a safetensors file; used by
//! `scripts/bench_spectra.py`, which runs PyTorch on the same matrices side by side.
//!
//! ```text
//! bench_spectra FILE --threads N [--repeats R] [--singular-values OUT.bin]
//! ```
//!
//! Prints one JSON line: the best wall time and the best CPU time (all threads) of a full run
//! (every metric and the power-law fit) and of a run of singular values and kappa only (no
//! power-law fit), the number of units, and how many took the SVD fallback. With `--singular-values`, writes every unit's
//! singular values (f64, little-endian, units in name order) for accuracy checks.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use strata_spectra::{SpectraConfig, SpectrumPath, analyze_path};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let file = PathBuf::from(args.next().ok_or("usage: bench_spectra FILE --threads N")?);
    let (mut threads, mut repeats, mut sv_out) = (None, 3usize, None);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or("missing flag value")?;
        match flag.as_str() {
            "--threads" => threads = Some(value.parse()?),
            "--repeats" => repeats = value.parse()?,
            "--singular-values" => sv_out = Some(PathBuf::from(value)),
            other => return Err(format!("unknown flag {other}").into()),
        }
    }
    let full = SpectraConfig {
        n_threads: threads,
        include_embeddings: true,
        max_dim: None,
        keep_singular_values: sv_out.is_some(),
        ..SpectraConfig::strata()
    };
    let lean = SpectraConfig {
        fit_powerlaw: false,
        keep_singular_values: false,
        ..full.clone()
    };
    // Best wall time and best process CPU time (all threads) over the repeats.
    let time = |config: &SpectraConfig| -> Result<
        (f64, f64, strata_spectra::SpectraResult),
        Box<dyn std::error::Error>,
    > {
        let (mut best, mut best_cpu) = (f64::INFINITY, f64::INFINITY);
        let mut last = None;
        for _ in 0..repeats {
            let (start, start_cpu) = (Instant::now(), process_cpu_seconds());
            let result = analyze_path(&file, config, None)?;
            best = best.min(start.elapsed().as_secs_f64());
            best_cpu = best_cpu.min(process_cpu_seconds() - start_cpu);
            last = Some(result);
        }
        Ok((best, best_cpu, last.expect("at least one repeat")))
    };
    let (seconds_singular_values, cpu_seconds_singular_values, _) = time(&lean)?;
    let (seconds_full, cpu_seconds_full, result) = time(&full)?;
    if let Some(path) = sv_out {
        let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
        for unit in &result.units {
            for s in unit.singular_values.as_deref().unwrap_or_default() {
                out.write_all(&s.to_le_bytes())?;
            }
        }
    }
    let n_svd = result
        .units
        .iter()
        .filter(|u| u.path == Some(SpectrumPath::Svd))
        .count();
    println!(
        "{{\"seconds_singular_values\": {seconds_singular_values}, \"seconds_full\": {seconds_full}, \
         \"cpu_seconds_singular_values\": {cpu_seconds_singular_values}, \
         \"cpu_seconds_full\": {cpu_seconds_full}, \
         \"n_units\": {}, \"n_svd_fallback\": {n_svd}, \"units\": {:?}}}",
        result.units.len(),
        result
            .units
            .iter()
            .map(|u| u.unit.as_str())
            .collect::<Vec<_>>()
    );
    Ok(())
}

/// User plus system CPU time of this process so far, from `/proc/self/stat` (Linux; `NaN`
/// elsewhere). Clock ticks are taken as 100 per second, the Linux default.
fn process_cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return f64::NAN;
    };
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let Some(rest) = stat.rsplit_once(')').map(|(_, rest)| rest) else {
        return f64::NAN;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok());
    match (ticks(11), ticks(12)) {
        (Some(user), Some(system)) => (user + system) / 100.0,
        _ => f64::NAN,
    }
}

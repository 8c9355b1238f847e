//! Shared helpers of the integration tests: fixture paths, references, the tolerance rule.

#![allow(dead_code)]

use std::path::PathBuf;

use safetensors::SafeTensors;
use std::collections::BTreeMap;

use burn::tensor::backend::Backend;
use strata_core::probe::{Capture, ProbeSet, Site};
use strata_core::weights::HostTensor;
use strata_core::{Model, TokenBatch};

/// The folder of a parity fixture.
pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(name)
}

/// A reference tensor (any dtype) from a fixture's `reference.safetensors`, as f64 values.
pub fn reference(name: &str, key: &str) -> (Vec<usize>, Vec<f64>) {
    reference_in(name, "reference.safetensors", key)
}

/// The names in a fixture's reference file.
pub fn reference_keys(name: &str, file: &str) -> Vec<String> {
    let bytes = std::fs::read(fixture(name).join(file)).expect("reference file");
    let st = SafeTensors::deserialize(&bytes).expect("valid reference");
    let mut keys: Vec<String> = st.names().into_iter().map(|s| s.to_string()).collect();
    keys.sort();
    keys
}

/// A reference tensor from `reference.safetensors` or, for the sites added later
/// (`generate.py --sites`), `reference_sites.safetensors`.
pub fn reference_any(name: &str, key: &str) -> (Vec<usize>, Vec<f64>) {
    if reference_keys(name, "reference.safetensors")
        .iter()
        .any(|k| k == key)
    {
        reference(name, key)
    } else {
        reference_in(name, "reference_sites.safetensors", key)
    }
}

/// A reference tensor (any dtype) from one reference file of a fixture, as f64 values.
pub fn reference_in(name: &str, file: &str, key: &str) -> (Vec<usize>, Vec<f64>) {
    let bytes = std::fs::read(fixture(name).join(file)).expect("reference file");
    let st = SafeTensors::deserialize(&bytes).expect("valid reference");
    let view = st
        .tensor(key)
        .unwrap_or_else(|_| panic!("{name}: {file} has no `{key}`"));
    let data = view.data();
    let values = match view.dtype() {
        safetensors::Dtype::F32 => data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()) as f64)
            .collect(),
        safetensors::Dtype::I64 => data
            .chunks_exact(8)
            .map(|b| i64::from_le_bytes(b.try_into().unwrap()) as f64)
            .collect(),
        other => panic!("unexpected dtype {other:?}"),
    };
    (view.shape().to_vec(), values)
}

/// Token ids stored as i64 in a reference.
pub fn reference_ids(name: &str, key: &str) -> (Vec<usize>, Vec<u32>) {
    let (shape, v) = reference(name, key);
    (shape, v.into_iter().map(|x| x as u32).collect())
}

/// The tolerance of every parity check: `1e-4 * max(1, max |ref|)`.
pub fn tolerance(reference: &[f64]) -> f64 {
    1e-4 * reference.iter().fold(1.0f64, |m, v| m.max(v.abs()))
}

/// Largest absolute difference.
pub fn max_abs_diff(a: &[f32], b: &[f64]) -> f64 {
    assert_eq!(
        a.len(),
        b.len(),
        "compared tensors have the same number of values"
    );
    a.iter()
        .zip(b)
        .map(|(x, y)| (*x as f64 - y).abs())
        .fold(0.0, f64::max)
}

/// Asserts that `got` matches `expected` within the parity tolerance.
pub fn assert_close(what: &str, got: &HostTensor, shape: &[usize], expected: &[f64]) {
    assert_eq!(got.shape, shape, "{what}: shape");
    let err = max_abs_diff(&got.data, expected);
    let tol = tolerance(expected);
    assert!(
        err <= tol,
        "{what}: max abs error {err:e} > tolerance {tol:e}"
    );
}

/// A fresh copy of a fixture folder that a test may damage, under a name made of `tag`.
pub fn scratch_copy(fixture_name: &str, tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("strata-test-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for entry in std::fs::read_dir(fixture(fixture_name)).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.join(path.file_name().unwrap())).unwrap();
    }
    dir
}

/// The activations at `sites` of one forward pass over `ids`, on the host.
pub fn capture_sites<B: Backend>(
    model: &Model<B>,
    ids: &[u32],
    sites: &[Site],
) -> BTreeMap<Site, HostTensor> {
    let mut capture = Capture::new(sites.iter().copied());
    model
        .forward_with(
            &TokenBatch::single(ids).unwrap(),
            None,
            &mut ProbeSet::one(&mut capture),
        )
        .expect("forward");
    capture.captured
}

/// Cases per randomised test: `STRATA_FUZZ_CASES`, or `default`.
pub fn fuzz_cases(default: usize) -> usize {
    std::env::var("STRATA_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The generator of one randomised target, seeded by `STRATA_FUZZ_SEED` (or a fixed seed).
pub fn fuzz_rng(target: u64) -> rand::rngs::StdRng {
    use rand::SeedableRng;
    let seed = std::env::var("STRATA_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_261_203);
    rand::rngs::StdRng::seed_from_u64(seed ^ target)
}

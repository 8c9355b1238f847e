//! Parity with HF transformers on a GPU backend, shared by `parity_cuda.rs` and
//! `parity_vulkan.rs`: every site of every fixture family captured in one forward pass, and
//! a right-padded batch, against the references of `tests/fixtures/generate.py`.
//!
//! The tolerance is the one of every parity test (`common::tolerance`), so a GPU kernel is
//! held to the same bound as the CPU.

use burn::tensor::backend::Backend;
use strata_core::probe::Site;
use strata_core::weights::HostTensor;
use strata_core::{Model, PadSide, TokenBatch};

use crate::common::{self, assert_close, reference, reference_ids};

/// Every site of `fixture`, captured in one forward pass on `device`, against HF: the sites
/// of `reference.safetensors` and of `reference_sites.safetensors` alike.
pub fn check_every_site<B: Backend>(backend: &str, fixture: &str, device: &B::Device) {
    let model = Model::<B>::load(&common::fixture(fixture), device).expect("fixture loads");
    let (_, ids) = reference_ids(fixture, "input_ids");
    let sites = Site::all(model.config());
    let captured = common::capture_sites(&model, &ids, &sites);
    for site in &sites {
        let (shape, expected) = common::reference_any(fixture, &site.to_string());
        assert_close(
            &format!("{backend} {fixture} {site}"),
            &captured[site],
            &shape,
            &expected,
        );
    }
}

/// A right-padded batch of two rows matches HF's output on every real token.
pub fn check_padded_batch<B: Backend>(backend: &str, fixture: &str, device: &B::Device) {
    let model = Model::<B>::load(&common::fixture(fixture), device).expect("fixture loads");
    let (shape, ids) = reference_ids(fixture, "batch.input_ids");
    let (_, mask) = reference_ids(fixture, "batch.attention_mask");
    let rows: Vec<Vec<u32>> = (0..shape[0])
        .map(|r| {
            (0..shape[1])
                .filter(|&c| mask[r * shape[1] + c] == 1)
                .map(|c| ids[r * shape[1] + c])
                .collect()
        })
        .collect();
    let batch = TokenBatch::padded(&rows, 0, PadSide::Right).expect("a valid batch");
    let out = HostTensor::from_tensor(model.forward(&batch).expect("forward"));
    let (out_shape, expected) = reference(fixture, "batch.output");
    assert_eq!(
        out.shape, out_shape,
        "{backend} {fixture}: padded output shape"
    );
    let width = out_shape[2];
    for (r, row) in rows.iter().enumerate() {
        let start = r * shape[1] * width;
        let n = row.len() * width;
        let got = HostTensor::new(
            vec![1, row.len(), width],
            out.data[start..start + n].to_vec(),
        );
        assert_close(
            &format!("{backend} {fixture} padded row {r}"),
            &got,
            &[1, row.len(), width],
            &expected[start..start + n],
        );
    }
}

/// Two tests per fixture family (every site, a padded batch) on the backend `$backend`
/// named `$name`, on the device `$device()` returns. Both paths must be absolute
/// (`burn::backend::Cuda`, `crate::device`): the tests live in a module per family.
macro_rules! gpu_parity_tests {
    ($backend:ty, $name:literal, $device:path) => {
        $crate::gpu_parity::gpu_parity_tests!(@family $backend, $name, $device, gpt2, "gpt2-tiny");
        $crate::gpu_parity::gpu_parity_tests!(@family $backend, $name, $device, gpt_neox, "gpt-neox-tiny");
        $crate::gpu_parity::gpu_parity_tests!(@family $backend, $name, $device, gpt_neox_serial, "gpt-neox-serial-tiny");
        $crate::gpu_parity::gpu_parity_tests!(@family $backend, $name, $device, gpt_neox_odd_rotary, "gpt-neox-odd-rotary-tiny");
        $crate::gpu_parity::gpu_parity_tests!(@family $backend, $name, $device, llama, "llama-tiny");
        $crate::gpu_parity::gpu_parity_tests!(@family $backend, $name, $device, mistral, "mistral-tiny");
        $crate::gpu_parity::gpu_parity_tests!(@family $backend, $name, $device, qwen2, "qwen2-tiny");
        $crate::gpu_parity::gpu_parity_tests!(@family $backend, $name, $device, bert, "bert-tiny");
    };
    (@family $backend:ty, $name:literal, $device:path, $family:ident, $fixture:literal) => {
        mod $family {
            #[test]
            fn every_site_matches_hf() {
                $crate::gpu_parity::check_every_site::<$backend>($name, $fixture, &$device());
            }

            #[test]
            fn padded_batch_matches_hf() {
                $crate::gpu_parity::check_padded_batch::<$backend>($name, $fixture, &$device());
            }
        }
    };
}

pub(crate) use gpu_parity_tests;

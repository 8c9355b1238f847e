//! Parity with HF transformers: every site of every fixture family, on the Flex backend.
//! References come from `tests/fixtures/generate.py`.

mod common;

use burn::backend::Flex;
use strata_core::probe::{Capture, ProbeSet, Site};
use strata_core::weights::HostTensor;
use strata_core::{Model, PadSide, TokenBatch};

use common::{assert_close, reference, reference_ids};

type B = Flex;

/// Runs a fixture's reference tokens with a capture of `site` and compares with HF.
fn check_parity(fixture: &str, site: &str) {
    let device = Default::default();
    let model = Model::<B>::load(&common::fixture(fixture), &device).expect("fixture loads");
    let (_, ids) = reference_ids(fixture, "input_ids");
    let site: Site = site.parse().expect("valid site");
    let mut capture = Capture::new([site]);
    model
        .forward_with(
            &TokenBatch::single(&ids).unwrap(),
            None,
            &mut ProbeSet::one(&mut capture),
        )
        .expect("forward");
    let (shape, expected) = reference(fixture, &site.to_string());
    assert_close(
        &format!("{fixture} {site}"),
        &capture.captured[&site],
        &shape,
        &expected,
    );
}

/// A right-padded batch of two rows matches HF on every real token.
fn check_padded_batch(fixture: &str) {
    let device = Default::default();
    let model = Model::<B>::load(&common::fixture(fixture), &device).expect("fixture loads");
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
    let batch = TokenBatch::padded(&rows, 0, PadSide::Right).unwrap();
    let out = HostTensor::from_tensor(model.forward(&batch).expect("forward"));
    let (out_shape, expected) = reference(fixture, "batch.output");
    assert_eq!(out.shape, out_shape);
    let width = out_shape[2];
    for (r, row) in rows.iter().enumerate() {
        let start = r * shape[1] * width;
        let n = row.len() * width;
        let got = HostTensor::new(
            vec![1, row.len(), width],
            out.data[start..start + n].to_vec(),
        );
        assert_close(
            &format!("{fixture} padded row {r}"),
            &got,
            &[1, row.len(), width],
            &expected[start..start + n],
        );
    }
}

macro_rules! parity_tests {
    ($fixture:literal, $prefix:ident, [$($test:ident => $site:literal),* $(,)?]) => {
        mod $prefix {
            $(
                #[test]
                fn $test() {
                    super::check_parity($fixture, $site);
                }
            )*
            #[test]
            fn padded_batch_matches_hf() {
                super::check_padded_batch($fixture);
            }
        }
    };
}

macro_rules! decoder_parity_tests {
    ($fixture:literal, $prefix:ident $(, $extra:ident => $extra_site:literal)*) => {
        parity_tests!($fixture, $prefix, [
            embed_matches_hf => "hook_embed",
            resid_pre_0_matches_hf => "blocks.0.hook_resid_pre",
            attn_out_0_matches_hf => "blocks.0.hook_attn_out",
            mlp_pre_0_matches_hf => "blocks.0.mlp.hook_pre",
            mlp_post_0_matches_hf => "blocks.0.mlp.hook_post",
            mlp_out_0_matches_hf => "blocks.0.hook_mlp_out",
            resid_post_0_matches_hf => "blocks.0.hook_resid_post",
            resid_pre_1_matches_hf => "blocks.1.hook_resid_pre",
            attn_out_1_matches_hf => "blocks.1.hook_attn_out",
            mlp_pre_1_matches_hf => "blocks.1.mlp.hook_pre",
            mlp_post_1_matches_hf => "blocks.1.mlp.hook_post",
            mlp_out_1_matches_hf => "blocks.1.hook_mlp_out",
            resid_post_1_matches_hf => "blocks.1.hook_resid_post",
            ln_final_matches_hf => "ln_final.hook_normalized",
            logits_matches_hf => "logits",
            $($extra => $extra_site,)*
        ]);
    };
}

decoder_parity_tests!("gpt2-tiny", gpt2, pos_embed_matches_hf => "hook_pos_embed");
decoder_parity_tests!("gpt-neox-tiny", gpt_neox);
decoder_parity_tests!("gpt-neox-serial-tiny", gpt_neox_serial);
// Head size 12, rotary_pct 0.25: an odd number (3) of rotary dims.
decoder_parity_tests!("gpt-neox-odd-rotary-tiny", gpt_neox_odd_rotary);
decoder_parity_tests!("llama-tiny", llama);
decoder_parity_tests!("mistral-tiny", mistral);
decoder_parity_tests!("qwen2-tiny", qwen2);

parity_tests!("bert-tiny", bert, [
    embed_matches_hf => "hook_embed",
    pos_embed_matches_hf => "hook_pos_embed",
    resid_pre_0_matches_hf => "blocks.0.hook_resid_pre",
    attn_out_0_matches_hf => "blocks.0.hook_attn_out",
    mlp_pre_0_matches_hf => "blocks.0.mlp.hook_pre",
    mlp_post_0_matches_hf => "blocks.0.mlp.hook_post",
    mlp_out_0_matches_hf => "blocks.0.hook_mlp_out",
    resid_post_0_matches_hf => "blocks.0.hook_resid_post",
    resid_pre_1_matches_hf => "blocks.1.hook_resid_pre",
    attn_out_1_matches_hf => "blocks.1.hook_attn_out",
    mlp_post_1_matches_hf => "blocks.1.mlp.hook_post",
    resid_post_1_matches_hf => "blocks.1.hook_resid_post",
]);

/// The sites added after the first fixtures (`hook_resid_mid`, `ln1`/`ln2.hook_normalized`,
/// `attn.hook_z`, `attn.hook_pattern`) against HF on every family, from
/// `reference_sites.safetensors` (`generate.py --sites`). Also checks that every site of the
/// model has a reference in one of the two files, so no site goes untested.
fn check_added_sites(fixture: &str) {
    let device = Default::default();
    let model = Model::<B>::load(&common::fixture(fixture), &device).expect("fixture loads");
    let (_, ids) = reference_ids(fixture, "input_ids");
    let keys = common::reference_keys(fixture, "reference_sites.safetensors");
    let sites: Vec<Site> = keys
        .iter()
        .map(|k| k.parse().expect("a site name"))
        .collect();
    let captured = common::capture_sites(&model, &ids, &sites);
    for site in &sites {
        let (shape, expected) =
            common::reference_in(fixture, "reference_sites.safetensors", &site.to_string());
        assert_close(
            &format!("{fixture} {site}"),
            &captured[site],
            &shape,
            &expected,
        );
    }
    let first = common::reference_keys(fixture, "reference.safetensors");
    for site in Site::all(model.config()) {
        let name = site.to_string();
        assert!(
            first.contains(&name) || keys.contains(&name),
            "{fixture}: site {name} has no HF reference"
        );
    }
}

#[test]
fn added_sites_match_hf_on_every_family() {
    for fixture in [
        "gpt2-tiny",
        "gpt-neox-tiny",
        "gpt-neox-serial-tiny",
        "gpt-neox-odd-rotary-tiny",
        "llama-tiny",
        "mistral-tiny",
        "qwen2-tiny",
        "bert-tiny",
    ] {
        check_added_sites(fixture);
    }
}

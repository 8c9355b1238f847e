//! The Sparsing Law's fitted laws (Eq. 4-5) against scipy's `curve_fit`
//! (`tests/fixtures/sparsity/law_reference.py`): on noisy synthetic series of both laws, at
//! the paper's token scale and at the tiny suite's, the parameters agree with scipy's to a
//! relative 1e-4 and the residual sum of squares to a relative 1e-6. Bad input is refused
//! with the reason named.

use strata_sparsity::{Error, Law, LawConfig, LawParams, fit_law};

fn reference() -> serde_json::Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/sparsity/law_reference.json");
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn floats(v: &serde_json::Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

#[test]
fn both_laws_agree_with_scipy_curve_fit() {
    let reference = reference();
    let cases = reference["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 4);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let law = match case["law"].as_str().unwrap() {
            "relu" => Law::Relu,
            _ => Law::Silu,
        };
        let (d, y) = (floats(&case["d"]), floats(&case["values"]));
        let fit = fit_law(law, &d, &y, &LawConfig::default()).unwrap();
        let scipy = &case["scipy"];
        let got: Vec<(&str, f64)> = match fit.params {
            LawParams::Relu { c, alpha, b, a0 } => {
                vec![("c", c), ("alpha", alpha), ("b", b), ("a0", a0)]
            }
            LawParams::Silu { c, alpha, a0 } => vec![("c", c), ("alpha", alpha), ("a0", a0)],
        };
        assert_eq!(got.len(), scipy.as_object().unwrap().len(), "{name}");
        for (key, value) in got {
            let want = scipy[key].as_f64().unwrap();
            assert!(
                (value - want).abs() <= 1e-4 * want.abs(),
                "{name} {key}: strata {value} vs scipy {want}"
            );
        }
        let rss = case["rss"].as_f64().unwrap();
        assert!(
            (fit.rss - rss).abs() <= 1e-6 * rss,
            "{name}: rss {} vs scipy {rss}",
            fit.rss
        );
        assert_eq!(fit.n_points, d.len());
        assert!(fit.r2 > 0.9, "{name}: R^2 {}", fit.r2);
    }
}

#[test]
fn too_few_points_are_refused_with_the_count() {
    let d = [1.0, 2.0, 3.0, 4.0];
    let y = [10.0, 9.0, 8.5, 8.2];
    // ReLU has 4 parameters: 4 points are too few; SiLU has 3: 3 points are too few.
    let e = fit_law(Law::Relu, &d, &y, &LawConfig::default()).unwrap_err();
    assert!(matches!(
        e,
        Error::TooFewPoints {
            n_points: 4,
            needed: 5,
            ..
        }
    ));
    assert!(e.to_string().contains("at least 5"), "{e}");
    let e = fit_law(
        Law::Silu,
        &d[..3],
        &[30.0, 33.0, 34.0],
        &LawConfig::default(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("3 point(s)"), "{e}");
    let e = fit_law(Law::Silu, &[], &[], &LawConfig::default()).unwrap_err();
    assert!(matches!(e, Error::TooFewPoints { n_points: 0, .. }));
}

#[test]
fn bad_points_are_refused_with_the_reason() {
    let d = [0.5, 1.0, 2.0, 4.0, 8.0, 16.0];
    let y = [10.0, 9.0, 8.5, 8.2, 8.1, 8.05];
    let config = LawConfig::default();
    let msg = |law, d: &[f64], y: &[f64]| fit_law(law, d, y, &config).unwrap_err().to_string();
    let mut nan = y;
    nan[2] = f64::NAN;
    assert!(msg(Law::Relu, &d, &nan).contains("point 2 is not finite"));
    let mut zero = d;
    zero[0] = 0.0;
    assert!(msg(Law::Silu, &zero, &y).contains("D > 0"));
    assert!(msg(Law::Relu, &d, &[7.0; 6]).contains("constant"));
    assert!(msg(Law::Relu, &[2.0; 6], &y).contains("same D"));
    assert!(msg(Law::Relu, &d, &y[..5]).contains("6 token counts but 5 values"));
}

#[test]
fn an_optimiser_that_cannot_converge_says_so() {
    // Two evaluations per parameter are not enough from any start.
    let d = [0.5, 1.0, 2.0, 4.0, 8.0, 16.0];
    let y = [10.0, 9.1, 8.4, 8.3, 8.0, 8.05];
    let config = LawConfig {
        patience: 1,
        ..LawConfig::default()
    };
    let e = fit_law(Law::Relu, &d, &y, &config).unwrap_err();
    assert!(matches!(e, Error::FitFailed { .. }), "{e:?}");
    assert!(e.to_string().contains("converged from none"), "{e}");
}

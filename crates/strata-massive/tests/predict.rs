//! The architecture predictor: Yeo-Johnson and ridge against numpy/scipy
//! (`tests/fixtures/massive/predict_reference.py`), a planted linear law recovered on
//! held-out rows, and too few rows refused.

use std::path::PathBuf;

use strata_massive::{
    DepthConvention, DynamicsParams, Error, FEATURE_NAMES, LayerArch, PredictorConfig, Ridge,
    features, predict_parameters, yeo_johnson, yeo_johnson_lambda,
};

fn reference() -> serde_json::Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/massive/predict_reference.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn floats(v: &serde_json::Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

#[test]
fn yeo_johnson_matches_scipy() {
    let r = &reference()["yeo_johnson"];
    let values = floats(&r["values"]);
    let lambda = yeo_johnson_lambda(&values);
    let want = r["lambda"].as_f64().unwrap();
    assert!((lambda - want).abs() < 1e-5, "{lambda} vs scipy {want}");
    for (v, t) in values.iter().zip(floats(&r["transformed"])) {
        let got = yeo_johnson(*v, want);
        assert!(
            (got - t).abs() < 1e-10 * t.abs().max(1.0),
            "{v}: {got} vs {t}"
        );
    }
}

#[test]
fn ridge_matches_the_closed_form() {
    let r = &reference()["ridge"];
    let x: Vec<[f64; 4]> = r["x"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            let v = floats(row);
            [v[0], v[1], v[2], v[3]]
        })
        .collect();
    let y = floats(&r["y"]);
    let idx = |k: &str| -> Vec<usize> {
        r[k].as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as usize)
            .collect()
    };
    let model = Ridge::fit(&x, &y, &idx("train"), r["alpha"].as_f64().unwrap());
    for (&i, want) in idx("test").iter().zip(floats(&r["predictions"])) {
        let got = model.predict(&x[i]);
        assert!((got - want).abs() < 1e-9, "row {i}: {got} vs numpy {want}");
    }
}

/// Layers of many made-up architectures.
fn archs() -> Vec<LayerArch> {
    let mut out = Vec::new();
    for (n_layers, d_model, n_heads) in [
        (2, 64, 2),
        (4, 96, 4),
        (6, 64, 4),
        (3, 96, 3),
        (4, 128, 8),
        (8, 256, 8),
        (5, 160, 5),
        (6, 192, 12),
    ] {
        for layer in 0..n_layers {
            out.push(LayerArch {
                layer,
                n_layers,
                d_model,
                n_heads,
                d_mlp: 4 * d_model,
            });
        }
    }
    out
}

#[test]
fn a_planted_linear_law_is_predicted_on_held_out_rows() {
    // log1p(A) is linear in relative depth and log d; the other targets are a fixed
    // pseudo-random scramble that no feature explains.
    let rows: Vec<(LayerArch, DynamicsParams)> = archs()
        .into_iter()
        .enumerate()
        .map(|(i, arch)| {
            let f = features(&arch, DepthConvention::FirstZeroLastOne);
            let log1p_a = 0.5 + 2.0 * f[0] + 0.3 * f[8];
            let scramble = ((i * 7919) % 31) as f64 / 31.0;
            let params = DynamicsParams {
                a: log1p_a.exp_m1(),
                lambda: scramble,
                gamma: 0.01 * (1.0 + scramble),
                t0: 1.0 + scramble,
                k: 3.0 * scramble - 1.0,
            };
            (arch, params)
        })
        .collect();
    assert_eq!(rows.len(), 38);
    let out = predict_parameters(&rows, &PredictorConfig::default()).unwrap();
    assert_eq!(out.len(), 5);
    let a = &out[0];
    assert_eq!((a.param.as_str(), a.transform.as_str()), ("A", "log1p"));
    assert!(a.test_r2 > 0.99, "{a:?}");
    assert!(a.cv_r2 > 0.99, "{a:?}");
    assert_eq!(a.n_test + a.n_train, 38);
    assert_eq!(a.n_test, 8);
    assert_eq!(out[4].transform, "yeo-johnson");
    for p in &out[1..] {
        assert!(p.test_r2 < 0.9, "{p:?}");
    }
}

#[test]
fn features_follow_the_papers_table() {
    let arch = LayerArch {
        layer: 3,
        n_layers: 4,
        d_model: 128,
        n_heads: 8,
        d_mlp: 384,
    };
    let f = features(&arch, DepthConvention::FirstZeroLastOne);
    assert_eq!(FEATURE_NAMES.len(), f.len());
    assert_eq!(f[0], 1.0);
    assert_eq!(f[4], 8.0 / 128.0);
    assert_eq!(f[5], 3.0);
    assert_eq!(f[6], 32.0);
    assert_eq!(f[7], 2.0);
    assert_eq!(f[8], 128f64.ln());
    assert_eq!(f[9], 16.0);
    let first = LayerArch { layer: 0, ..arch };
    assert_eq!(features(&first, DepthConvention::FirstZeroLastOne)[0], 0.0);
    assert_eq!(features(&first, DepthConvention::OneBased)[0], 0.25);
}

#[test]
fn too_few_rows_are_refused() {
    let rows: Vec<(LayerArch, DynamicsParams)> = archs()
        .into_iter()
        .take(6)
        .map(|arch| {
            (
                arch,
                DynamicsParams {
                    a: 1.0,
                    lambda: 0.1,
                    gamma: 0.01,
                    t0: 1.0,
                    k: 2.0,
                },
            )
        })
        .collect();
    let err = predict_parameters(&rows, &PredictorConfig::default()).unwrap_err();
    assert!(matches!(err, Error::BadData { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("regression of A") && text.contains("6 usable rows"),
        "{text}"
    );
}

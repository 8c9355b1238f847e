//! The five-parameter dynamics fit against scipy (`tests/fixtures/massive/fit_reference.py`,
//! `curve_fit(method="trf")` on the same data from the same start), its recovery of known
//! parameters from noisy synthetic series, the peak step of the released Pythia-410M fit,
//! and its refusals.

use std::path::PathBuf;

use strata_massive::{DynamicsParams, Error, FitConfig, fit_dynamics};

fn reference() -> serde_json::Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/massive/fit_reference.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn floats(v: &serde_json::Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn params(v: &serde_json::Value) -> DynamicsParams {
    let f = |k: &str| v[k].as_f64().unwrap();
    DynamicsParams {
        a: f("a"),
        lambda: f("lambda"),
        gamma: f("gamma"),
        t0: f("t0"),
        k: f("k"),
    }
}

fn rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs().max(1e-12)
}

#[test]
fn fits_agree_with_scipy_on_the_same_data() {
    let reference = reference();
    let cases = reference["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 3);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let (t, y) = (floats(&case["steps"]), floats(&case["values"]));
        let fit = fit_dynamics(name, &t, &y, &FitConfig::default()).unwrap();
        let want = params(&case["scipy"]["params"]);
        let got = fit.params;
        for (g, w, p) in [
            (got.a, want.a, "A"),
            (got.lambda, want.lambda, "lambda"),
            (got.gamma, want.gamma, "gamma"),
            (got.t0, want.t0, "t0"),
            (got.k, want.k, "K"),
        ] {
            assert!(rel(g, w) < 1e-3, "{name} {p}: strata {g}, scipy {w}");
        }
        let r2 = case["scipy"]["r2"].as_f64().unwrap();
        assert!((fit.r2 - r2).abs() < 1e-6, "{name} R^2: {} vs {r2}", fit.r2);
        let aic = case["scipy"]["aic"].as_f64().unwrap();
        assert!(
            (fit.aic - aic).abs() < 1e-3 * aic.abs().max(1.0),
            "{name} AIC: {} vs {aic}",
            fit.aic
        );
        let peak = case["scipy"]["peak_step"].as_f64().unwrap();
        assert!(
            rel(fit.peak_step.unwrap(), peak) < 1e-3,
            "{name} peak: {:?} vs {peak}",
            fit.peak_step
        );
        assert!(fit.peak_observed, "{name}");
        assert!(!fit.lambda_at_bound, "{name}");
    }
}

/// Deterministic Gaussian noise (Box-Muller on a SplitMix64 stream).
fn noise(n: usize, sd: f64, seed: u64) -> Vec<f64> {
    let mut state = seed;
    let mut uniform = || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    };
    (0..n)
        .map(|_| {
            let (u1, u2) = (uniform().max(1e-300), uniform());
            sd * (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
        })
        .collect()
}

/// Pythia's checkpoint grid: 0, powers of two to 512, every 1000th step to 143,000.
fn pythia_steps() -> Vec<f64> {
    std::iter::once(0.0)
        .chain((0..10).map(|i| f64::from(1u32 << i)))
        .chain((1..=143).map(|k| f64::from(k * 1000)))
        .collect()
}

#[test]
fn known_parameters_are_recovered_from_noisy_series() {
    // The released Pythia-410M median fit, layer 0 (shared/methods/massive.md), and an
    // early-peak ratio series of order 100.
    let cases = [
        DynamicsParams {
            a: 0.1991,
            lambda: 0.1245,
            gamma: 1.1244e-4,
            t0: 0.6212,
            k: 0.1219,
        },
        DynamicsParams {
            a: 60.0,
            lambda: 0.35,
            gamma: 2e-4,
            t0: 0.8,
            k: 40.0,
        },
    ];
    let t = pythia_steps();
    for (i, truth) in cases.iter().enumerate() {
        let clean: Vec<f64> = t.iter().map(|&s| truth.eval(s)).collect();
        let range = clean.iter().copied().fold(f64::MIN, f64::max)
            - clean.iter().copied().fold(f64::MAX, f64::min);
        // Noise of 0.2% of the range.
        let y: Vec<f64> = clean
            .iter()
            .zip(noise(t.len(), 0.002 * range, 7 + i as u64))
            .map(|(c, e)| c + e)
            .collect();
        let fit = fit_dynamics("synthetic", &t, &y, &FitConfig::default()).unwrap();
        assert!(fit.r2 > 0.999, "case {i}: R^2 {}", fit.r2);
        let got = fit.params;
        for (g, w, p) in [
            (got.a, truth.a, "A"),
            (got.lambda, truth.lambda, "lambda"),
            (got.gamma, truth.gamma, "gamma"),
            (got.t0, truth.t0, "t0"),
            (got.k, truth.k, "K"),
        ] {
            assert!(rel(g, w) < 0.05, "case {i} {p}: fitted {g}, true {w}");
        }
        // The fitted curve follows the clean one to well within the noise.
        let worst = t
            .iter()
            .zip(&clean)
            .map(|(&s, c)| (got.eval(s) - c).abs())
            .fold(0.0, f64::max);
        assert!(worst < 0.004 * range, "case {i}: worst deviation {worst}");
        // Without noise the fit is exact.
        let exact = fit_dynamics("clean", &t, &clean, &FitConfig::default()).unwrap();
        assert!(exact.r2 > 1.0 - 1e-10, "case {i}: R^2 {}", exact.r2);
        for (g, w) in exact.params.to_array().iter().zip(truth.to_array()) {
            assert!(rel(*g, w) < 1e-4, "case {i}: {g} vs {w}");
        }
    }
}

#[test]
fn the_released_fit_peaks_near_38_9k_steps() {
    // shared/methods/massive.md: the released Pythia-410M median fit of layer 0 peaks at
    // about 38.9k steps.
    let released = DynamicsParams {
        a: 0.1991,
        lambda: 0.1245,
        gamma: 1.1244e-4,
        t0: 0.6212,
        k: 0.1219,
    };
    let peak = released.peak_step().unwrap();
    assert!((peak - 38_900.0).abs() < 200.0, "{peak}");
    // The derivative vanishes there.
    let h = 1.0;
    let slope = (released.eval(peak + h) - released.eval(peak - h)) / (2.0 * h);
    assert!(slope.abs() < 1e-12, "{slope}");
    // lambda = 0: a pure log curve, no peak.
    assert!(
        DynamicsParams {
            lambda: 0.0,
            ..released
        }
        .peak_step()
        .is_none()
    );
}

#[test]
fn a_log_increase_series_is_followed_without_an_observed_peak() {
    // A middle-layer shape: a log rise whose peak (if any) lies far past the last step.
    let truth = DynamicsParams {
        a: 300.0,
        lambda: 0.0,
        gamma: 5e-5,
        t0: 1.5,
        k: 20.0,
    };
    let t = pythia_steps();
    let clean: Vec<f64> = t.iter().map(|&s| truth.eval(s)).collect();
    let y: Vec<f64> = clean
        .iter()
        .zip(noise(t.len(), 1.0, 3))
        .map(|(c, e)| c + e)
        .collect();
    let fit = fit_dynamics("log rise", &t, &y, &FitConfig::default()).unwrap();
    assert!(fit.r2 > 0.999, "{fit:?}");
    assert!(fit.params.lambda >= 0.0, "{fit:?}");
    assert!(!fit.peak_observed, "{fit:?}");
    let worst = t
        .iter()
        .zip(&clean)
        .map(|(&s, c)| (fit.params.eval(s) - c).abs())
        .fold(0.0, f64::max);
    assert!(worst < 2.0, "worst deviation {worst}");
}

fn bad(t: &[f64], y: &[f64]) -> String {
    let err = fit_dynamics("layer 3 ratio", t, y, &FitConfig::default()).unwrap_err();
    assert!(matches!(err, Error::BadData { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.starts_with("layer 3 ratio: "), "{text}");
    text
}

#[test]
fn fewer_points_than_parameters_and_other_bad_series_are_refused() {
    let t = [0.0, 1.0, 2.0, 4.0, 8.0];
    let y = [1.0, 2.0, 3.0, 2.5, 2.0];
    let err = bad(&t, &y);
    assert!(
        err.contains("5 points for 5 parameters") && err.contains("at least 6"),
        "{err}"
    );
    let err = bad(&t[..3], &y[..3]);
    assert!(err.contains("3 points"), "{err}");
    let t6 = [0.0, 1.0, 2.0, 4.0, 8.0, 16.0];
    assert!(bad(&t6, &[1.0; 6]).contains("constant"));
    assert!(bad(&t6, &[1.0, 2.0, f64::NAN, 2.0, 1.0, 1.0]).contains("point 2 is not finite"));
    assert!(bad(&t6, &[1.0; 5]).contains("6 steps but 5 values"));
    assert!(
        bad(
            &[-1.0, 1.0, 2.0, 4.0, 8.0, 16.0],
            &[1.0, 2.0, 3.0, 2.0, 1.0, 1.0]
        )
        .contains("negative step")
    );
    assert!(bad(&[5.0; 6], &[1.0, 2.0, 3.0, 2.0, 1.0, 1.0]).contains("same step"));
}

#[test]
fn a_series_that_wants_a_negative_decay_rate_holds_it_at_zero() {
    // Drawn from lambda = -0.3 (a rise that accelerates), which the bound lambda >= 0
    // forbids: the fit is the best curve with lambda = 0.
    let truth = DynamicsParams {
        a: 5.0,
        lambda: -0.3,
        gamma: 0.02,
        t0: 1.2,
        k: 1.0,
    };
    let t: Vec<f64> = [
        0.0, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 50.0, 100.0, 150.0, 200.0,
    ]
    .to_vec();
    let y: Vec<f64> = t.iter().map(|&s| truth.eval(s)).collect();
    let fit = fit_dynamics(
        "accelerating",
        &t,
        &y,
        // From the spec's single start (more starts find an interior optimum here).
        &FitConfig {
            multi_start: false,
            ..FitConfig::default()
        },
    )
    .unwrap();
    assert!(fit.lambda_at_bound, "{fit:?}");
    assert_eq!(fit.params.lambda, 0.0);
    assert!(fit.peak_step.is_none() && !fit.peak_observed);
    assert!(fit.r2 > 0.9 && fit.r2 < 1.0, "{fit:?}");
}

#[test]
fn a_falling_series_is_fitted() {
    // A ratio that falls over training (as in the first steps of a tiny model): the spec's
    // single start stalls on a flat curve; the extra starts find the fall.
    let truth = DynamicsParams {
        a: -2.0,
        lambda: 0.0,
        gamma: 0.5,
        t0: 1.0,
        k: 6.0,
    };
    let t = [0.0, 1.0, 2.0, 4.0, 6.0, 8.0, 10.0, 12.0, 14.0, 16.0];
    let y: Vec<f64> = t
        .iter()
        .zip(noise(t.len(), 0.02, 11))
        .map(|(&s, e)| truth.eval(s) + e)
        .collect();
    let fit = fit_dynamics("falling", &t, &y, &FitConfig::default()).unwrap();
    assert!(fit.r2 > 0.99, "{fit:?}");
    let single = FitConfig {
        multi_start: false,
        ..FitConfig::default()
    };
    let one = fit_dynamics("falling", &t, &y, &single).unwrap();
    assert!(one.rss >= fit.rss - 1e-12, "more starts never fit worse");
    let original_only = FitConfig {
        reparametrized: false,
        ..FitConfig::default()
    };
    let eq9 = fit_dynamics("falling", &t, &y, &original_only).unwrap();
    assert!(eq9.rss >= fit.rss - 1e-12, "adding Eq. 14 never fits worse");
    assert!(!eq9.reparametrized);
}

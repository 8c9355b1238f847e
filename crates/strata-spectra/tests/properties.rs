//! Property tests of the spectral metrics against their definitions (`book/src/kappa-method.md`,
//! "Definitions" and "Property tests"), with an independent Jacobi SVD as the reference.

mod common;

use common::{
    gaussian, jacobi_singular_values, matmul, normal, orthogonal, rel_err, rng, transpose,
};
use strata_spectra::{
    KappaFloor, SpectraConfig, SpectrumMethod, SpectrumMetrics, SpectrumPath, TensorStatus,
    analyze_matrix, fit_powerlaw, singular_values,
};

fn metrics(rows: usize, cols: usize, data: &[f32], config: &SpectraConfig) -> SpectrumMetrics {
    analyze_matrix("w", rows, cols, data, config)
        .expect("shape matches")
        .metrics
        .expect("finite nonzero matrix has metrics")
}

/// `U diag(s) V^T` rounded to f32, for a prescribed spectrum `s` (rows >= cols = s.len()).
fn with_spectrum(seed: u64, rows: usize, spectrum: &[f64]) -> Vec<f32> {
    let cols = spectrum.len();
    let mut g = rng(seed);
    let u_full = orthogonal(&mut g, rows);
    let v = orthogonal(&mut g, cols);
    // U[:, :cols] diag(s)
    let mut us = vec![0.0; rows * cols];
    for r in 0..rows {
        for c in 0..cols {
            us[r * cols + c] = u_full[r * rows + c] * spectrum[c];
        }
    }
    let w = matmul(&us, &transpose(&v, cols, cols), rows, cols, cols);
    w.into_iter().map(|x| x as f32).collect()
}

#[test]
fn kappa_is_invariant_to_scaling() {
    let config = SpectraConfig::default();
    let mut g = rng(1);
    let (rows, cols) = (24, 40);
    let w = gaussian(&mut g, rows, cols);
    let base = metrics(rows, cols, &w, &config);
    // Powers of two scale f32 values exactly, so kappa must agree to rounding of the solver.
    for c in [0.25f32, 8.0, -4.0, 1024.0] {
        let scaled: Vec<f32> = w.iter().map(|x| x * c).collect();
        let m = metrics(rows, cols, &scaled, &config);
        assert!(
            rel_err(m.kappa, base.kappa) < 1e-12,
            "c = {c}: {} vs {}",
            m.kappa,
            base.kappa
        );
    }
    // Other factors round each entry (relative 6e-8), which moves kappa by about kappa * 6e-8.
    for c in [3.0f32, -0.7, 1e-3, 1e3] {
        let scaled: Vec<f32> = w.iter().map(|x| x * c).collect();
        let m = metrics(rows, cols, &scaled, &config);
        assert!(
            rel_err(m.kappa, base.kappa) < 1e-5,
            "c = {c}: {} vs {}",
            m.kappa,
            base.kappa
        );
    }
}

#[test]
fn kappa_is_invariant_to_transposition() {
    let config = SpectraConfig::default();
    let mut g = rng(2);
    for (rows, cols) in [(10, 30), (30, 10), (17, 17)] {
        let w = gaussian(&mut g, rows, cols);
        let wt = transpose(&w, rows, cols);
        let a = metrics(rows, cols, &w, &config);
        let b = metrics(cols, rows, &wt, &config);
        assert!(rel_err(a.kappa, b.kappa) < 1e-10, "{rows}x{cols}");
        assert!(rel_err(a.log_volume, b.log_volume) < 1e-10);
    }
}

#[test]
fn kappa_is_invariant_to_orthogonal_rotation() {
    let config = SpectraConfig::default();
    let mut g = rng(3);
    let (rows, cols) = (20, 12);
    let w = gaussian(&mut g, rows, cols);
    let base = metrics(rows, cols, &w, &config);
    let u = orthogonal(&mut g, rows);
    let v = orthogonal(&mut g, cols);
    let w64: Vec<f64> = w.iter().map(|&x| f64::from(x)).collect();
    let rotated = matmul(&matmul(&u, &w64, rows, rows, cols), &v, rows, cols, cols);
    let rotated: Vec<f32> = rotated.into_iter().map(|x| x as f32).collect();
    let m = metrics(rows, cols, &rotated, &config);
    // Rounding U W V to f32 perturbs each singular value by about eps_f32 * s_max.
    let tolerance = 4.0 * f64::from(f32::EPSILON) * base.kappa;
    assert!(
        rel_err(m.kappa, base.kappa) < tolerance,
        "{} vs {}",
        m.kappa,
        base.kappa
    );
}

#[test]
fn orthogonal_matrix_has_kappa_one_and_zero_log_volume() {
    let config = SpectraConfig::default();
    let q: Vec<f32> = orthogonal(&mut rng(4), 16)
        .into_iter()
        .map(|x| x as f32)
        .collect();
    let m = metrics(16, 16, &q, &config);
    assert!((m.kappa - 1.0).abs() < 1e-6, "kappa {}", m.kappa);
    assert!(m.log_volume.abs() < 1e-5, "log volume {}", m.log_volume);
    assert!((m.stable_rank - 16.0).abs() < 1e-4);
    assert!((m.spectral_entropy - 1.0).abs() < 1e-6);
    // kappa = 1 attains the fixed-Frobenius entropy bound.
    assert!((m.entropy_bound - m.entropy).abs() < 1e-4);
}

#[test]
fn diagonal_matrix_has_the_ratio_of_its_extremes() {
    let config = SpectraConfig::default();
    let n = 8;
    let mut d = vec![0.0f32; n * n];
    for i in 0..n {
        d[i * n + i] = 1.0;
    }
    d[n * n - 1] = 1e-3;
    let m = metrics(n, n, &d, &config);
    assert!(rel_err(m.kappa, 1e3) < 1e-6);
    assert!(rel_err(m.log_volume, (1e-3f64).ln()) < 1e-6);
}

#[test]
fn log_volume_is_additive_under_scaling() {
    let config = SpectraConfig::default();
    let mut g = rng(5);
    let (rows, cols) = (12, 20);
    let k = rows.min(cols) as f64;
    let w = gaussian(&mut g, rows, cols);
    let base = metrics(rows, cols, &w, &config);
    for c in [2.0f32, 0.125, -16.0, 3.0, -0.3] {
        let scaled: Vec<f32> = w.iter().map(|x| x * c).collect();
        let m = metrics(rows, cols, &scaled, &config);
        let expected = base.log_volume + k * f64::from(c.abs()).ln();
        assert!(
            (m.log_volume - expected).abs() < 1e-5 * k,
            "c = {c}: {} vs {expected}",
            m.log_volume
        );
        // The normalized log-volume is scale-invariant.
        assert!((m.normalized_log_volume - base.normalized_log_volume).abs() < 1e-5);
    }
}

#[test]
fn log_volume_lies_within_its_kappa_bounds() {
    // -(k - 1) ln kappa <= sum ln(s_i / s_1) <= -ln kappa (book/src/kappa-method.md, definition 4).
    let config = SpectraConfig::default();
    let mut g = rng(6);
    for (rows, cols) in [(8, 8), (10, 25), (40, 9)] {
        let w = gaussian(&mut g, rows, cols);
        let m = metrics(rows, cols, &w, &config);
        let k = rows.min(cols) as f64;
        let relative = m.normalized_log_volume * k;
        let ln_kappa = m.kappa.ln();
        assert!(relative <= -ln_kappa + 1e-9);
        assert!(relative >= -(k - 1.0) * ln_kappa - 1e-9);
    }
}

#[test]
fn log_volume_falls_as_kappa_rises_at_fixed_frobenius_norm() {
    // book/src/kappa-method.md, definition 5: k = 4, F = 5, geometric spectra.
    const EXPECTED: [(f64, f64); 5] = [
        (1.0, 3.67),
        (2.0, 3.41),
        (10.0, 1.35),
        (100.0, -2.87),
        (1000.0, -7.40),
    ];
    let config = SpectraConfig::default();
    let mut previous = f64::INFINITY;
    for (kappa, expected_lv) in EXPECTED {
        let ratio = kappa.powf(-1.0 / 3.0);
        let raw: Vec<f64> = (0..4).map(|i| ratio.powi(i)).collect();
        let norm = raw.iter().map(|s| s * s).sum::<f64>().sqrt();
        let spectrum: Vec<f64> = raw.iter().map(|s| 5.0 * s / norm).collect();
        let m = SpectrumMetrics::from_singular_values(&spectrum, 4, 4, &config).expect("nonzero");
        assert!(
            (m.log_volume - expected_lv).abs() < 0.01,
            "kappa {kappa}: {}",
            m.log_volume
        );
        assert!(m.log_volume < previous);
        assert!(m.entropy <= m.entropy_bound + 1e-12);
        previous = m.log_volume;
    }
}

/// Kozachenko-Leonenko k-nearest-neighbour entropy estimate (nats) of samples in R^d: knows
/// nothing about Gaussians or singular values.
fn knn_entropy(samples: &[Vec<f64>], k: usize) -> f64 {
    let n = samples.len();
    let d = samples[0].len();
    let digamma = |x: usize| -> f64 {
        // psi(x) for integer x: -gamma + sum_{j < x} 1/j.
        -0.577_215_664_901_532_9 + (1..x).map(|j| 1.0 / j as f64).sum::<f64>()
    };
    let mut sum_log = 0.0;
    for (i, xi) in samples.iter().enumerate() {
        let mut dists: Vec<f64> = samples
            .iter()
            .enumerate()
            .filter(|&(j, _)| j != i)
            .map(|(_, xj)| {
                xi.iter()
                    .zip(xj)
                    .map(|(a, b)| (a - b) * (a - b))
                    .sum::<f64>()
                    .sqrt()
            })
            .collect();
        dists.select_nth_unstable_by(k - 1, f64::total_cmp);
        sum_log += dists[k - 1].ln();
    }
    let half_d = d as f64 / 2.0;
    // Volume of the unit d-ball: pi^(d/2) / Gamma(d/2 + 1); d = 2 -> pi.
    assert_eq!(d, 2, "this helper's ball volume is for d = 2");
    let log_unit_ball = std::f64::consts::PI.ln();
    let _ = half_d;
    digamma(n) - digamma(k) + log_unit_ball + d as f64 * sum_log / n as f64
}

#[test]
fn entropy_formula_matches_a_monte_carlo_estimate() {
    // y = W x, W in R^{2x3}, x ~ N(0, s^2 I_3): h(y) = (2/2) ln(2 pi e s^2) + sum ln s_i.
    let input_std = 0.7;
    let config = SpectraConfig {
        input_std,
        ..SpectraConfig::default()
    };
    let w: [f32; 6] = [1.2, -0.4, 0.3, 0.5, 0.9, -1.1];
    let m = metrics(2, 3, &w, &config);

    let mut g = rng(7);
    let n_samples = 3000;
    let samples: Vec<Vec<f64>> = (0..n_samples)
        .map(|_| {
            let x: Vec<f64> = (0..3).map(|_| input_std * normal(&mut g)).collect();
            (0..2)
                .map(|r| (0..3).map(|c| f64::from(w[r * 3 + c]) * x[c]).sum())
                .collect()
        })
        .collect();
    let estimate = knn_entropy(&samples, 4);
    assert!(
        (estimate - m.entropy).abs() < 0.08,
        "monte carlo {estimate} vs formula {}",
        m.entropy
    );
    assert!(m.entropy <= m.entropy_bound);
}

#[test]
fn gram_and_svd_paths_agree_with_an_independent_jacobi_svd() {
    let gram = SpectraConfig {
        method: SpectrumMethod::Gram,
        ..SpectraConfig::default()
    };
    let svd = SpectraConfig {
        method: SpectrumMethod::Svd,
        ..SpectraConfig::default()
    };
    let mut g = rng(8);
    // Long sides above 256 span several of the Gram path's f64 blocks.
    for (rows, cols) in [(30, 70), (70, 30), (48, 48), (5, 200), (12, 600), (700, 9)] {
        let w = gaussian(&mut g, rows, cols);
        let reference = jacobi_singular_values(&w, rows, cols);
        let (s_gram, path, bound) = singular_values(rows, cols, &w, &gram).expect("converges");
        assert_eq!(path, SpectrumPath::Gram);
        let bound = bound.expect("gram path reports a bound");
        let (s_svd, path, _) = singular_values(rows, cols, &w, &svd).expect("converges");
        assert_eq!(path, SpectrumPath::Svd);
        for i in 0..reference.len() {
            assert!(
                rel_err(s_svd[i], reference[i]) < 1e-12,
                "svd {rows}x{cols} s_{i}"
            );
            // The Gram bound holds for every singular value (s_min is the worst case).
            let err = rel_err(s_gram[i], reference[i]);
            assert!(
                err <= bound + 1e-15,
                "gram {rows}x{cols} s_{i}: {err} > bound {bound}"
            );
        }
    }
}

#[test]
fn auto_path_falls_back_to_svd_for_ill_conditioned_matrices() {
    let config = SpectraConfig::default();
    // kappa = 1e6: sigma_min^2 / sigma_max^2 = 1e-12, far below the Gram path's resolution.
    let spectrum: Vec<f64> = (0..12)
        .map(|i| 10f64.powf(-6.0 * i as f64 / 11.0))
        .collect();
    let w = with_spectrum(9, 30, &spectrum);
    let reference = jacobi_singular_values(&w, 30, 12);
    let (s, path, bound) = singular_values(30, 12, &w, &config).expect("converges");
    assert_eq!(path, SpectrumPath::Svd);
    assert!(bound.expect("gram ran first") > config.gram_tolerance);
    let s_min = *s.last().expect("12 values");
    assert!(
        rel_err(s_min, reference[11]) < 1e-7,
        "{s_min} vs {}",
        reference[11]
    );

    // A well-conditioned matrix stays on the Gram path.
    let spectrum: Vec<f64> = (0..12).map(|i| 1.0 + i as f64 / 11.0).collect();
    let w = with_spectrum(10, 30, &spectrum);
    let (_, path, _) = singular_values(30, 12, &w, &config).expect("converges");
    assert_eq!(path, SpectrumPath::Gram);
}

#[test]
fn prescribed_spectrum_gives_prescribed_kappa() {
    let config = SpectraConfig::default();
    let spectrum = [50.0, 20.0, 7.0, 3.0, 0.5];
    let w = with_spectrum(11, 9, &spectrum);
    let m = metrics(9, 5, &w, &config);
    assert!(rel_err(m.kappa, 100.0) < 1e-5, "kappa {}", m.kappa);
    assert!(rel_err(m.s_max, 50.0) < 1e-6);
    let f2: f64 = spectrum.iter().map(|s| s * s).sum();
    assert!(rel_err(m.stable_rank, f2 / 2500.0) < 1e-5);
    assert!(rel_err(m.frobenius_norm, f2.sqrt()) < 1e-6);
}

#[test]
fn zero_singular_values_are_floored_or_infinite_never_nan() {
    // A zero row: rank 4 in a 5 x 7 matrix.
    let mut g = rng(12);
    let mut w = gaussian(&mut g, 5, 7);
    w[14..21].iter_mut().for_each(|x| *x = 0.0);

    let strata = metrics(5, 7, &w, &SpectraConfig::strata());
    assert!(strata.kappa_floored && strata.rank_deficient);
    assert!(
        rel_err(strata.kappa, 1e7) < 1e-9,
        "floored kappa {}",
        strata.kappa
    );

    let peft = metrics(5, 7, &w, &SpectraConfig::peft());
    assert!(rel_err(peft.kappa, peft.s_max / (peft.s_min + 1e-8)) < 1e-12);
    assert!(peft.kappa > 1e7);

    let kt = metrics(5, 7, &w, &SpectraConfig::kappatune());
    assert!(!kt.kappa.is_nan());
    assert!(kt.kappa > 1e12, "kappatune kappa {}", kt.kappa);
    assert!(kt.rank_deficient);
}

#[test]
fn kappa_floor_policies_follow_their_formulas() {
    use strata_spectra::kappa_with_floor;
    assert_eq!(
        kappa_with_floor(2.0, 0.0, KappaFloor::None),
        (f64::INFINITY, true)
    );
    assert_eq!(kappa_with_floor(2.0, 0.5, KappaFloor::None), (4.0, false));
    assert_eq!(
        kappa_with_floor(2.0, 0.0, KappaFloor::Relative { eps: 1e-7 }),
        (1e7, true)
    );
    assert_eq!(
        kappa_with_floor(2.0, 0.5, KappaFloor::Relative { eps: 1e-7 }),
        (4.0, false)
    );
    let (k, _) = kappa_with_floor(2.0, 0.0, KappaFloor::Additive { eps: 1e-8 });
    assert_eq!(k, 2e8);
}

#[test]
fn non_finite_and_zero_matrices_are_reported_not_computed() {
    let config = SpectraConfig::default();
    let mut w = vec![1.0f32; 12];
    w[3] = f32::NAN;
    w[7] = f32::INFINITY;
    let unit = analyze_matrix("bad", 3, 4, &w, &config).expect("shape matches");
    assert_eq!(unit.status, TensorStatus::NonFinite { n_nan: 1, n_inf: 1 });
    assert!(unit.metrics.is_none());

    let zero = analyze_matrix("zero", 3, 4, &[0.0; 12], &config).expect("shape matches");
    assert_eq!(zero.status, TensorStatus::ZeroMatrix);

    let err = analyze_matrix("short", 3, 4, &[1.0; 11], &config).unwrap_err();
    assert!(err.to_string().contains("`short`"), "{err}");
}

#[test]
fn powerlaw_fit_recovers_a_pareto_exponent() {
    // Eigenvalues drawn from p(x) ~ x^-alpha on [xmin, inf): inverse-CDF sampling.
    let mut g = rng(13);
    for alpha in [2.5f64, 4.0] {
        let xmin = 0.3;
        let samples: Vec<f64> = (0..3000)
            .map(|_| {
                let u: f64 = rand::Rng::random::<f64>(&mut g).max(1e-12);
                xmin * u.powf(-1.0 / (alpha - 1.0))
            })
            .collect();
        let fit = fit_powerlaw(&samples, 1e-5).expect("enough eigenvalues");
        assert!(
            (fit.alpha - alpha).abs() < 0.15,
            "alpha {alpha}: fitted {}",
            fit.alpha
        );
        assert!(fit.ks_distance < 0.05);
        assert!(fit.xmin >= xmin);
    }
    assert!(
        fit_powerlaw(&[1.0; 5], 1e-5).is_none(),
        "fewer than MIN_EVALS values"
    );
}

#[test]
fn powerlaw_matches_a_direct_transcription_of_the_definition() {
    // Direct O(n^2) transcription: alpha(xmin) = 1 + n / sum ln(x / xmin), D = max |F_fit - j/n|.
    let mut g = rng(14);
    let eigenvalues: Vec<f64> = (0..200).map(|_| normal(&mut g).powi(2) + 1e-3).collect();
    let mut sorted = eigenvalues.clone();
    sorted.sort_by(f64::total_cmp);
    let mut best = (f64::INFINITY, 0.0, 0.0);
    for i in 0..sorted.len() - 1 {
        let tail = &sorted[i..];
        let n = tail.len() as f64;
        let alpha = 1.0 + n / tail.iter().map(|x| (x / sorted[i]).ln()).sum::<f64>();
        let d = if alpha > 1.0 {
            tail.iter()
                .enumerate()
                .map(|(j, x)| (1.0 - (x / sorted[i]).powf(1.0 - alpha) - j as f64 / n).abs())
                .fold(0.0, f64::max)
        } else {
            1.0
        };
        if d < best.0 {
            best = (d, alpha, sorted[i]);
        }
    }
    let fit = fit_powerlaw(&eigenvalues, 1e-5).expect("enough eigenvalues");
    assert!((fit.ks_distance - best.0).abs() < 1e-12);
    assert!((fit.alpha - best.1).abs() < 1e-9);
    assert_eq!(fit.xmin, best.2);
}

//! Layer scores and the probe direction on inputs whose answers are known by construction.

use rand::{Rng, SeedableRng, rngs::StdRng};
use strata_steer::{Method, aggregate, js_divergence, legacy_ta2_score, score_layer, softmax};

/// The TA2 code's score written as it computes it (`methods/steer.md`, "Layer score
/// (legacy)"): `0.5 * (kl_div(p, M) + kl_div(q, M))` with PyTorch's pointwise
/// `kl_div(input, target) = target * (log target - input)`, averaged over elements.
fn kl_div_as_released(a: &[f32], b: &[f32]) -> f64 {
    let (p, q) = (softmax(a), softmax(b));
    let n = p.len() as f64;
    let m: Vec<f64> = p.iter().zip(&q).map(|(x, y)| (x + y) / 2.0).collect();
    let kl = |input: &[f64]| -> f64 {
        input
            .iter()
            .zip(&m)
            .map(|(i, t)| t * (t.ln() - i))
            .sum::<f64>()
            / n
    };
    0.5 * (kl(&p) + kl(&q))
}

#[test]
fn legacy_ta2_score_is_the_released_kl_div_misuse() {
    let mut rng = StdRng::seed_from_u64(7);
    for _ in 0..5 {
        let a: Vec<f32> = (0..32).map(|_| rng.random_range(-3.0..3.0)).collect();
        let b: Vec<f32> = (0..32).map(|_| rng.random_range(-3.0..3.0)).collect();
        let got = legacy_ta2_score(&a, &b);
        let want = kl_div_as_released(&a, &b);
        assert!((got - want).abs() < 1e-12, "{got} vs {want}");
        // The true JS is non-negative and vanishes only for equal distributions.
        assert!(js_divergence(&a, &b) > 0.0);
        assert!(js_divergence(&a, &a).abs() < 1e-12);
        // Against the textbook formula on probabilities, where nothing underflows.
        let (p, q) = (softmax(&a), softmax(&b));
        let m: Vec<f64> = p.iter().zip(&q).map(|(x, y)| (x + y) / 2.0).collect();
        let kl = |x: &[f64]| -> f64 { x.iter().zip(&m).map(|(xi, mi)| xi * (xi / mi).ln()).sum() };
        let textbook = (kl(&p) + kl(&q)) / 2.0;
        assert!((js_divergence(&a, &b) - textbook).abs() < 1e-12);
    }
    // A massive activation makes most probabilities underflow; the divergence stays finite
    // and within its bound ln 2.
    let mut a = vec![0.0f32; 64];
    let mut b = vec![0.0f32; 64];
    a[3] = 900.0;
    b[5] = 900.0;
    let js = js_divergence(&a, &b);
    assert!(
        js.is_finite() && (js - std::f64::consts::LN_2).abs() < 1e-9,
        "{js}"
    );
}

#[test]
fn a_planted_direction_is_found_and_scored() {
    // Positives = noise + 3 * e_0, negatives = noise: the direction is e_0.
    let (n, d) = (40, 16);
    let mut rng = StdRng::seed_from_u64(11);
    let mut noise = || -> Vec<f32> { (0..n * d).map(|_| rng.random_range(-0.5..0.5)).collect() };
    let neg = noise();
    let mut pos = noise();
    for i in 0..n {
        pos[i * d] += 3.0;
    }
    for method in [Method::MeanDiff, Method::Pca, Method::Probe] {
        let v = aggregate(method, &pos, &neg, d).unwrap();
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!(
            v[0] / norm > 0.9,
            "{method}: cos with e_0 = {}",
            v[0] / norm
        );
    }
    let score = score_layer(0, &pos, &neg, d).unwrap();
    assert_eq!(score.probe_accuracy, Some(1.0));
    assert!(score.separation > 5.0, "{}", score.separation);
    // With no planted direction the held-out probe is near chance and separation small.
    let neg2 = noise();
    let chance = score_layer(0, &noise(), &neg2, d).unwrap();
    assert!(
        chance.probe_accuracy.unwrap() < 0.85,
        "{:?}",
        chance.probe_accuracy
    );
    assert!(chance.separation < score.separation / 2.0);
}

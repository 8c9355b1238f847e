//! Helpers shared by the strata-spectra tests: seeded random matrices and an independent
//! one-sided Jacobi SVD in f64, used as the reference for singular values.

#![allow(dead_code)]

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// A seeded generator, so every test is reproducible.
pub fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

/// A standard normal sample (Box-Muller).
pub fn normal(rng: &mut StdRng) -> f64 {
    let u1: f64 = rng.random::<f64>().max(1e-300);
    let u2: f64 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// A row-major `[rows, cols]` matrix of standard normal f32 values.
pub fn gaussian(rng: &mut StdRng, rows: usize, cols: usize) -> Vec<f32> {
    (0..rows * cols).map(|_| normal(rng) as f32).collect()
}

/// A random orthogonal `n x n` matrix (row-major f64), by Gram-Schmidt on a Gaussian matrix.
pub fn orthogonal(rng: &mut StdRng, n: usize) -> Vec<f64> {
    let mut q: Vec<Vec<f64>> = Vec::with_capacity(n);
    while q.len() < n {
        let mut v: Vec<f64> = (0..n).map(|_| normal(rng)).collect();
        for _ in 0..2 {
            for u in &q {
                let dot: f64 = v.iter().zip(u).map(|(a, b)| a * b).sum();
                v.iter_mut().zip(u).for_each(|(a, b)| *a -= dot * b);
            }
        }
        let norm = v.iter().map(|a| a * a).sum::<f64>().sqrt();
        if norm > 1e-8 {
            q.push(v.into_iter().map(|a| a / norm).collect());
        }
    }
    q.concat()
}

/// Row-major product of `[m, k]` and `[k, n]` f64 matrices.
pub fn matmul(a: &[f64], b: &[f64], m: usize, k: usize, n: usize) -> Vec<f64> {
    let mut c = vec![0.0; m * n];
    for i in 0..m {
        for p in 0..k {
            let a_ip = a[i * k + p];
            for j in 0..n {
                c[i * n + j] += a_ip * b[p * n + j];
            }
        }
    }
    c
}

/// Transpose of a row-major `[rows, cols]` matrix.
pub fn transpose<T: Copy>(a: &[T], rows: usize, cols: usize) -> Vec<T> {
    let mut t = Vec::with_capacity(a.len());
    for c in 0..cols {
        for r in 0..rows {
            t.push(a[r * cols + c]);
        }
    }
    t
}

/// Singular values (largest first) by one-sided Jacobi in f64: an algorithm independent of
/// the Gram and bidiagonal paths under test, accurate to a few ulps relative for each value.
pub fn jacobi_singular_values(a: &[f32], rows: usize, cols: usize) -> Vec<f64> {
    // Work on columns of the taller orientation.
    let (m, n, mut cols_data) = if rows >= cols {
        let cols_data: Vec<Vec<f64>> = (0..cols)
            .map(|c| (0..rows).map(|r| f64::from(a[r * cols + c])).collect())
            .collect();
        (rows, cols, cols_data)
    } else {
        let cols_data: Vec<Vec<f64>> = (0..rows)
            .map(|r| (0..cols).map(|c| f64::from(a[r * cols + c])).collect())
            .collect();
        (cols, rows, cols_data)
    };
    let _ = m;
    for _sweep in 0..60 {
        let mut rotated = false;
        for p in 0..n {
            for q in p + 1..n {
                let (alpha, beta, gamma) = {
                    let (cp, cq) = (&cols_data[p], &cols_data[q]);
                    let alpha: f64 = cp.iter().map(|x| x * x).sum();
                    let beta: f64 = cq.iter().map(|x| x * x).sum();
                    let gamma: f64 = cp.iter().zip(cq).map(|(x, y)| x * y).sum();
                    (alpha, beta, gamma)
                };
                if gamma.abs() <= 1e-15 * (alpha * beta).sqrt() || gamma == 0.0 {
                    continue;
                }
                rotated = true;
                let zeta = (beta - alpha) / (2.0 * gamma);
                let t = zeta.signum() / (zeta.abs() + (1.0 + zeta * zeta).sqrt());
                let t = if zeta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (1.0 + t * t).sqrt();
                let s = c * t;
                let (left, right) = cols_data.split_at_mut(q);
                let (cp, cq) = (&mut left[p], &mut right[0]);
                for (x, y) in cp.iter_mut().zip(cq.iter_mut()) {
                    let (xp, yq) = (*x, *y);
                    *x = c * xp - s * yq;
                    *y = s * xp + c * yq;
                }
            }
        }
        if !rotated {
            break;
        }
    }
    let mut values: Vec<f64> = cols_data
        .iter()
        .map(|c| c.iter().map(|x| x * x).sum::<f64>().sqrt())
        .collect();
    values.sort_by(|a, b| b.total_cmp(a));
    values
}

/// `|a - b| / |b|`.
pub fn rel_err(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs()
}

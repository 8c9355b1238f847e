//! Eigenvalues of a symmetric tridiagonal matrix by the root-free (Pal-Walker-Kahan) QL/QR
//! iteration, as LAPACK's `dsterf`: no square root and no eigenvectors in the inner loop,
//! which makes it several times cheaper than rotation-based QR when only eigenvalues are
//! wanted.

/// Eigenvalues of the symmetric tridiagonal matrix with diagonal `d` and off-diagonal `e`
/// (`e[i]` couples `i` and `i + 1`; `e.len() == d.len() - 1`), returned in `d` in
/// nondecreasing order. `e` is overwritten.
///
/// Returns `false` when the iteration does not converge within `30 n` sweeps or the entries
/// are too large or too small to square safely; `d` is then unspecified.
pub(crate) fn tridiagonal_eigenvalues(d: &mut [f64], e: &mut [f64]) -> bool {
    let n = d.len();
    assert_eq!(
        e.len(),
        n.saturating_sub(1),
        "one off-diagonal entry per adjacent pair"
    );
    if n <= 1 {
        return true;
    }
    let max = d
        .iter()
        .chain(e.iter())
        .fold(0.0f64, |acc, v| acc.max(v.abs()));
    if !max.is_finite() || max > 1e150 || (max > 0.0 && max < 1e-150) {
        return false;
    }
    let eps = f64::EPSILON / 2.0;
    let eps2 = eps * eps;
    let max_iterations = 30 * n;
    let mut n_iterations = 0;

    let mut l1 = 0;
    while l1 < n {
        if l1 > 0 {
            e[l1 - 1] = 0.0;
        }
        // Find a small off-diagonal entry that splits the matrix.
        let mut m = l1;
        while m + 1 < n {
            if e[m].abs() <= d[m].abs().sqrt() * d[m + 1].abs().sqrt() * eps {
                e[m] = 0.0;
                break;
            }
            m += 1;
        }
        let (mut l, mut lend) = (l1, m);
        l1 = m + 1;
        if lend == l {
            continue;
        }
        for v in &mut e[l..lend] {
            *v *= *v;
        }
        // QL when the bottom end is larger, QR otherwise (chase towards the small end).
        if d[lend].abs() < d[l].abs() {
            std::mem::swap(&mut l, &mut lend);
        }
        if lend > l {
            // QL iteration on d[l..=lend], e[l..lend] (squared).
            loop {
                let mut m = l;
                while m < lend {
                    if e[m].abs() <= eps2 * (d[m] * d[m + 1]).abs() {
                        break;
                    }
                    m += 1;
                }
                if m < lend {
                    e[m] = 0.0;
                }
                let p = d[l];
                if m == l {
                    // d[l] is an eigenvalue.
                    l += 1;
                    if l > lend {
                        break;
                    }
                    continue;
                }
                if m == l + 1 {
                    let (rt1, rt2) = eigenvalues_2x2(d[l], e[l].sqrt(), d[l + 1]);
                    d[l] = rt1;
                    d[l + 1] = rt2;
                    e[l] = 0.0;
                    l += 2;
                    if l > lend {
                        break;
                    }
                    continue;
                }
                if n_iterations == max_iterations {
                    return false;
                }
                n_iterations += 1;
                let rte = e[l].sqrt();
                let mut sigma = (d[l + 1] - p) / (2.0 * rte);
                let r = sigma.hypot(1.0);
                sigma = p - rte / (sigma + r.copysign(sigma));
                let (mut c, mut s) = (1.0f64, 0.0f64);
                let mut gamma = d[m] - sigma;
                let mut p = gamma * gamma;
                for i in (l..m).rev() {
                    let bb = e[i];
                    let r = p + bb;
                    if i + 1 != m {
                        e[i + 1] = s * r;
                    }
                    let old_c = c;
                    c = p / r;
                    s = bb / r;
                    let old_gamma = gamma;
                    let alpha = d[i];
                    gamma = c * (alpha - sigma) - s * old_gamma;
                    d[i + 1] = old_gamma + (alpha - gamma);
                    p = if c != 0.0 {
                        gamma * gamma / c
                    } else {
                        old_c * bb
                    };
                }
                e[l] = s * p;
                d[l] = sigma + gamma;
            }
        } else {
            // QR iteration on d[lend..=l], e[lend..l] (squared).
            loop {
                let mut m = l;
                while m > lend {
                    if e[m - 1].abs() <= eps2 * (d[m] * d[m - 1]).abs() {
                        break;
                    }
                    m -= 1;
                }
                if m > lend {
                    e[m - 1] = 0.0;
                }
                let p = d[l];
                if m == l {
                    if l == lend {
                        break;
                    }
                    l -= 1;
                    continue;
                }
                if m + 1 == l {
                    let (rt1, rt2) = eigenvalues_2x2(d[l], e[l - 1].sqrt(), d[l - 1]);
                    d[l] = rt1;
                    d[l - 1] = rt2;
                    e[l - 1] = 0.0;
                    if l < lend + 2 {
                        break;
                    }
                    l -= 2;
                    continue;
                }
                if n_iterations == max_iterations {
                    return false;
                }
                n_iterations += 1;
                let rte = e[l - 1].sqrt();
                let mut sigma = (d[l - 1] - p) / (2.0 * rte);
                let r = sigma.hypot(1.0);
                sigma = p - rte / (sigma + r.copysign(sigma));
                let (mut c, mut s) = (1.0f64, 0.0f64);
                let mut gamma = d[m] - sigma;
                let mut p = gamma * gamma;
                for i in m..l {
                    let bb = e[i];
                    let r = p + bb;
                    if i != m {
                        e[i - 1] = s * r;
                    }
                    let old_c = c;
                    c = p / r;
                    s = bb / r;
                    let old_gamma = gamma;
                    let alpha = d[i + 1];
                    gamma = c * (alpha - sigma) - s * old_gamma;
                    d[i] = old_gamma + (alpha - gamma);
                    p = if c != 0.0 {
                        gamma * gamma / c
                    } else {
                        old_c * bb
                    };
                }
                e[l - 1] = s * p;
                d[l] = sigma + gamma;
            }
        }
    }
    d.sort_by(f64::total_cmp);
    true
}

/// Eigenvalues of `[[a, b], [b, c]]`, larger magnitude first (LAPACK's `dlae2`).
fn eigenvalues_2x2(a: f64, b: f64, c: f64) -> (f64, f64) {
    let sm = a + c;
    let adf = (a - c).abs();
    let ab = (b + b).abs();
    let (acmx, acmn) = if a.abs() > c.abs() { (a, c) } else { (c, a) };
    let rt = if adf > ab {
        adf * (1.0 + (ab / adf).powi(2)).sqrt()
    } else if adf < ab {
        ab * (1.0 + (adf / ab).powi(2)).sqrt()
    } else {
        ab * std::f64::consts::SQRT_2
    };
    if sm < 0.0 {
        let rt1 = 0.5 * (sm - rt);
        (rt1, (acmx / rt1) * acmn - (b / rt1) * b)
    } else if sm > 0.0 {
        let rt1 = 0.5 * (sm + rt);
        (rt1, (acmx / rt1) * acmn - (b / rt1) * b)
    } else {
        (0.5 * rt, -0.5 * rt)
    }
}

#[cfg(test)]
mod tests {
    use super::tridiagonal_eigenvalues;

    /// The `n x n` matrix with 2 on the diagonal and -1 beside it has eigenvalues
    /// `2 - 2 cos(j pi / (n + 1))`, `j = 1..=n` (the 1-D discrete Laplacian).
    #[test]
    fn laplacian_eigenvalues_match_the_closed_form() {
        for n in [1, 2, 3, 7, 50, 301] {
            let mut d = vec![2.0; n];
            let mut e = vec![-1.0; n - 1];
            assert!(tridiagonal_eigenvalues(&mut d, &mut e));
            for (j, lambda) in d.iter().enumerate() {
                let expected =
                    2.0 - 2.0 * ((j + 1) as f64 * std::f64::consts::PI / (n + 1) as f64).cos();
                assert!(
                    (lambda - expected).abs() < 1e-13,
                    "n {n} j {j}: {lambda} vs {expected}"
                );
            }
        }
    }

    /// A diagonal matrix (all couplings zero) keeps its diagonal, sorted; a graded one with a
    /// tiny coupling keeps its tiny eigenvalue to high relative accuracy.
    #[test]
    fn split_and_graded_matrices() {
        let mut d = vec![3.0, -1.0, 2.0, 0.0];
        let mut e = vec![0.0; 3];
        assert!(tridiagonal_eigenvalues(&mut d, &mut e));
        assert_eq!(d, [-1.0, 0.0, 2.0, 3.0]);

        // [[1, 1e-9], [1e-9, 1e-12]] + a decoupled 5: eigenvalues 5, ~1, ~1e-12 - 1e-18.
        let mut d = vec![1.0, 1e-12, 5.0];
        let mut e = vec![1e-9, 0.0];
        assert!(tridiagonal_eigenvalues(&mut d, &mut e));
        assert!((d[0] - (1e-12 - 1e-18)).abs() < 1e-24, "{}", d[0]);
        assert!((d[1] - (1.0 + 1e-18)).abs() < 1e-15);
        assert_eq!(d[2], 5.0);
    }
}

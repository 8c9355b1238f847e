//! Singular values from the eigenvalues of the f64 Gram matrix on the short side: the fast
//! path, with its error bound.
//!
//! For `W` of shape `[rows, cols]` with `k = min(rows, cols)` and `n = max(rows, cols)`, the
//! Gram matrix `G = W W^T` (or `W^T W`, whichever is `k x k`) has eigenvalues `lambda_i =
//! s_i^2`: exactly the empirical spectral density WeightWatcher fits. Forming `G` costs
//! `k^2 n` multiply-adds (only its lower triangle is computed) and its symmetric eigenvalues
//! `O(k^3)`, against `O(k^2 n)` with a much larger constant for a bidiagonal SVD.
//!
//! # Accuracy bound
//!
//! The f32 weights are widened to f64, so every product `w_ij w_kj` is exact and only the
//! `n`-term sums round: the computed `G + E` has `|E| <= n u |W||W|^T` elementwise, hence
//! `||E||_2 <= n u ||W||_F^2`, with `u = 2^-53` (Higham, *Accuracy and Stability of Numerical
//! Algorithms*, 2nd ed., sec. 3.5). The eigensolver (Householder tridiagonalization, then the
//! root-free QL iteration of LAPACK's `dsterf`) is backward stable, adding at
//! most about `k u ||G||_2 = k u s_max^2`. By Weyl's inequality every eigenvalue then moves by
//! at most
//!
//! ```text
//! delta = u (n ||W||_F^2 + k s_max^2)
//! ```
//!
//! and since `|s'_i - s_i| = |lambda'_i - lambda_i| / (s'_i + s_i)`, the relative error of a
//! singular value is at most `delta / lambda_i`. The bound is worst for `s_min`:
//! `rel_err(s_min) <= delta / s_min^2`, about `u (n * stable_rank + k) * kappa^2`. Worst-case
//! sums are rare; typical errors are near `sqrt(n)` times smaller. [`gram_singular_values`]
//! returns this bound so the caller can fall back to an SVD when it is too large; the large
//! singular values (and so `s_max`, the Frobenius norm and the stable rank) are accurate to
//! about `delta / s_max^2 <= u (n * stable_rank + k)` whatever `kappa` is.

use faer::diag::Diag;
use faer::dyn_stack::{MemBuffer, MemStack};
use faer::linalg::evd::tridiag::{tridiag_in_place, tridiag_in_place_scratch};
use faer::linalg::evd::{ComputeEigenvectors, self_adjoint_evd, self_adjoint_evd_scratch};
use faer::linalg::matmul::triangular::{BlockStructure, matmul};
use faer::linalg::qr::no_pivoting::factor::recommended_block_size;
use faer::{Accum, Mat, Par};

use crate::tridiagonal::tridiagonal_eigenvalues;

/// Unit roundoff of f64, `2^-53`.
const F64_UNIT_ROUNDOFF: f64 = f64::EPSILON / 2.0;

/// Singular values found through the Gram matrix, with the bound on their relative error.
#[derive(Debug, Clone)]
pub(crate) struct GramSpectrum {
    /// Singular values, largest first; `min(rows, cols)` of them.
    pub singular_values: Vec<f64>,
    /// Bound on the relative error of the smallest singular value (`+inf` when the smallest
    /// eigenvalue is below the absolute error, i.e. `s_min` is not resolved).
    pub rel_error_bound: f64,
}

/// Columns of the long dimension widened to f64 at a time while the Gram matrix is formed.
const BLOCK: usize = 256;

/// Singular values of the row-major `[rows, cols]` f32 matrix `data` through the eigenvalues
/// of its f64 Gram matrix.
///
/// The Gram matrix is accumulated over blocks of [`BLOCK`] rows or columns of the long side,
/// each widened to f64 just before use, so the working memory is the f32 values, the `k x k`
/// Gram matrix and one `k x BLOCK` block. Returns `None` when the eigensolver does not
/// converge.
pub(crate) fn gram_singular_values(rows: usize, cols: usize, data: &[f32]) -> Option<GramSpectrum> {
    let (k, n_long) = (rows.min(cols), rows.max(cols));
    if k == 0 {
        return Some(GramSpectrum {
            singular_values: Vec::new(),
            rel_error_bound: 0.0,
        });
    }
    // G is k x k: W W^T when rows <= cols, else W^T W. Each block X is `width x k`
    // (column-major, one column per short-side index) and contributes X^T X.
    let mut gram = Mat::<f64>::zeros(k, k);
    let mut block = Mat::<f64>::zeros(BLOCK.min(n_long), k);
    for (block_idx, start) in (0..n_long).step_by(BLOCK).enumerate() {
        let width = BLOCK.min(n_long - start);
        for short_idx in 0..k {
            let dst = &mut block
                .col_mut(short_idx)
                .try_as_col_major_mut()
                .expect("a freshly allocated matrix is column-major")
                .as_slice_mut()[..width];
            if rows <= cols {
                // Row `short_idx` of W, columns start..start + width: contiguous.
                let src = &data[short_idx * cols + start..short_idx * cols + start + width];
                dst.iter_mut()
                    .zip(src)
                    .for_each(|(d, &s)| *d = f64::from(s));
            } else {
                // Column `short_idx` of W, rows start..start + width: strided.
                for (t, d) in dst.iter_mut().enumerate() {
                    *d = f64::from(data[(start + t) * cols + short_idx]);
                }
            }
        }
        let x = block.as_ref().subrows(0, width);
        matmul(
            gram.as_mut(),
            BlockStructure::TriangularLower,
            if block_idx == 0 {
                Accum::Replace
            } else {
                Accum::Add
            },
            x.transpose(),
            BlockStructure::Rectangular,
            x,
            BlockStructure::Rectangular,
            1.0,
            Par::Seq,
        );
    }
    let frobenius_sq: f64 = (0..k).map(|i| gram[(i, i)]).sum();

    let eigenvalues = symmetric_eigenvalues(gram)?;
    // Eigenvalues come in nondecreasing order; singular values are reported largest first.
    let singular_values: Vec<f64> = eigenvalues
        .iter()
        .rev()
        .map(|&lambda| lambda.max(0.0).sqrt())
        .collect();
    let lambda_max = singular_values[0] * singular_values[0];
    let delta = F64_UNIT_ROUNDOFF * (n_long as f64 * frobenius_sq + k as f64 * lambda_max);
    let lambda_min = eigenvalues[0];
    let rel_error_bound = if lambda_max == 0.0 {
        0.0
    } else if lambda_min > delta {
        // Relative to the true value: lambda_true >= lambda_min - delta.
        delta / (lambda_min - delta)
    } else {
        f64::INFINITY
    };
    Some(GramSpectrum {
        singular_values,
        rel_error_bound,
    })
}

/// Eigenvalues, nondecreasing, of the symmetric matrix whose lower triangle `gram` holds:
/// Householder tridiagonalization (faer), then the root-free QL/QR iteration of
/// `tridiagonal.rs`; faer's eigensolver takes over if that iteration does not converge.
fn symmetric_eigenvalues(gram: Mat<f64>) -> Option<Vec<f64>> {
    let k = gram.nrows();
    let mut trid = gram.clone();
    let block_size = recommended_block_size::<f64>(k, k);
    let mut householder = Mat::<f64>::zeros(block_size, k.saturating_sub(1));
    let mut buffer = MemBuffer::new(tridiag_in_place_scratch::<f64>(
        k,
        Par::Seq,
        Default::default(),
    ));
    tridiag_in_place(
        trid.as_mut(),
        householder.as_mut(),
        Par::Seq,
        MemStack::new(&mut buffer),
        Default::default(),
    );
    let mut diag: Vec<f64> = (0..k).map(|i| trid[(i, i)]).collect();
    let mut offdiag: Vec<f64> = (0..k.saturating_sub(1)).map(|i| trid[(i + 1, i)]).collect();
    if tridiagonal_eigenvalues(&mut diag, &mut offdiag) {
        return Some(diag);
    }
    tracing::debug!("root-free QL did not converge; using faer's eigensolver");
    let mut eigenvalues = Diag::<f64>::zeros(k);
    let mut buffer = MemBuffer::new(self_adjoint_evd_scratch::<f64>(
        k,
        ComputeEigenvectors::No,
        Par::Seq,
        Default::default(),
    ));
    self_adjoint_evd(
        gram.as_ref(),
        eigenvalues.as_mut(),
        None,
        Par::Seq,
        MemStack::new(&mut buffer),
        Default::default(),
    )
    .ok()?;
    Some(eigenvalues.column_vector().iter().copied().collect())
}

//! Singular values by an f64 SVD: the reference path and the fallback of the Gram path.

use faer::diag::Diag;
use faer::dyn_stack::{MemBuffer, MemStack};
use faer::linalg::svd::{ComputeSvdVectors, svd, svd_scratch};
use faer::{MatRef, Par};

/// Singular values of `a`, largest first, from a bidiagonal SVD in f64 without vectors.
///
/// Returns `None` when the SVD does not converge.
pub(crate) fn svd_singular_values(a: MatRef<'_, f64>) -> Option<Vec<f64>> {
    let (m, n) = a.shape();
    let k = m.min(n);
    if k == 0 {
        return Some(Vec::new());
    }
    // faer reduces the taller orientation best; the singular values do not depend on it.
    let a = if m >= n { a } else { a.transpose() };
    let mut values = Diag::<f64>::zeros(k);
    let scratch = svd_scratch::<f64>(
        a.nrows(),
        a.ncols(),
        ComputeSvdVectors::No,
        ComputeSvdVectors::No,
        Par::Seq,
        Default::default(),
    );
    let mut buffer = MemBuffer::new(scratch);
    svd(
        a,
        values.as_mut(),
        None,
        None,
        Par::Seq,
        MemStack::new(&mut buffer),
        Default::default(),
    )
    .ok()?;
    let mut values: Vec<f64> = values.column_vector().iter().map(|s| s.abs()).collect();
    values.sort_by(|x, y| y.total_cmp(x));
    Some(values)
}

//! The singular values of one matrix: the Gram fast path, the SVD fallback, and the choice
//! between them.

use faer::Mat;
use serde::{Deserialize, Serialize};

use crate::config::{SpectraConfig, SpectrumMethod};
use crate::gram::gram_singular_values;
use crate::svd::svd_singular_values;

/// Which computation produced a unit's singular values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SpectrumPath {
    /// Eigenvalues of the f64 Gram matrix on the short side.
    Gram,
    /// An f64 bidiagonal SVD (chosen, or the fallback when the Gram bound was too large).
    Svd,
}

/// Singular values of one matrix and how they were found.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Spectrum {
    /// Singular values, largest first.
    pub singular_values: Vec<f64>,
    /// The path that produced them.
    pub path: SpectrumPath,
    /// The Gram path's bound on the relative error of `s_min`, when the Gram path ran.
    pub gram_error_bound: Option<f64>,
}

/// Widens a row-major `[rows, cols]` f32 matrix to f64, as the column-major `cols x rows`
/// matrix `W^T` (a straight copy; the singular values are those of `W`).
pub(crate) fn widen(rows: usize, cols: usize, data: &[f32]) -> Mat<f64> {
    debug_assert_eq!(rows * cols, data.len(), "matrix data matches its shape");
    let mut a = Mat::<f64>::zeros(cols, rows);
    for row_idx in 0..rows {
        let src = &data[row_idx * cols..(row_idx + 1) * cols];
        let dst = a
            .col_mut(row_idx)
            .try_as_col_major_mut()
            .expect("a freshly allocated matrix is column-major")
            .as_slice_mut();
        for (d, &s) in dst.iter_mut().zip(src) {
            *d = f64::from(s);
        }
    }
    a
}

/// Singular values of a finite row-major `[rows, cols]` matrix under `config.method`.
///
/// Returns `None` when neither path converges.
pub(crate) fn compute_spectrum(
    rows: usize,
    cols: usize,
    data: &[f32],
    config: &SpectraConfig,
) -> Option<Spectrum> {
    // The f64 copy is made only when the SVD runs; the Gram path widens block by block.
    let svd = |gram_error_bound| {
        let a = widen(rows, cols, data);
        svd_singular_values(a.as_ref()).map(|singular_values| Spectrum {
            singular_values,
            path: SpectrumPath::Svd,
            gram_error_bound,
        })
    };
    match config.method {
        SpectrumMethod::Svd => svd(None),
        SpectrumMethod::Gram => gram_singular_values(rows, cols, data).map(|g| Spectrum {
            singular_values: g.singular_values,
            path: SpectrumPath::Gram,
            gram_error_bound: Some(g.rel_error_bound),
        }),
        SpectrumMethod::Auto => match gram_singular_values(rows, cols, data) {
            Some(g) if g.rel_error_bound <= config.gram_tolerance => Some(Spectrum {
                singular_values: g.singular_values,
                path: SpectrumPath::Gram,
                gram_error_bound: Some(g.rel_error_bound),
            }),
            Some(g) => {
                tracing::debug!(
                    bound = g.rel_error_bound,
                    "gram bound above tolerance, falling back to svd"
                );
                svd(Some(g.rel_error_bound))
            }
            None => svd(None),
        },
    }
}

//! The spectra table as CSV: the output contract of `strata spectra` (`spectra.csv`).
//!
//! One row per analysed unit, in the result's order. The first columns are the contract other
//! tools read: `tensor` (the checkpoint name), `rows`, `cols`, `s_max`, `s_min`, `kappa`,
//! `log_volume`, `stable_rank`, `alpha`; the rest follow [`SPECTRA_COLUMNS`]. Units that could
//! not be analysed have `status` other than `ok` and empty metric cells. Non-finite values are
//! written `inf`, `-inf` or `NaN`.

use std::io::Write;
use std::path::Path;

use strata_spectra::{SpectraResult, TensorSpectrum, UnitPart};

use crate::error::Result;

/// The spectra table's columns, in order.
pub const SPECTRA_COLUMNS: [&str; 31] = [
    "tensor",
    "rows",
    "cols",
    "s_max",
    "s_min",
    "kappa",
    "log_volume",
    "stable_rank",
    "alpha",
    "unit",
    "part",
    "layer",
    "module_type",
    "dtype",
    "n_params",
    "status",
    "kappa_floored",
    "rank_deficient",
    "numerical_rank",
    "normalized_log_volume",
    "entropy",
    "entropy_bound",
    "spectral_norm",
    "frobenius_norm",
    "spectral_entropy",
    "alpha_xmin",
    "alpha_ks_distance",
    "alpha_sigma",
    "alpha_n_tail",
    "path",
    "gram_error_bound",
];

/// Writes the spectra table of `result` to `path`.
pub fn write_spectra_csv(result: &SpectraResult, path: &Path) -> Result<()> {
    strata_core::io::write_atomic(path, |out| {
        let mut out = out;
        write_spectra_rows(result, &mut out)
    })?;
    Ok(())
}

/// Writes the spectra table (header and rows) to any writer.
pub fn write_spectra_rows(result: &SpectraResult, out: &mut impl Write) -> std::io::Result<()> {
    writeln!(out, "{}", SPECTRA_COLUMNS.join(","))?;
    for unit in &result.units {
        writeln!(out, "{}", spectra_row(unit).join(","))?;
    }
    Ok(())
}

/// The cells of one unit's row, in [`SPECTRA_COLUMNS`] order.
pub fn spectra_row(unit: &TensorSpectrum) -> Vec<String> {
    let m = unit.metrics.as_ref();
    let fit = m.and_then(|m| m.powerlaw.as_ref());
    let num = |v: Option<f64>| v.map(format_float).unwrap_or_default();
    let part = match unit.part {
        UnitPart::Whole => "whole".to_string(),
        UnitPart::Expert { expert_idx } => format!("expert={expert_idx}"),
        UnitPart::ExpertMean { n_experts } => format!("expert_mean={n_experts}"),
        UnitPart::Query => "q".into(),
        UnitPart::Key => "k".into(),
        UnitPart::Value => "v".into(),
    };
    vec![
        quote(&unit.tensor),
        unit.rows.to_string(),
        unit.cols.to_string(),
        num(m.map(|m| m.s_max)),
        num(m.map(|m| m.s_min)),
        num(m.map(|m| m.kappa)),
        num(m.map(|m| m.log_volume)),
        num(m.map(|m| m.stable_rank)),
        num(fit.map(|f| f.alpha)),
        quote(&unit.unit),
        part,
        unit.layer_idx.map(|l| l.to_string()).unwrap_or_default(),
        quote(&unit.module_type),
        unit.dtype.clone(),
        unit.n_params.to_string(),
        unit.status.label().to_string(),
        m.map(|m| m.kappa_floored.to_string()).unwrap_or_default(),
        m.map(|m| m.rank_deficient.to_string()).unwrap_or_default(),
        m.map(|m| m.numerical_rank.to_string()).unwrap_or_default(),
        num(m.map(|m| m.normalized_log_volume)),
        num(m.map(|m| m.entropy)),
        num(m.map(|m| m.entropy_bound)),
        num(m.map(|m| m.spectral_norm)),
        num(m.map(|m| m.frobenius_norm)),
        num(m.map(|m| m.spectral_entropy)),
        num(fit.map(|f| f.xmin)),
        num(fit.map(|f| f.ks_distance)),
        num(fit.map(|f| f.sigma)),
        fit.map(|f| f.n_tail.to_string()).unwrap_or_default(),
        unit.path
            .map(|p| format!("{p:?}").to_lowercase())
            .unwrap_or_default(),
        num(unit.gram_error_bound),
    ]
}

/// Shortest round-tripping decimal for finite values; `inf`, `-inf`, `NaN` otherwise.
pub(crate) fn format_float(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "inf".into() } else { "-inf".into() }
    } else {
        format!("{v:?}")
    }
}

/// Quotes a cell when it holds a comma, a quote or a line break (RFC 4180).
pub(crate) fn quote(cell: &str) -> String {
    if cell.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", cell.replace('"', "\"\""))
    } else {
        cell.to_string()
    }
}

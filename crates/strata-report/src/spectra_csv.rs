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

use crate::cells::Cell;
use crate::error::Result;
use crate::parquet_table::{columns_of, parquet_bytes};

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

/// Writes the spectra table of `result` to `path`, and the same table beside it as Parquet
/// (`path` with the extension `parquet`, typed columns).
pub fn write_spectra_csv(result: &SpectraResult, path: &Path) -> Result<()> {
    strata_core::io::write_atomic(path, |out| {
        let mut out = out;
        write_spectra_rows(result, &mut out)
    })?;
    let rows = result.units.iter().map(spectra_cells).collect();
    write_cells_parquet(&path.with_extension("parquet"), &SPECTRA_COLUMNS, rows)
}

/// Writes the spectra table (header and rows) to any writer.
pub fn write_spectra_rows(result: &SpectraResult, out: &mut impl Write) -> std::io::Result<()> {
    writeln!(out, "{}", SPECTRA_COLUMNS.join(","))?;
    for unit in &result.units {
        writeln!(out, "{}", spectra_row(unit).join(","))?;
    }
    Ok(())
}

/// The cells of one unit's row, in [`SPECTRA_COLUMNS`] order, as CSV text.
pub fn spectra_row(unit: &TensorSpectrum) -> Vec<String> {
    spectra_cells(unit).iter().map(cell_text).collect()
}

/// The typed cells of one unit's row, in [`SPECTRA_COLUMNS`] order.
fn spectra_cells(unit: &TensorSpectrum) -> Vec<Cell> {
    let m = unit.metrics.as_ref();
    let fit = m.and_then(|m| m.powerlaw.as_ref());
    let num = |v: Option<f64>| v.map(Cell::Float).unwrap_or(Cell::Null);
    let count = |v: Option<usize>| v.map(|v| Cell::UInt(v as u64)).unwrap_or(Cell::Null);
    let flag = |v: Option<bool>| v.map(Cell::Bool).unwrap_or(Cell::Null);
    let text = |s: &str| Cell::Text(s.to_string());
    let part = match unit.part {
        UnitPart::Whole => "whole".to_string(),
        UnitPart::Expert { expert_idx } => format!("expert={expert_idx}"),
        UnitPart::ExpertMean { n_experts } => format!("expert_mean={n_experts}"),
        UnitPart::Query => "q".into(),
        UnitPart::Key => "k".into(),
        UnitPart::Value => "v".into(),
    };
    vec![
        text(&unit.tensor),
        count(Some(unit.rows)),
        count(Some(unit.cols)),
        num(m.map(|m| m.s_max)),
        num(m.map(|m| m.s_min)),
        num(m.map(|m| m.kappa)),
        num(m.map(|m| m.log_volume)),
        num(m.map(|m| m.stable_rank)),
        num(fit.map(|f| f.alpha)),
        text(&unit.unit),
        Cell::Text(part),
        count(unit.layer_idx),
        text(&unit.module_type),
        text(&unit.dtype),
        count(Some(unit.n_params)),
        text(unit.status.label()),
        flag(m.map(|m| m.kappa_floored)),
        flag(m.map(|m| m.rank_deficient)),
        count(m.map(|m| m.numerical_rank)),
        num(m.map(|m| m.normalized_log_volume)),
        num(m.map(|m| m.entropy)),
        num(m.map(|m| m.entropy_bound)),
        num(m.map(|m| m.spectral_norm)),
        num(m.map(|m| m.frobenius_norm)),
        num(m.map(|m| m.spectral_entropy)),
        num(fit.map(|f| f.xmin)),
        num(fit.map(|f| f.ks_distance)),
        num(fit.map(|f| f.sigma)),
        count(fit.map(|f| f.n_tail)),
        unit.path
            .map(|p| Cell::Text(format!("{p:?}").to_lowercase()))
            .unwrap_or(Cell::Null),
        num(unit.gram_error_bound),
    ]
}

/// A cell as CSV text: empty for no value, `inf`/`-inf`/`NaN` for non-finite numbers, quoted
/// where the text needs it.
pub(crate) fn cell_text(cell: &Cell) -> String {
    match cell {
        Cell::Null => String::new(),
        Cell::Bool(b) => b.to_string(),
        Cell::Int(v) => v.to_string(),
        Cell::UInt(v) => v.to_string(),
        Cell::Float(v) => format_float(*v),
        Cell::Text(s) => quote(s),
    }
}

/// Writes a table of typed cells as Parquet to `path` (the columns named by `names`).
pub(crate) fn write_cells_parquet(
    path: &Path,
    names: &[&'static str],
    rows: Vec<Vec<Cell>>,
) -> Result<()> {
    let rows = rows
        .into_iter()
        .map(|row| names.iter().copied().zip(row).collect())
        .collect();
    let columns = columns_of(path, rows)?;
    if columns.is_empty() {
        return Ok(());
    }
    let bytes = parquet_bytes(path, &columns)?;
    strata_core::io::write_bytes_atomic(path, &bytes)?;
    Ok(())
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

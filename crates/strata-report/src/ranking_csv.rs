//! The KappaTune ranking as CSV (`ranking.csv` of `strata kappatune`): one row per ranked unit,
//! ascending `kappa`, with whether the budget selected it.

use std::io::Write;
use std::path::Path;

use strata_spectra::Selection;

use crate::error::Result;

/// The ranking table's columns, in order.
pub const RANKING_COLUMNS: [&str; 6] = ["rank", "unit", "tensor", "kappa", "n_params", "selected"];

/// Writes the ranking of `selection` to `path`.
pub fn write_ranking_csv(selection: &Selection, path: &Path) -> Result<()> {
    strata_core::io::write_atomic(path, |out| {
        let mut out = out;
        write_ranking_rows(selection, &mut out)
    })?;
    Ok(())
}

/// Writes the ranking table (header and rows) to any writer.
pub fn write_ranking_rows(selection: &Selection, out: &mut impl Write) -> std::io::Result<()> {
    writeln!(out, "{}", RANKING_COLUMNS.join(","))?;
    for unit in &selection.ranking {
        writeln!(
            out,
            "{},{},{},{},{},{}",
            unit.rank,
            crate::spectra_csv::quote(&unit.unit),
            crate::spectra_csv::quote(&unit.tensor),
            crate::spectra_csv::format_float(unit.kappa),
            unit.n_params,
            unit.selected
        )?;
    }
    Ok(())
}

//! The KappaTune ranking as CSV (`ranking.csv` of `strata kappatune`): one row per ranked unit,
//! ascending `kappa`, with whether the budget selected it.

use std::io::Write;
use std::path::Path;

use strata_spectra::Selection;

use crate::cells::Cell;
use crate::error::Result;
use crate::spectra_csv::cell_text;

/// The ranking table's columns, in order.
pub const RANKING_COLUMNS: [&str; 6] = ["rank", "unit", "tensor", "kappa", "n_params", "selected"];

/// Writes the ranking of `selection` to `path`, and the same table beside it as Parquet
/// (`path` with the extension `parquet`).
pub fn write_ranking_csv(selection: &Selection, path: &Path) -> Result<()> {
    strata_core::io::write_atomic(path, |out| {
        let mut out = out;
        write_ranking_rows(selection, &mut out)
    })?;
    let rows = selection.ranking.iter().map(ranking_cells).collect();
    crate::spectra_csv::write_cells_parquet(&path.with_extension("parquet"), &RANKING_COLUMNS, rows)
}

fn ranking_cells(unit: &strata_spectra::RankedUnit) -> Vec<Cell> {
    vec![
        Cell::UInt(unit.rank as u64),
        Cell::Text(unit.unit.clone()),
        Cell::Text(unit.tensor.clone()),
        Cell::Float(unit.kappa),
        Cell::UInt(unit.n_params as u64),
        Cell::Bool(unit.selected),
    ]
}

/// Writes the ranking table (header and rows) to any writer.
pub fn write_ranking_rows(selection: &Selection, out: &mut impl Write) -> std::io::Result<()> {
    writeln!(out, "{}", RANKING_COLUMNS.join(","))?;
    for unit in &selection.ranking {
        let cells: Vec<String> = ranking_cells(unit).iter().map(cell_text).collect();
        writeln!(out, "{}", cells.join(","))?;
    }
    Ok(())
}

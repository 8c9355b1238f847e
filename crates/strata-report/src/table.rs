//! One table writer for every analysis: any `Serialize` row type to CSV and Parquet,
//! atomically.

use std::path::Path;

use serde::Serialize;

use crate::cells::row_cells;
use crate::error::{Error, Result};
use crate::parquet_table::{columns_of, parquet_bytes};

/// Writes `rows` to `path` as CSV with a header from the row type's field names (the `csv`
/// crate's conventions: nested structs are not allowed, `Option::None` is an empty cell),
/// and the same table beside it as Parquet (`path` with the extension `parquet`): one
/// optional column per field, typed from the values (bool, int64, double, UTF-8 string).
///
/// Both files are written atomically; non-finite floats are written as `NaN`, `inf`, `-inf`
/// in the CSV and as IEEE values in the Parquet file. An empty table has no field names to
/// give its columns, so it writes an empty CSV and removes any earlier Parquet file.
pub fn write_table<R: Serialize>(path: &Path, rows: &[R]) -> Result<()> {
    write_csv(path, rows)?;
    write_parquet(&path.with_extension("parquet"), rows)
}

fn write_parquet<R: Serialize>(path: &Path, rows: &[R]) -> Result<()> {
    let cells = rows
        .iter()
        .map(row_cells)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::Table {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    let columns = columns_of(path, cells)?;
    if columns.is_empty() {
        return match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::Io {
                path: path.to_path_buf(),
                source: e,
            }),
            _ => Ok(()),
        };
    }
    let bytes = parquet_bytes(path, &columns)?;
    strata_core::io::write_bytes_atomic(path, &bytes)?;
    Ok(())
}

fn write_csv<R: Serialize>(path: &Path, rows: &[R]) -> Result<()> {
    let mut bytes = Vec::new();
    {
        let mut writer = csv::Writer::from_writer(&mut bytes);
        for row in rows {
            writer.serialize(row).map_err(|e| Error::Table {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })?;
        }
        writer.flush().map_err(|e| Error::Table {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    }
    strata_core::io::write_bytes_atomic(path, &bytes)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Row {
        layer: usize,
        name: &'static str,
        value: f64,
        note: Option<String>,
    }

    #[test]
    fn rows_become_a_csv_with_a_header() {
        let path = std::env::temp_dir().join(format!("strata-table-{}.csv", std::process::id()));
        let rows = [
            Row {
                layer: 0,
                name: "a,b",
                value: 1.5,
                note: None,
            },
            Row {
                layer: 1,
                name: "c",
                value: f64::INFINITY,
                note: Some("x".into()),
            },
        ];
        write_table(&path, &rows).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, "layer,name,value,note\n0,\"a,b\",1.5,\n1,c,inf,x\n");
        std::fs::remove_file(&path).unwrap();

        let parquet_path = path.with_extension("parquet");
        let reader = parquet::file::serialized_reader::SerializedFileReader::try_from(
            parquet_path.as_path(),
        )
        .unwrap();
        let rows: Vec<String> = parquet::file::reader::FileReader::get_row_iter(&reader, None)
            .unwrap()
            .map(|row| row.unwrap().to_string())
            .collect();
        assert_eq!(
            rows,
            [
                "{layer: 0, name: \"a,b\", value: 1.5, note: null}",
                "{layer: 1, name: \"c\", value: inf, note: \"x\"}"
            ]
        );
        std::fs::remove_file(&parquet_path).unwrap();
    }

    #[test]
    fn an_empty_table_removes_a_stale_parquet_file() {
        let path = std::env::temp_dir().join(format!("strata-empty-{}.csv", std::process::id()));
        let parquet_path = path.with_extension("parquet");
        std::fs::write(&parquet_path, b"stale").unwrap();
        write_table::<Row>(&path, &[]).unwrap();
        assert!(!parquet_path.exists());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "");
        std::fs::remove_file(&path).unwrap();
    }
}

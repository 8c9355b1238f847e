//! One table writer for every analysis: any `Serialize` row type to CSV, atomically.

use std::path::Path;

use serde::Serialize;

use crate::error::{Error, Result};

/// Writes `rows` to `path` as CSV with a header from the row type's field names (the `csv`
/// crate's conventions: nested structs are not allowed, `Option::None` is an empty cell).
/// The file is written atomically; non-finite floats are written as `NaN`, `inf`, `-inf`.
pub fn write_table<R: Serialize>(path: &Path, rows: &[R]) -> Result<()> {
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
    }
}

//! A table of named cells as one Parquet file: one row group, one optional column per field,
//! typed from the cells (booleans, 64-bit integers, doubles, UTF-8 strings), uncompressed.

use std::path::Path;
use std::sync::Arc;

use parquet::basic::{LogicalType, Repetition, Type as PhysicalType};
use parquet::data_type::{BoolType, ByteArray, ByteArrayType, DoubleType, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::Type;

use crate::cells::Cell;
use crate::error::{Error, Result};

/// The Parquet type a column is written with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ColumnType {
    Bool,
    Int64,
    Double,
    Utf8,
}

/// A named column of cells.
pub(crate) struct Column {
    pub(crate) name: String,
    pub(crate) cells: Vec<Cell>,
}

/// Transposes rows of `(field, cell)` into columns, refusing rows whose fields differ.
pub(crate) fn columns_of(path: &Path, rows: Vec<Vec<(&'static str, Cell)>>) -> Result<Vec<Column>> {
    let Some(first) = rows.first() else {
        return Ok(Vec::new());
    };
    let mut columns: Vec<Column> = first
        .iter()
        .map(|(name, _)| Column {
            name: (*name).to_string(),
            cells: Vec::with_capacity(rows.len()),
        })
        .collect();
    for (index, row) in rows.into_iter().enumerate() {
        let same_fields = row.len() == columns.len()
            && row
                .iter()
                .zip(&columns)
                .all(|((name, _), c)| *name == c.name);
        if !same_fields {
            let names: Vec<&str> = row.iter().map(|(name, _)| *name).collect();
            return Err(table_error(
                path,
                format!(
                    "row {index} has the fields [{}], the first row has [{}]",
                    names.join(", "),
                    columns
                        .iter()
                        .map(|c| c.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        for ((_, cell), column) in row.into_iter().zip(columns.iter_mut()) {
            column.cells.push(cell);
        }
    }
    Ok(columns)
}

fn table_error(path: &Path, reason: String) -> Error {
    Error::Table {
        path: path.to_path_buf(),
        reason,
    }
}

fn column_type(path: &Path, column: &Column) -> Result<ColumnType> {
    let mut kind: Option<ColumnType> = None;
    for cell in &column.cells {
        let this = match cell {
            Cell::Null => continue,
            Cell::Bool(_) => ColumnType::Bool,
            Cell::Int(_) | Cell::UInt(_) => ColumnType::Int64,
            Cell::Float(_) => ColumnType::Double,
            Cell::Text(_) => ColumnType::Utf8,
        };
        kind = Some(match (kind, this) {
            (None, t) => t,
            (Some(a), b) if a == b => a,
            (Some(ColumnType::Int64), ColumnType::Double)
            | (Some(ColumnType::Double), ColumnType::Int64) => ColumnType::Double,
            (Some(a), b) => {
                return Err(table_error(
                    path,
                    format!(
                        "column `{}` mixes {a:?} and {b:?} values, which no one Parquet type holds",
                        column.name
                    ),
                ));
            }
        });
    }
    Ok(kind.unwrap_or(ColumnType::Utf8))
}

fn schema_of(path: &Path, columns: &[Column], types: &[ColumnType]) -> Result<Type> {
    let parquet_error = |e: parquet::errors::ParquetError| table_error(path, e.to_string());
    let fields = columns
        .iter()
        .zip(types)
        .map(|(column, ty)| {
            let (physical, logical) = match ty {
                ColumnType::Bool => (PhysicalType::BOOLEAN, None),
                ColumnType::Int64 => (PhysicalType::INT64, None),
                ColumnType::Double => (PhysicalType::DOUBLE, None),
                ColumnType::Utf8 => (PhysicalType::BYTE_ARRAY, Some(LogicalType::String)),
            };
            Type::primitive_type_builder(&column.name, physical)
                .with_repetition(Repetition::OPTIONAL)
                .with_logical_type(logical)
                .build()
                .map(Arc::new)
                .map_err(parquet_error)
        })
        .collect::<Result<Vec<_>>>()?;
    Type::group_type_builder("strata_table")
        .with_fields(fields)
        .build()
        .map_err(parquet_error)
}

/// The definition levels of a column (1 for a value, 0 for an empty cell).
fn definition_levels(cells: &[Cell]) -> Vec<i16> {
    cells.iter().map(|c| i16::from(*c != Cell::Null)).collect()
}

fn int64_values(path: &Path, column: &Column) -> Result<Vec<i64>> {
    column
        .cells
        .iter()
        .filter_map(|cell| match cell {
            Cell::Int(v) => Some(Ok(*v)),
            Cell::UInt(v) => Some(i64::try_from(*v).map_err(|_| {
                table_error(
                    path,
                    format!(
                        "column `{}`: {v} does not fit a signed 64-bit integer",
                        column.name
                    ),
                )
            })),
            _ => None,
        })
        .collect()
}

fn double_values(column: &Column) -> Vec<f64> {
    column
        .cells
        .iter()
        .filter_map(|cell| match cell {
            Cell::Int(v) => Some(*v as f64),
            Cell::UInt(v) => Some(*v as f64),
            Cell::Float(v) => Some(*v),
            _ => None,
        })
        .collect()
}

/// Encodes `columns` as the bytes of a Parquet file.
pub(crate) fn parquet_bytes(path: &Path, columns: &[Column]) -> Result<Vec<u8>> {
    let types = columns
        .iter()
        .map(|c| column_type(path, c))
        .collect::<Result<Vec<_>>>()?;
    let schema = Arc::new(schema_of(path, columns, &types)?);
    let parquet_error = |e: parquet::errors::ParquetError| table_error(path, e.to_string());
    let properties = Arc::new(WriterProperties::builder().build());
    let mut writer =
        SerializedFileWriter::new(Vec::new(), schema, properties).map_err(parquet_error)?;
    let mut group = writer.next_row_group().map_err(parquet_error)?;
    for (column, ty) in columns.iter().zip(&types) {
        let mut out = group
            .next_column()
            .map_err(parquet_error)?
            .ok_or_else(|| table_error(path, format!("no writer for column `{}`", column.name)))?;
        let levels = definition_levels(&column.cells);
        let levels = Some(levels.as_slice());
        match ty {
            ColumnType::Bool => {
                let values: Vec<bool> = column
                    .cells
                    .iter()
                    .filter_map(|c| match c {
                        Cell::Bool(b) => Some(*b),
                        _ => None,
                    })
                    .collect();
                out.typed::<BoolType>().write_batch(&values, levels, None)
            }
            ColumnType::Int64 => {
                let values = int64_values(path, column)?;
                out.typed::<Int64Type>().write_batch(&values, levels, None)
            }
            ColumnType::Double => {
                let values = double_values(column);
                out.typed::<DoubleType>().write_batch(&values, levels, None)
            }
            ColumnType::Utf8 => {
                let values: Vec<ByteArray> = column
                    .cells
                    .iter()
                    .filter_map(|c| match c {
                        Cell::Text(s) => Some(ByteArray::from(s.as_str())),
                        _ => None,
                    })
                    .collect();
                out.typed::<ByteArrayType>()
                    .write_batch(&values, levels, None)
            }
        }
        .map_err(parquet_error)?;
        out.close().map_err(parquet_error)?;
    }
    group.close().map_err(parquet_error)?;
    writer.into_inner().map_err(parquet_error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use parquet::record::Field;

    fn column(name: &str, cells: Vec<Cell>) -> Column {
        Column {
            name: name.into(),
            cells,
        }
    }

    #[test]
    fn typed_columns_with_empty_cells_read_back() {
        let path = Path::new("t.parquet");
        let columns = vec![
            column("layer", vec![Cell::UInt(0), Cell::UInt(1)]),
            column("top1", vec![Cell::Float(2.5), Cell::Float(f64::INFINITY)]),
            column("mixed", vec![Cell::Int(-1), Cell::Float(0.25)]),
            column("name", vec![Cell::Text("h.0".into()), Cell::Null]),
            column("flag", vec![Cell::Null, Cell::Bool(false)]),
        ];
        let bytes = parquet_bytes(path, &columns).unwrap();
        let reader = SerializedFileReader::new(bytes::Bytes::from(bytes)).unwrap();
        assert_eq!(reader.metadata().file_metadata().num_rows(), 2);
        let rows: Vec<Vec<(String, Field)>> = reader
            .get_row_iter(None)
            .unwrap()
            .map(|row| {
                row.unwrap()
                    .get_column_iter()
                    .map(|(n, f)| (n.clone(), f.clone()))
                    .collect()
            })
            .collect();
        let expected = [
            vec![
                ("layer", Field::Long(0)),
                ("top1", Field::Double(2.5)),
                ("mixed", Field::Double(-1.0)),
                ("name", Field::Str("h.0".into())),
                ("flag", Field::Null),
            ],
            vec![
                ("layer", Field::Long(1)),
                ("top1", Field::Double(f64::INFINITY)),
                ("mixed", Field::Double(0.25)),
                ("name", Field::Null),
                ("flag", Field::Bool(false)),
            ],
        ];
        for (row, want) in rows.iter().zip(&expected) {
            let want: Vec<(String, Field)> = want
                .iter()
                .map(|(n, f)| (n.to_string(), f.clone()))
                .collect();
            assert_eq!(row, &want);
        }
    }

    #[test]
    fn a_column_mixing_text_and_numbers_is_refused_by_name() {
        let columns = vec![column("v", vec![Cell::Float(1.0), Cell::Text("x".into())])];
        let err = parquet_bytes(Path::new("bad.parquet"), &columns).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("bad.parquet") && text.contains("`v`"),
            "{text}"
        );
    }

    #[test]
    fn an_unsigned_value_beyond_i64_is_refused() {
        let columns = vec![column("n", vec![Cell::UInt(u64::MAX)])];
        let err = parquet_bytes(Path::new("big.parquet"), &columns).unwrap_err();
        assert!(err.to_string().contains("does not fit"), "{err}");
    }
}

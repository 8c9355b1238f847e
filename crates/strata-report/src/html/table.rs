//! Tables on the page: any `Serialize` row type (the same rows `write_table` writes as
//! CSV) as an HTML table, numbers with a few significant digits.

use serde::Serialize;

use super::escape::escape;
use super::number::format_number;
use crate::cells::{Cell, row_cells};
use crate::error::{Error, Result};

/// Significant digits of the numbers in a table.
const TABLE_DIGITS: usize = 4;

/// A table of text cells with a caption and a header row.
#[derive(Debug, Clone, PartialEq)]
pub struct HtmlTable {
    /// The caption above the table.
    pub caption: String,
    /// The column names.
    pub header: Vec<String>,
    /// The rows, each as many cells as the header.
    pub rows: Vec<Vec<String>>,
    /// Rows of the full table the page leaves out (0 when it shows every row).
    pub n_rows_left_out: usize,
}

impl HtmlTable {
    /// The first `max_rows` of `rows` as a table whose header is the row type's field
    /// names, as [`crate::write_table`] writes them: an empty option is an empty cell,
    /// numbers get four significant digits. Refuses rows that are not flat structs.
    pub fn from_rows<R: Serialize>(caption: &str, rows: &[R], max_rows: usize) -> Result<Self> {
        let mut header = Vec::new();
        let mut cells = Vec::new();
        for row in rows.iter().take(max_rows) {
            let fields = row_cells(row).map_err(|e| Error::Table {
                path: caption.into(),
                reason: e.to_string(),
            })?;
            if header.is_empty() {
                header = fields.iter().map(|(name, _)| name.to_string()).collect();
            }
            cells.push(fields.into_iter().map(|(_, c)| cell_text(&c)).collect());
        }
        Ok(Self {
            caption: caption.to_string(),
            header,
            rows: cells,
            n_rows_left_out: rows.len().saturating_sub(max_rows),
        })
    }

    /// The table as an HTML fragment (`<table>` with its caption and, when rows were left
    /// out, a note saying how many and where the whole table is).
    pub fn render(&self) -> String {
        let mut html = String::from("<table>\n");
        html.push_str(&format!("<caption>{}</caption>\n", escape(&self.caption)));
        html.push_str("<thead><tr>");
        for name in &self.header {
            html.push_str(&format!("<th>{}</th>", escape(name)));
        }
        html.push_str("</tr></thead>\n<tbody>\n");
        for row in &self.rows {
            html.push_str("<tr>");
            for cell in row {
                html.push_str(&format!("<td>{}</td>", escape(cell)));
            }
            html.push_str("</tr>\n");
        }
        html.push_str("</tbody>\n</table>\n");
        if self.n_rows_left_out > 0 {
            html.push_str(&format!(
                "<p class=\"note\">{} more rows in the CSV file.</p>\n",
                self.n_rows_left_out
            ));
        }
        html
    }
}

fn cell_text(cell: &Cell) -> String {
    match cell {
        Cell::Null => String::new(),
        Cell::Bool(b) => b.to_string(),
        Cell::Int(i) => i.to_string(),
        Cell::UInt(u) => u.to_string(),
        Cell::Float(f) => format_number(*f, TABLE_DIGITS),
        Cell::Text(t) => t.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Row {
        layer: usize,
        name: &'static str,
        kappa: f64,
        alpha: Option<f64>,
    }

    #[test]
    fn rows_become_escaped_cells_under_their_field_names() {
        let rows = [
            Row {
                layer: 0,
                name: "<q>",
                kappa: 12.34567,
                alpha: None,
            },
            Row {
                layer: 1,
                name: "b",
                kappa: 3.0,
                alpha: Some(2.5),
            },
            Row {
                layer: 2,
                name: "c",
                kappa: 1.0,
                alpha: None,
            },
        ];
        let table = HtmlTable::from_rows("kappa & co", &rows, 2).unwrap();
        assert_eq!(table.header, ["layer", "name", "kappa", "alpha"]);
        assert_eq!(table.rows[0], ["0", "<q>", "12.35", ""]);
        assert_eq!(table.n_rows_left_out, 1);
        let html = table.render();
        assert!(html.contains("<caption>kappa &amp; co</caption>"));
        assert!(html.contains("<td>&lt;q&gt;</td>"));
        assert!(html.contains("1 more rows"));
        assert_eq!(html.matches("<tr>").count(), 3);
    }
}

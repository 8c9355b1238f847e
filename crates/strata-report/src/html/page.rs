//! The page skeleton: a title, the run's settings, a timing table, then one section per
//! analysis, each with its reading, figures and tables, or the error that stopped it.

use std::path::Path;

use super::escape::escape;
use super::number::format_number;
use super::table::HtmlTable;
use crate::error::{Error, Result};

/// The style sheet of the page: inline, no fonts or images to fetch.
const STYLE: &str = "
body { font-family: sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em;
       color: #222; line-height: 1.45; }
h1 { margin-bottom: 0.2em; }
h2 { border-bottom: 2px solid #ccd; padding-bottom: 0.2em; margin-top: 2.2em; }
nav a { margin-right: 1em; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
caption { text-align: left; font-weight: bold; padding-bottom: 0.3em; }
th, td { border: 1px solid #ccd; padding: 0.2em 0.6em; text-align: right; }
th { background: #eef; }
td:first-child, th:first-child, .settings td { text-align: left; }
figure { margin: 1.2em 0; }
figure svg { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: 0.9em; color: #555; }
.reading { background: #f6f8ff; border-left: 4px solid #67c; padding: 0.5em 1em; }
.error { background: #fff0f0; border-left: 4px solid #c33; padding: 0.5em 1em;
         white-space: pre-wrap; font-family: monospace; }
.note { font-size: 0.9em; color: #555; }
.ok { color: #262; } .failed { color: #a22; }
";

/// One SVG figure, inlined into the page.
#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    /// The caption under the figure.
    pub caption: String,
    /// The `<svg>` element (no XML declaration).
    pub svg: String,
}

impl Figure {
    /// Reads an SVG file (as the figure functions of this crate write them) for inlining;
    /// refuses a file that holds no `<svg>` element.
    pub fn from_file(path: &Path, caption: &str) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let start = text.find("<svg").ok_or_else(|| Error::NothingToPlot {
            path: path.to_path_buf(),
            reason: "the file holds no <svg> element".into(),
        })?;
        Ok(Self {
            caption: caption.to_string(),
            svg: text[start..].trim_end().to_string(),
        })
    }
}

/// What an analysis that ran contributes to its section.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SectionBody {
    /// Plain-language sentences read off the numbers, most important first.
    pub reading: Vec<String>,
    /// Figures, inlined.
    pub figures: Vec<Figure>,
    /// Key tables (the full ones are the CSV files).
    pub tables: Vec<HtmlTable>,
    /// The files the analysis wrote, relative to the page's folder.
    pub files: Vec<String>,
}

impl SectionBody {
    /// A body of `reading` and one table of the first `max_rows` of `rows`
    /// ([`HtmlTable::from_rows`]); figures and files are the caller's to add.
    pub fn with_table<R: serde::Serialize>(
        reading: Vec<String>,
        caption: &str,
        rows: &[R],
        max_rows: usize,
    ) -> Result<Self> {
        Ok(Self {
            reading,
            tables: vec![HtmlTable::from_rows(caption, rows, max_rows)?],
            ..Self::default()
        })
    }
}

/// One analysis on the page.
#[derive(Debug, Clone, PartialEq)]
pub struct Section {
    /// The anchor of the section (`spectra`, `massive`, ...).
    pub id: String,
    /// The heading.
    pub title: String,
    /// One sentence on what the analysis asks.
    pub question: String,
    /// Wall time of the analysis in seconds.
    pub wall_s: f64,
    /// The section's content, or the error that stopped the analysis.
    pub body: std::result::Result<SectionBody, String>,
}

/// The whole report: a title, the settings of the run and the sections.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportPage {
    /// The page title (the model's name, say).
    pub title: String,
    /// Settings of the run as (name, value) pairs, in display order.
    pub settings: Vec<(String, String)>,
    /// The analyses, in display order.
    pub sections: Vec<Section>,
}

impl ReportPage {
    /// The page as one self-contained HTML document: inline CSS, inline SVG, no scripts and
    /// no external references (the only links are to the page's own sections).
    pub fn render(&self) -> String {
        let mut html = String::from("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n");
        html.push_str("<meta charset=\"utf-8\">\n");
        html.push_str(&format!("<title>{}</title>\n", escape(&self.title)));
        html.push_str(&format!("<style>{STYLE}</style>\n</head>\n<body>\n"));
        html.push_str(&format!("<h1>{}</h1>\n", escape(&self.title)));
        html.push_str("<nav>");
        for s in &self.sections {
            html.push_str(&format!(
                "<a href=\"#{}\">{}</a>",
                escape(&s.id),
                escape(&s.title)
            ));
        }
        html.push_str("</nav>\n");
        html.push_str(&self.render_settings());
        html.push_str(&self.render_timings());
        for s in &self.sections {
            html.push_str(&render_section(s));
        }
        html.push_str("</body>\n</html>\n");
        html
    }

    /// Writes [`ReportPage::render`] to `path` atomically.
    pub fn write(&self, path: &Path) -> Result<()> {
        strata_core::io::write_bytes_atomic(path, self.render().as_bytes())?;
        Ok(())
    }

    fn render_settings(&self) -> String {
        let mut html = String::from(
            "<h2 id=\"settings\">Settings</h2>\n<table class=\"settings\">\n<tbody>\n",
        );
        for (name, value) in &self.settings {
            html.push_str(&format!(
                "<tr><th>{}</th><td>{}</td></tr>\n",
                escape(name),
                escape(value)
            ));
        }
        html.push_str("</tbody>\n</table>\n");
        html
    }

    fn render_timings(&self) -> String {
        let mut html = String::from(
            "<table id=\"timings\">\n<caption>Wall time per analysis</caption>\n\
             <thead><tr><th>analysis</th><th>seconds</th><th>status</th></tr></thead>\n<tbody>\n",
        );
        for s in &self.sections {
            let (class, status) = match &s.body {
                Ok(_) => ("ok", "ok"),
                Err(_) => ("failed", "failed"),
            };
            html.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td class=\"{class}\">{status}</td></tr>\n",
                escape(&s.title),
                format_number(s.wall_s, 3)
            ));
        }
        let total: f64 = self.sections.iter().map(|s| s.wall_s).sum();
        html.push_str(&format!(
            "<tr><th>total</th><th>{}</th><th></th></tr>\n</tbody>\n</table>\n",
            format_number(total, 3)
        ));
        html
    }
}

fn render_section(section: &Section) -> String {
    let mut html = format!(
        "<section id=\"{}\">\n<h2>{}</h2>\n<p>{}</p>\n",
        escape(&section.id),
        escape(&section.title),
        escape(&section.question)
    );
    match &section.body {
        Err(error) => {
            html.push_str("<p class=\"failed\">This analysis failed:</p>\n");
            html.push_str(&format!("<div class=\"error\">{}</div>\n", escape(error)));
        }
        Ok(body) => {
            html.push_str("<div class=\"reading\">\n");
            for sentence in &body.reading {
                html.push_str(&format!("<p>{}</p>\n", escape(sentence)));
            }
            html.push_str("</div>\n");
            for figure in &body.figures {
                html.push_str(&format!(
                    "<figure>\n{}\n<figcaption>{}</figcaption>\n</figure>\n",
                    figure.svg,
                    escape(&figure.caption)
                ));
            }
            for table in &body.tables {
                html.push_str(&table.render());
            }
            if !body.files.is_empty() {
                let names: Vec<String> = body
                    .files
                    .iter()
                    .map(|f| format!("<code>{}</code>", escape(f)))
                    .collect();
                html.push_str(&format!(
                    "<p class=\"note\">Files: {}</p>\n",
                    names.join(", ")
                ));
            }
        }
    }
    html.push_str(&format!(
        "<p class=\"note\">{} s</p>\n</section>\n",
        format_number(section.wall_s, 3)
    ));
    html
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page() -> ReportPage {
        ReportPage {
            title: "report: <tiny>".into(),
            settings: vec![("model".into(), "a&b".into())],
            sections: vec![
                Section {
                    id: "one".into(),
                    title: "One".into(),
                    question: "What?".into(),
                    wall_s: 1.25,
                    body: Ok(SectionBody {
                        reading: vec!["layer 2 is <big>".into()],
                        figures: vec![Figure {
                            caption: "fig".into(),
                            svg: "<svg viewBox=\"0 0 1 1\"><rect/></svg>".into(),
                        }],
                        tables: Vec::new(),
                        files: vec!["one/one.csv".into()],
                    }),
                },
                Section {
                    id: "two".into(),
                    title: "Two".into(),
                    question: "Why?".into(),
                    wall_s: 0.5,
                    body: Err("cannot read <file>".into()),
                },
            ],
        }
    }

    #[test]
    fn sections_figures_and_errors_are_on_the_page_escaped() {
        let html = page().render();
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(html.contains("<title>report: &lt;tiny&gt;</title>"));
        assert!(html.contains("<section id=\"one\">") && html.contains("<section id=\"two\">"));
        assert!(html.contains("<p>layer 2 is &lt;big&gt;</p>"));
        assert!(html.contains("<svg viewBox=\"0 0 1 1\"><rect/></svg>"));
        assert!(html.contains("<div class=\"error\">cannot read &lt;file&gt;</div>"));
        assert!(html.contains("<td>a&amp;b</td>"));
        // The total of the timing table.
        assert!(html.contains("<th>1.75</th>"));
        assert!(!html.contains("src="));
        assert!(html.matches("href=\"").count() == html.matches("href=\"#").count());
    }

    #[test]
    fn a_figure_file_loses_its_xml_declaration_and_a_non_svg_is_refused() {
        let dir = std::env::temp_dir().join(format!("strata-html-fig-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("a.svg");
        std::fs::write(&good, "<?xml version=\"1.0\"?>\n<svg width=\"1\"></svg>\n").unwrap();
        assert_eq!(
            Figure::from_file(&good, "a").unwrap().svg,
            "<svg width=\"1\"></svg>"
        );
        let bad = dir.join("b.svg");
        std::fs::write(&bad, "not a figure").unwrap();
        assert!(Figure::from_file(&bad, "b").is_err());
        assert!(Figure::from_file(&dir.join("missing.svg"), "c").is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

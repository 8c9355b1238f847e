//! The void figures: the token x layer map of active and void layers for a prompt and its
//! generation, and the per-layer usage profile of each phase.

use std::path::Path;

use plotters::prelude::*;

use crate::error::{Error, Result};
use crate::layer_lines::{draw_legend, draw_lines_with_markers};

/// One token's row of a void map.
#[derive(Debug, Clone, PartialEq)]
pub struct VoidMapRow {
    /// The label on the token axis (position and token text).
    pub label: String,
    /// Whether the token was generated (drawn in a second colour) or part of the prompt.
    pub generated: bool,
    /// Per layer: active (filled) or void (blank).
    pub active: Vec<bool>,
}

/// Draws the map: one row per token (first at the top), one column per layer, a filled
/// cell where the layer is active (prompt tokens blue, generated tokens red), blank where
/// it is a void.
pub fn plot_void_map(rows: &[VoidMapRow], title: &str, path: &Path) -> Result<()> {
    let n_layers = rows.iter().map(|r| r.active.len()).max().unwrap_or(0);
    if rows.is_empty() || n_layers == 0 {
        return Err(Error::NothingToPlot {
            path: path.to_path_buf(),
            reason: "no token or no layer in the void map".into(),
        });
    }
    let n_rows = rows.len();
    let labels: Vec<String> = rows.iter().map(|r| r.label.clone()).collect();
    let cells: Vec<(usize, usize, bool, bool)> = rows
        .iter()
        .enumerate()
        .flat_map(|(t, row)| {
            row.active
                .iter()
                .enumerate()
                .map(move |(l, &a)| (t, l, a, row.generated))
        })
        .collect();
    let height = (120 + 16 * n_rows).clamp(320, 4000) as u32;
    let width = (260 + 28 * n_layers).clamp(480, 2400) as u32;
    let title = title.to_string();
    let draw =
        move |root: DrawingArea<SVGBackend<'_>, plotters::coord::Shift>| -> Result<(), String> {
            root.fill(&WHITE).map_err(|e| e.to_string())?;
            let mut chart = ChartBuilder::on(&root)
                .caption(title, ("sans-serif", 18))
                .margin(10)
                .x_label_area_size(36)
                .y_label_area_size(180)
                .build_cartesian_2d(0.0..n_layers as f64, n_rows as f64..0.0)
                .map_err(|e| e.to_string())?;
            chart
                .configure_mesh()
                .disable_mesh()
                .x_desc("layer")
                .x_labels(n_layers.min(40))
                .x_label_formatter(&|x| format!("{}", x.floor() as i64))
                .y_labels(0)
                .y_desc("token")
                .draw()
                .map_err(|e| e.to_string())?;
            let prompt = RGBColor(40, 90, 180);
            let generated = RGBColor(200, 60, 50);
            chart
                .draw_series(cells.iter().map(|&(t, l, active, is_generated)| {
                    let color = match (active, is_generated) {
                        (false, _) => RGBColor(245, 245, 245),
                        (true, false) => prompt,
                        (true, true) => generated,
                    };
                    Rectangle::new(
                        [
                            (l as f64 + 0.04, t as f64 + 0.06),
                            (l as f64 + 0.96, t as f64 + 0.94),
                        ],
                        color.filled(),
                    )
                }))
                .map_err(|e| e.to_string())?;
            // Token labels beside their rows, right-aligned against the plotting area.
            let style = ("sans-serif", 11).into_font().color(&BLACK).pos(
                plotters::style::text_anchor::Pos::new(
                    plotters::style::text_anchor::HPos::Right,
                    plotters::style::text_anchor::VPos::Center,
                ),
            );
            for (t, label) in labels.iter().enumerate() {
                let (x, y) = chart.backend_coord(&(0.0, t as f64 + 0.5));
                root.draw(&Text::new(label.clone(), (x - 6, y), style.clone()))
                    .map_err(|e| e.to_string())?;
            }
            root.present().map_err(|e| e.to_string())
        };
    crate::svg::render_svg(path, (width, height), Box::new(draw))
}

/// Draws each phase's usage profile: the share of its tokens for which each layer is
/// active, `series` as (phase name, per-layer share).
pub fn plot_void_usage_by_layer(
    series: &[(String, Vec<f64>)],
    title: &str,
    path: &Path,
) -> Result<()> {
    let series = series
        .iter()
        .map(|(name, usage)| {
            let pts = usage
                .iter()
                .enumerate()
                .filter(|(_, u)| u.is_finite())
                .map(|(l, &u)| (l as f64, u))
                .collect();
            (name.clone(), pts)
        })
        .collect();
    crate::layer_lines::plot_layer_lines(
        path,
        title,
        "share of tokens for which the layer is active",
        series,
        crate::layer_lines::LegendPosition::LowerLeft,
        "no phase has measured tokens",
    )
}

/// Draws `series` (name, `(alpha, y)` points) as lines against alpha, with the full model's
/// value as a dashed horizontal line when given: accuracy or layer usage vs alpha.
pub fn plot_void_vs_alpha(
    series: &[(String, Vec<(f64, f64)>)],
    full_model: Option<f64>,
    y_desc: &str,
    title: &str,
    path: &Path,
) -> Result<()> {
    let ys: Vec<f64> = series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|q| q.1))
        .chain(full_model)
        .filter(|y| y.is_finite())
        .collect();
    let xs: Vec<f64> = series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|q| q.0))
        .filter(|x| x.is_finite())
        .collect();
    if ys.is_empty() || xs.is_empty() {
        return Err(Error::NothingToPlot {
            path: path.to_path_buf(),
            reason: "no finite point to draw against alpha".into(),
        });
    }
    let fold = |v: &[f64]| {
        v.iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &x| {
                (lo.min(x), hi.max(x))
            })
    };
    let ((x_lo, x_hi), (y_lo, y_hi)) = (fold(&xs), fold(&ys));
    let pad = ((y_hi - y_lo) * 0.1).max(0.02);
    let series = series.to_vec();
    let (title, y_desc) = (title.to_string(), y_desc.to_string());
    let draw =
        move |root: DrawingArea<SVGBackend<'_>, plotters::coord::Shift>| -> Result<(), String> {
            root.fill(&WHITE).map_err(|e| e.to_string())?;
            let mut chart = ChartBuilder::on(&root)
                .caption(title, ("sans-serif", 18))
                .margin(12)
                .x_label_area_size(40)
                .y_label_area_size(56)
                .build_cartesian_2d((x_lo - 0.05)..(x_hi + 0.05), (y_lo - pad)..(y_hi + pad))
                .map_err(|e| e.to_string())?;
            chart
                .configure_mesh()
                .x_desc("alpha")
                .y_desc(y_desc)
                .draw()
                .map_err(|e| e.to_string())?;
            if let Some(full) = full_model {
                let color = BLACK.mix(0.7);
                chart
                    .draw_series(DashedLineSeries::new(
                        vec![(x_lo - 0.05, full), (x_hi + 0.05, full)],
                        6,
                        4,
                        color.stroke_width(2),
                    ))
                    .map_err(|e| e.to_string())?
                    .label("full model")
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color));
            }
            draw_lines_with_markers(&mut chart, series)?;
            draw_legend(&mut chart, SeriesLabelPosition::LowerLeft)?;
            root.present().map_err(|e| e.to_string())
        };
    crate::svg::render_svg(path, (880, 520), Box::new(draw))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_filled_cell_per_active_pair_and_an_empty_map_is_refused() {
        let rows = vec![
            VoidMapRow {
                label: "0 In".into(),
                generated: false,
                active: vec![true, false, true],
            },
            VoidMapRow {
                label: "1 the".into(),
                generated: true,
                active: vec![true, true, false],
            },
        ];
        let path = std::env::temp_dir().join(format!("strata-void-map-{}.svg", std::process::id()));
        plot_void_map(&rows, "test", &path).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert_eq!(svg.matches("fill=\"#285AB4\"").count(), 2, "prompt cells");
        assert_eq!(
            svg.matches("fill=\"#C83C32\"").count(),
            2,
            "generated cells"
        );
        assert!(svg.contains("1 the") && svg.contains("0 In"));
        std::fs::remove_file(&path).unwrap();
        assert!(plot_void_map(&[], "t", &path).is_err());
        let usage = [("prompt".to_string(), vec![1.0, 0.5, 0.25])];
        plot_void_usage_by_layer(&usage, "t", &path).unwrap();
        let acc = [("A".to_string(), vec![(0.2, 0.5), (0.8, 0.4)])];
        plot_void_vs_alpha(&acc, Some(0.6), "accuracy", "t", &path).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.contains("full model") && svg.matches("<circle").count() >= 2);
        assert!(plot_void_vs_alpha(&[], None, "accuracy", "t", &path).is_err());
        std::fs::remove_file(&path).unwrap();
    }
}

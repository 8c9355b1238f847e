//! The figures of `strata steer`: probe accuracy and separation by layer, the dose-response
//! curves over alpha, and the cosine heatmap of two direction sets across layers. All drawn
//! through [`crate::svg::render_svg`]; inputs are plain numbers, so this file needs no
//! analysis crate.

use std::path::Path;

use plotters::prelude::*;

use crate::error::{Error, Result};

/// Figure size in pixels.
const SIZE: (u32, u32) = (960, 560);

/// Draws held-out probe accuracy `(layer, accuracy in [0, 1])` and the Fisher-like
/// separation `(layer, separation)` over the layers; separation is divided by its largest
/// value (given in the legend) so both share the `[0, 1]` axis.
pub fn plot_steer_layer_scores(
    accuracy: &[(usize, f64)],
    separation: &[(usize, f64)],
    title: &str,
    path: &Path,
) -> Result<()> {
    let max_sep = separation
        .iter()
        .map(|p| p.1)
        .filter(|s| s.is_finite())
        .fold(0.0f64, f64::max);
    let scaled: Vec<(f64, f64)> = separation
        .iter()
        .filter(|p| p.1.is_finite() && max_sep > 0.0)
        .map(|&(l, s)| (l as f64, s / max_sep))
        .collect();
    let acc: Vec<(f64, f64)> = accuracy
        .iter()
        .filter(|p| p.1.is_finite())
        .map(|&(l, a)| (l as f64, a))
        .collect();
    crate::layer_lines::plot_layer_lines(
        path,
        title,
        "score",
        vec![
            ("probe accuracy (held out)".to_string(), acc),
            (format!("separation / {max_sep:.2}"), scaled),
        ],
        crate::layer_lines::LegendPosition::LowerRight,
        "no layer has a finite score",
    )
}

/// Draws a dose-response curve from `(alpha, behaviour, perplexity)` points: the behaviour
/// metric (log-odds of the concept, nats) on the left panel, perplexity (log scale) on the
/// right, both over alpha.
pub fn plot_steer_dose_response(
    points: &[(f64, f64, f64)],
    title: &str,
    path: &Path,
) -> Result<()> {
    let pts: Vec<(f64, f64, f64)> = points
        .iter()
        .copied()
        .filter(|p| p.0.is_finite() && p.1.is_finite() && p.2.is_finite() && p.2 > 0.0)
        .collect();
    if pts.is_empty() {
        return Err(Error::NothingToPlot {
            path: path.to_path_buf(),
            reason: "no dose point with finite values".into(),
        });
    }
    let range = |values: Vec<f64>| {
        let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let pad = ((hi - lo) * 0.08).max(0.1);
        (lo - pad)..(hi + pad)
    };
    let x = range(pts.iter().map(|p| p.0).collect());
    let y_behaviour = range(pts.iter().map(|p| p.1).collect());
    let y_ppl = range(pts.iter().map(|p| p.2.log10()).collect());
    let title = title.to_string();
    let draw = move |root: DrawingArea<SVGBackend<'_>, plotters::coord::Shift>| {
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let root = root
            .titled(&title, ("sans-serif", 20))
            .map_err(|e| e.to_string())?;
        let panels = root.split_evenly((1, 2));
        let series = [
            ("log-odds of the concept (nats)", y_behaviour, 0usize),
            ("log10 perplexity of the neutral text", y_ppl, 1usize),
        ];
        for (panel, (desc, y, which)) in panels.iter().zip(series) {
            let mut chart = ChartBuilder::on(panel)
                .margin(12)
                .x_label_area_size(40)
                .y_label_area_size(56)
                .build_cartesian_2d(x.clone(), y)
                .map_err(|e| e.to_string())?;
            chart
                .configure_mesh()
                .x_desc("alpha")
                .y_desc(desc)
                .draw()
                .map_err(|e| e.to_string())?;
            let line: Vec<(f64, f64)> = pts
                .iter()
                .map(|p| (p.0, if which == 0 { p.1 } else { p.2.log10() }))
                .collect();
            let color = Palette99::pick(which).to_rgba();
            chart
                .draw_series(LineSeries::new(line.clone(), color.stroke_width(2)))
                .map_err(|e| e.to_string())?;
            chart
                .draw_series(line.iter().map(|&p| Circle::new(p, 3, color.filled())))
                .map_err(|e| e.to_string())?;
        }
        root.present().map_err(|e| e.to_string())
    };
    crate::svg::render_svg(path, SIZE, Box::new(draw))
}

/// Draws the cosine similarity of `(layer_a, layer_b, cosine)` cells as a heatmap, blue at
/// -1, white at 0, red at +1.
pub fn plot_steer_cosines(cells: &[(usize, usize, f64)], title: &str, path: &Path) -> Result<()> {
    if cells.is_empty() {
        return Err(Error::NothingToPlot {
            path: path.to_path_buf(),
            reason: "no pair of layers to compare".into(),
        });
    }
    let n_a = cells.iter().map(|c| c.0).max().unwrap_or(0) + 1;
    let n_b = cells.iter().map(|c| c.1).max().unwrap_or(0) + 1;
    let cells = cells.to_vec();
    let title = title.to_string();
    let draw = move |root: DrawingArea<SVGBackend<'_>, plotters::coord::Shift>| {
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!("{title} (blue -1, white 0, red +1)"),
                ("sans-serif", 18),
            )
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(56)
            .build_cartesian_2d(0.0..n_b as f64, n_a as f64..0.0)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .disable_mesh()
            .x_desc("layer (second set)")
            .y_desc("layer (first set)")
            .draw()
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(cells.iter().map(|&(a, b, c)| {
                Rectangle::new(
                    [(b as f64, a as f64), (b as f64 + 1.0, a as f64 + 1.0)],
                    diverging(c).filled(),
                )
            }))
            .map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())
    };
    crate::svg::render_svg(path, SIZE, Box::new(draw))
}

/// Blue (-1) to white (0) to red (+1).
fn diverging(c: f64) -> RGBColor {
    let t = if c.is_finite() {
        c.clamp(-1.0, 1.0)
    } else {
        0.0
    };
    let fade = |x: f64| (255.0 * (1.0 - x.abs())).round() as u8;
    if t >= 0.0 {
        RGBColor(255, fade(t), fade(t))
    } else {
        RGBColor(fade(t), fade(t), 255)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!(
            "strata-steer-fig-{}-{name}.svg",
            std::process::id()
        ))
    }

    #[test]
    fn steer_figures_draw_one_mark_per_point_and_refuse_nothing() {
        let path = scratch("layers");
        plot_steer_layer_scores(
            &[(0, 0.5), (1, 0.9)],
            &[(0, 1.0), (1, 2.0), (2, 4.0)],
            "t",
            &path,
        )
        .unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert_eq!(svg.matches("<circle").count(), 2 + 3);
        assert!(svg.contains("separation / 4.00"));
        let path = scratch("dose");
        plot_steer_dose_response(
            &[(-1.0, -2.0, 10.0), (0.0, 0.0, 8.0), (1.0, 2.0, 12.0)],
            "t",
            &path,
        )
        .unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert_eq!(svg.matches("<circle").count(), 2 * 3);
        assert!(plot_steer_dose_response(&[], "t", &path).is_err());
        let path = scratch("cos");
        plot_steer_cosines(
            &[(0, 0, 1.0), (0, 1, -1.0), (1, 0, 0.0), (1, 1, 1.0)],
            "t",
            &path,
        )
        .unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.contains("#FF0000") || svg.contains("rgb(255,0,0)") || svg.contains("#ff0000"));
        assert!(plot_steer_cosines(&[], "t", &path).is_err());
    }
}

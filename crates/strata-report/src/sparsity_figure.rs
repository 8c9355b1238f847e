//! The activation-ratio figures of `strata sparsity`: per layer, one line per run (a PPL-p%
//! target or a fixed CETT); and over training, one line per model of a checkpoint series.

use std::path::Path;

use plotters::prelude::*;

use crate::error::{Error, Result};
use crate::layer_lines::{draw_legend, draw_lines_with_markers};

/// Draws each series `(name, activation ratio per layer)` as a line over the layers, in
/// percent (the Sparsing Law paper's unit).
pub fn plot_activation_ratio_by_layer(
    series: &[(String, Vec<f64>)],
    title: &str,
    path: &Path,
) -> Result<()> {
    let series = series
        .iter()
        .map(|(name, ratios)| {
            let pts = ratios
                .iter()
                .enumerate()
                .filter(|(_, r)| r.is_finite())
                .map(|(layer, r)| (layer as f64, 100.0 * r))
                .collect();
            (name.clone(), pts)
        })
        .collect();
    crate::layer_lines::plot_layer_lines(
        path,
        title,
        "activation ratio (% of MLP neurons computed)",
        series,
        crate::layer_lines::LegendPosition::LowerRight,
        "no layer has a finite activation ratio",
    )
}

/// Draws each series `(model, [(tokens seen, mean activation ratio)])` as a line over the
/// training tokens (in thousands), the ratio in percent: the Sparsing Law paper's trend.
pub fn plot_activation_ratio_over_training(
    series: &[(String, Vec<(f64, f64)>)],
    title: &str,
    path: &Path,
) -> Result<()> {
    let series: Vec<(String, Vec<(f64, f64)>)> = series
        .iter()
        .map(|(name, pts)| {
            let pts = pts
                .iter()
                .filter(|(x, y)| x.is_finite() && y.is_finite())
                .map(|&(x, y)| (x / 1e3, 100.0 * y))
                .collect();
            (name.clone(), pts)
        })
        .collect();
    let points: Vec<(f64, f64)> = series.iter().flat_map(|(_, p)| p.iter().copied()).collect();
    if points.is_empty() {
        return Err(Error::NothingToPlot {
            path: path.to_path_buf(),
            reason: "no checkpoint has a finite activation ratio".into(),
        });
    }
    let x_max = points.iter().map(|p| p.0).fold(0.0f64, f64::max).max(1.0);
    let y_max = points.iter().map(|p| p.1).fold(0.0f64, f64::max).max(1.0);
    let title = title.to_string();
    let plot =
        move |root: DrawingArea<SVGBackend<'_>, plotters::coord::Shift>| -> Result<(), String> {
            root.fill(&WHITE).map_err(|e| e.to_string())?;
            let mut chart = ChartBuilder::on(&root)
                .caption(title, ("sans-serif", 20))
                .margin(12)
                .x_label_area_size(40)
                .y_label_area_size(56)
                .build_cartesian_2d(0.0..x_max * 1.02, 0.0..y_max * 1.08)
                .map_err(|e| e.to_string())?;
            chart
                .configure_mesh()
                .x_desc("training tokens (thousands)")
                .y_desc("activation ratio (%)")
                .draw()
                .map_err(|e| e.to_string())?;
            draw_lines_with_markers(&mut chart, series)?;
            draw_legend(&mut chart, SeriesLabelPosition::UpperRight)?;
            root.present().map_err(|e| e.to_string())
        };
    crate::svg::render_svg(path, (960, 560), Box::new(plot))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_marker_per_layer_and_series_and_an_empty_figure_is_refused() {
        let path =
            std::env::temp_dir().join(format!("strata-sparsity-fig-{}.svg", std::process::id()));
        let series = vec![
            ("PPL-1%".to_string(), vec![0.6, 0.5, 0.4]),
            ("PPL-10%".to_string(), vec![0.3, 0.2, f64::NAN]),
        ];
        plot_activation_ratio_by_layer(&series, "test", &path).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert_eq!(svg.matches("<circle").count(), 3 + 2);
        assert!(svg.contains("PPL-10%"));
        std::fs::remove_file(&path).unwrap();
        assert!(plot_activation_ratio_by_layer(&[], "t", &path).is_err());
    }

    #[test]
    fn one_marker_per_checkpoint_and_an_empty_series_is_refused() {
        let path =
            std::env::temp_dir().join(format!("strata-sparsity-train-{}.svg", std::process::id()));
        let series = vec![
            (
                "relu".to_string(),
                vec![(0.0, 0.35), (2048.0, 0.3), (819_200.0, 0.15)],
            ),
            ("silu".to_string(), vec![(0.0, 0.6), (819_200.0, f64::NAN)]),
        ];
        plot_activation_ratio_over_training(&series, "test", &path).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert_eq!(svg.matches("<circle").count(), 3 + 1);
        assert!(svg.contains("training tokens"));
        std::fs::remove_file(&path).unwrap();
        let empty = vec![("x".to_string(), Vec::new())];
        assert!(plot_activation_ratio_over_training(&empty, "t", &path).is_err());
    }
}

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

/// One model's activation ratio over training, with its fitted law.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TrainingCurve {
    /// Legend name.
    pub name: String,
    /// `(tokens seen, mean activation ratio)` per checkpoint, the ratio as a fraction.
    pub points: Vec<(f64, f64)>,
    /// The fitted law sampled as `(tokens seen, activation ratio)` (empty: none), drawn as
    /// a line of the same colour; `fit_name` is added to the legend name.
    pub fit: Vec<(f64, f64)>,
    /// What the fit is (`ReLU law, A0 6.1%`), shown in the legend.
    pub fit_name: Option<String>,
}

/// The unit of a token axis reaching `x_max`: divisor and name.
fn token_unit(x_max: f64) -> (f64, &'static str) {
    if x_max >= 1e9 {
        (1e9, "billions")
    } else if x_max >= 1e6 {
        (1e6, "millions")
    } else {
        (1e3, "thousands")
    }
}

/// Draws each curve's checkpoints as a line with markers over the training tokens (in
/// thousands, millions or billions, as they reach), the ratio in percent: the Sparsing Law
/// paper's trend; a fitted law as a thicker line of the same colour.
pub fn plot_activation_ratio_over_training(
    curves: &[TrainingCurve],
    title: &str,
    path: &Path,
) -> Result<()> {
    let finite = |pts: &[(f64, f64)]| -> Vec<(f64, f64)> {
        pts.iter()
            .copied()
            .filter(|(x, y)| x.is_finite() && y.is_finite())
            .collect()
    };
    let all: Vec<(f64, f64)> = curves.iter().flat_map(|c| finite(&c.points)).collect();
    if all.is_empty() {
        return Err(Error::NothingToPlot {
            path: path.to_path_buf(),
            reason: "no checkpoint has a finite activation ratio".into(),
        });
    }
    let (scale, unit) = token_unit(all.iter().map(|p| p.0).fold(0.0f64, f64::max));
    let to_plot = |pts: Vec<(f64, f64)>| -> Vec<(f64, f64)> {
        pts.into_iter()
            .map(|(x, y)| (x / scale, 100.0 * y))
            .collect()
    };
    let lines: Vec<(String, Vec<(f64, f64)>)> = curves
        .iter()
        .map(|c| {
            let name = match &c.fit_name {
                Some(f) => format!("{} ({f})", c.name),
                None => c.name.clone(),
            };
            (name, to_plot(finite(&c.points)))
        })
        .collect();
    let points: Vec<(f64, f64)> = lines.iter().flat_map(|(_, p)| p.iter().copied()).collect();
    let x_max = points.iter().map(|p| p.0).fold(0.0f64, f64::max);
    let x_max = if x_max > 0.0 { x_max } else { 1.0 };
    let y_max = points.iter().map(|p| p.1).fold(0.0f64, f64::max).max(1.0);
    let fits: Vec<Vec<(f64, f64)>> = curves
        .iter()
        .map(|c| {
            to_plot(finite(&c.fit))
                .into_iter()
                .filter(|&(x, y)| {
                    (0.0..=x_max * 1.02).contains(&x) && (0.0..=y_max * 1.08).contains(&y)
                })
                .collect()
        })
        .collect();
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
                .x_desc(format!("training tokens ({unit})"))
                .y_desc("activation ratio (%)")
                .draw()
                .map_err(|e| e.to_string())?;
            draw_lines_with_markers(&mut chart, lines)?;
            for (idx, fit) in fits.into_iter().enumerate() {
                if fit.len() >= 2 {
                    let color = Palette99::pick(idx).to_rgba();
                    chart
                        .draw_series(LineSeries::new(fit, color.stroke_width(4)))
                        .map_err(|e| e.to_string())?;
                }
            }
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
    fn one_marker_per_checkpoint_a_line_per_fit_and_an_empty_series_is_refused() {
        let path =
            std::env::temp_dir().join(format!("strata-sparsity-train-{}.svg", std::process::id()));
        let curves = vec![
            TrainingCurve {
                name: "relu".into(),
                points: vec![(0.0, 0.35), (2048.0, 0.3), (819_200.0, 0.15)],
                fit: (1..=50)
                    .map(|i| (i as f64 * 16_384.0, 0.15 + 0.2 / i as f64))
                    .collect(),
                fit_name: Some("ReLU law".into()),
            },
            TrainingCurve {
                name: "silu".into(),
                points: vec![(0.0, 0.6), (819_200.0, f64::NAN)],
                ..TrainingCurve::default()
            },
        ];
        plot_activation_ratio_over_training(&curves, "test", &path).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert_eq!(svg.matches("<circle").count(), 3 + 1);
        assert!(svg.contains("training tokens (thousands)"));
        assert!(svg.contains("relu (ReLU law)"));
        // One fitted line, drawn thicker than the checkpoint lines.
        assert_eq!(svg.matches("stroke-width=\"4\"").count(), 1);
        std::fs::remove_file(&path).unwrap();
        let empty = vec![TrainingCurve {
            name: "x".into(),
            ..TrainingCurve::default()
        }];
        assert!(plot_activation_ratio_over_training(&empty, "t", &path).is_err());
    }

    #[test]
    fn the_token_axis_unit_follows_the_range() {
        assert_eq!(token_unit(819_200.0).1, "thousands");
        assert_eq!(token_unit(3e8).1, "millions");
        assert_eq!(token_unit(4.16e10).1, "billions");
    }
}

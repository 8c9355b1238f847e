//! SVG figure of a forgetting experiment: forgetting against task accuracy, one labelled
//! point per fine-tuning method.

use std::path::Path;

use plotters::prelude::*;

use crate::error::{Error, Result};

/// Figure size in pixels.
const SIZE: (u32, u32) = (800, 520);

/// One method's outcome in a forgetting experiment.
#[derive(Debug, Clone, PartialEq)]
pub struct ForgettingPoint {
    /// Method label shown next to the point.
    pub label: String,
    /// Task accuracy in `[0, 1]` (x axis).
    pub task_accuracy: f64,
    /// Forgetting: the control perplexity after fine-tuning minus before (y axis).
    pub forgetting: f64,
}

/// Draws forgetting (y) against task accuracy (x), one labelled point per method: the
/// lower right corner is best (learns the task, forgets little). The x axis ends a little
/// past the best accuracy; the y axis is log10 when every forgetting is positive.
///
/// Points with a non-finite coordinate are left out; an error is returned when none remain.
pub fn plot_forgetting_vs_accuracy(
    points: &[ForgettingPoint],
    title: &str,
    path: &Path,
) -> Result<()> {
    let pts: Vec<&ForgettingPoint> = points
        .iter()
        .filter(|p| p.task_accuracy.is_finite() && p.forgetting.is_finite())
        .collect();
    if pts.is_empty() {
        return Err(Error::NothingToPlot {
            path: path.to_path_buf(),
            reason: "no method has a finite accuracy and forgetting".into(),
        });
    }
    // Forgetting spans orders of magnitude between selective and full fine-tuning: when
    // every value is positive the y axis is log10.
    let log_y = pts.iter().all(|p| p.forgetting > 0.0);
    let y_of = |p: &ForgettingPoint| {
        if log_y {
            p.forgetting.log10()
        } else {
            p.forgetting
        }
    };
    let (y_lo, y_hi) = pts
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |acc, p| {
            (acc.0.min(y_of(p)), acc.1.max(y_of(p)))
        });
    let pad = ((y_hi - y_lo) * 0.12).max(0.25);
    let x_hi = pts
        .iter()
        .fold(0.0f64, |m, p| m.max(p.task_accuracy))
        .mul_add(1.25, 0.05)
        .min(1.02);
    let y_desc = if log_y {
        "log10 forgetting (control PPL after - before)"
    } else {
        "forgetting (control PPL after - before)"
    };
    let plot = |root: DrawingArea<SVGBackend<'_>, plotters::coord::Shift>| -> Result<(), String> {
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 20))
            .margin(16)
            .x_label_area_size(40)
            .y_label_area_size(64)
            .build_cartesian_2d(-0.02..x_hi, (y_lo - pad)..(y_hi + pad))
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc("task accuracy")
            .y_desc(y_desc)
            .draw()
            .map_err(|e| e.to_string())?;
        for (idx, p) in pts.iter().enumerate() {
            let color = Palette99::pick(idx).to_rgba();
            let xy = (p.task_accuracy, y_of(p));
            let font = ("sans-serif", 15).into_font();
            let marker = EmptyElement::at(xy)
                + Circle::new((0, 0), 6, color.filled())
                + Text::new(p.label.clone(), (10, -8), font);
            chart
                .draw_series(std::iter::once(marker))
                .map_err(|e| e.to_string())?;
        }
        root.present().map_err(|e| e.to_string())
    };
    crate::svg::render_svg(path, SIZE, Box::new(plot))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_one_labelled_point_per_method() {
        let path = std::env::temp_dir().join(format!("forgetting-{}.svg", std::process::id()));
        let points = [
            ForgettingPoint {
                label: "lowest-kappa".into(),
                task_accuracy: 0.4,
                forgetting: 1.5,
            },
            ForgettingPoint {
                label: "all".into(),
                task_accuracy: 0.6,
                forgetting: f64::NAN,
            },
        ];
        plot_forgetting_vs_accuracy(&points, "test", &path).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.contains("lowest-kappa"));
        assert!(
            !svg.contains(">all<"),
            "a point with NaN forgetting is left out"
        );
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn nothing_finite_is_an_error() {
        let path = std::env::temp_dir().join("forgetting-empty.svg");
        let err = plot_forgetting_vs_accuracy(&[], "t", &path).unwrap_err();
        assert!(matches!(err, Error::NothingToPlot { .. }));
    }
}

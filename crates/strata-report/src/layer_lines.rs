//! The chart the per-layer figures share: one coloured line with markers per series, layer
//! on the x axis, a legend, rendered through [`crate::svg::render_svg`].

use std::path::Path;

use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use crate::error::{Error, Result};

/// Figure size in pixels.
const SIZE: (u32, u32) = (960, 560);

/// Where the legend goes.
pub(crate) use plotters::prelude::SeriesLabelPosition as LegendPosition;

/// Draws `series` (name, `(layer, y)` points) as lines over the layers; `empty` says why
/// there is nothing to draw when every series is empty.
pub(crate) fn plot_layer_lines(
    path: &Path,
    title: &str,
    y_desc: &str,
    series: Vec<(String, Vec<(f64, f64)>)>,
    legend: LegendPosition,
    empty: &str,
) -> Result<()> {
    let points: Vec<(f64, f64)> = series.iter().flat_map(|(_, p)| p.iter().copied()).collect();
    if points.is_empty() {
        return Err(Error::NothingToPlot {
            path: path.to_path_buf(),
            reason: empty.into(),
        });
    }
    let (x_max, y_min, y_max) = points
        .iter()
        .fold((0.0f64, f64::INFINITY, f64::NEG_INFINITY), |acc, p| {
            (acc.0.max(p.0), acc.1.min(p.1), acc.2.max(p.1))
        });
    let pad = ((y_max - y_min) * 0.08).max(0.1);
    let (title, y_desc) = (title.to_string(), y_desc.to_string());
    let plot =
        move |root: DrawingArea<SVGBackend<'_>, plotters::coord::Shift>| -> Result<(), String> {
            root.fill(&WHITE).map_err(|e| e.to_string())?;
            let mut chart = ChartBuilder::on(&root)
                .caption(title, ("sans-serif", 20))
                .margin(12)
                .x_label_area_size(40)
                .y_label_area_size(56)
                .build_cartesian_2d(-0.5..x_max + 0.5, (y_min - pad)..(y_max + pad))
                .map_err(|e| e.to_string())?;
            chart
                .configure_mesh()
                .x_desc("layer")
                .y_desc(y_desc)
                .draw()
                .map_err(|e| e.to_string())?;
            draw_lines_with_markers(&mut chart, series)?;
            draw_legend(&mut chart, legend)?;
            root.present().map_err(|e| e.to_string())
        };
    crate::svg::render_svg(path, SIZE, Box::new(plot))
}

/// The chart type every f64-by-f64 figure draws on.
pub(crate) type Chart<'a, 'b> =
    ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// Draws each `(name, points)` series as a coloured line with a marker per point, labelled
/// for the legend (colours from plotters' 99-colour palette, in order).
pub(crate) fn draw_lines_with_markers(
    chart: &mut Chart<'_, '_>,
    series: Vec<(String, Vec<(f64, f64)>)>,
) -> Result<(), String> {
    for (idx, (name, pts)) in series.into_iter().enumerate() {
        let color = Palette99::pick(idx).to_rgba();
        chart
            .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
            .map_err(|e| e.to_string())?
            .label(name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
            });
        chart
            .draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled())))
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Draws the legend of the labelled series at `position`, on a light box with a border.
pub(crate) fn draw_legend<'a, 'b: 'a>(
    chart: &mut Chart<'a, 'b>,
    position: LegendPosition,
) -> Result<(), String> {
    chart
        .configure_series_labels()
        .position(position)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| e.to_string())
}

//! SVG figures of a spectra result: `kappa` by layer for each module type, and the log-log
//! empirical spectral density (ESD) of chosen units with their power-law fit.

use std::collections::BTreeMap;
use std::path::Path;

use plotters::prelude::*;
use strata_spectra::{SpectraResult, TensorSpectrum};

use crate::error::{Error, Result};

/// Figure size in pixels.
const SIZE: (u32, u32) = (960, 560);

/// Draws `log10(kappa)` against the layer index, one coloured series per module type.
///
/// Units without a layer index (an LM head, a pooler) are left out; so are units without
/// metrics.
pub fn plot_kappa_by_layer(result: &SpectraResult, path: &Path) -> Result<()> {
    let mut series: BTreeMap<&str, Vec<(f64, f64)>> = BTreeMap::new();
    for unit in result.ok_units() {
        let (Some(layer_idx), Some(kappa)) = (unit.layer_idx, unit.kappa()) else {
            continue;
        };
        if kappa.is_finite() && kappa > 0.0 {
            series
                .entry(unit.module_type.as_str())
                .or_default()
                .push((layer_idx as f64, kappa.log10()));
        }
    }
    let series = series
        .into_iter()
        .map(|(module_type, mut pts)| {
            pts.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
            (module_type.to_string(), pts)
        })
        .collect();
    crate::layer_lines::plot_layer_lines(
        path,
        "condition number by layer and module type",
        "log10 kappa",
        series,
        crate::layer_lines::LegendPosition::UpperRight,
        "no analysed unit has a layer index and a finite kappa",
    )
}

/// The log-log ESD of one unit: `(log10 lambda, log10 density)` at each non-empty bin.
fn esd_points(unit: &TensorSpectrum, threshold: f64, n_bins: usize) -> Vec<(f64, f64)> {
    let Some(values) = &unit.singular_values else {
        return Vec::new();
    };
    let logs: Vec<f64> = values
        .iter()
        .map(|s| s * s)
        .filter(|&l| l > threshold)
        .map(f64::log10)
        .collect();
    if logs.len() < 2 {
        return Vec::new();
    }
    let lo = logs.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = logs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let width = ((hi - lo) / n_bins as f64).max(1e-12);
    let mut counts = vec![0usize; n_bins];
    for &l in &logs {
        let bin = (((l - lo) / width) as usize).min(n_bins - 1);
        counts[bin] += 1;
    }
    let n = logs.len() as f64;
    counts
        .iter()
        .enumerate()
        .filter(|(_, c)| **c > 0)
        .map(|(bin, &c)| {
            let (a, b) = (lo + bin as f64 * width, lo + (bin + 1) as f64 * width);
            // Density per unit lambda: count / (n * bin length in lambda).
            let length = 10f64.powf(b) - 10f64.powf(a);
            (0.5 * (a + b), (c as f64 / (n * length)).log10())
        })
        .collect()
}

/// Draws the log-log ESD (histogram of `lambda = s^2`, density per unit `lambda`) of each
/// named unit, with its fitted power law `p(lambda) ~ lambda^-alpha` above `xmin`.
///
/// The result must have been computed with `keep_singular_values`; units without singular
/// values are left out, and an error is returned when none remain.
pub fn plot_esd(result: &SpectraResult, units: &[&str], path: &Path) -> Result<()> {
    let threshold = result.config.eval_threshold;
    let chosen: Vec<(&TensorSpectrum, Vec<(f64, f64)>)> = units
        .iter()
        .filter_map(|name| result.unit(name))
        .map(|u| (u, esd_points(u, threshold, 40)))
        .filter(|(_, pts)| !pts.is_empty())
        .collect();
    if chosen.is_empty() {
        return Err(Error::NothingToPlot {
            path: path.to_path_buf(),
            reason: "none of the chosen units has stored singular values (keep_singular_values)"
                .into(),
        });
    }
    let all = chosen.iter().flat_map(|(_, p)| p.iter());
    let (x_min, x_max, y_min, y_max) = all.fold(
        (
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ),
        |a, p| (a.0.min(p.0), a.1.max(p.0), a.2.min(p.1), a.3.max(p.1)),
    );
    let (x_pad, y_pad) = (
        ((x_max - x_min) * 0.05).max(0.1),
        ((y_max - y_min) * 0.08).max(0.1),
    );
    let plot = |root: DrawingArea<SVGBackend<'_>, plotters::coord::Shift>| -> Result<(), String> {
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let mut chart = ChartBuilder::on(&root)
            .caption("empirical spectral density (log-log)", ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(56)
            .build_cartesian_2d(
                (x_min - x_pad)..(x_max + x_pad),
                (y_min - y_pad)..(y_max + y_pad),
            )
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc("log10 eigenvalue (s^2)")
            .y_desc("log10 density")
            .draw()
            .map_err(|e| e.to_string())?;
        for (idx, (unit, pts)) in chosen.iter().enumerate() {
            let color = Palette99::pick(idx).to_rgba();
            let fit = unit.metrics.as_ref().and_then(|m| m.powerlaw.as_ref());
            let label = match fit {
                Some(f) => format!("{} (alpha {:.2})", unit.unit, f.alpha),
                None => unit.unit.clone(),
            };
            chart
                .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
                .map_err(|e| e.to_string())?
                .label(label)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                });
            if let Some(f) = fit {
                // Tail density: (n_tail / n) (alpha - 1) / xmin (lambda / xmin)^-alpha.
                let scale = f.n_tail as f64 / f.n_evals as f64 * (f.alpha - 1.0) / f.xmin;
                let lo = f.xmin.log10();
                let line: Vec<(f64, f64)> = (0..=20)
                    .map(|i| lo + (x_max - lo) * i as f64 / 20.0)
                    .map(|x| (x, (scale * 10f64.powf(-f.alpha * (x - lo))).log10()))
                    .filter(|&(_, y)| y >= y_min - y_pad)
                    .collect();
                chart
                    .draw_series(LineSeries::new(line, color.mix(0.5).stroke_width(1)))
                    .map_err(|e| e.to_string())?;
            }
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())
    };
    crate::svg::render_svg(path, SIZE, Box::new(plot))
}

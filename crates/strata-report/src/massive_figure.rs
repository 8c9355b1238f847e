//! The layer-wise figure of massive activations (as in Sun et al., Fig. 2): mean top-1, top-2,
//! top-3 and median magnitude of each block's output, on a log scale.

use std::path::Path;

use plotters::prelude::*;
use strata_massive::MassiveResult;

use crate::error::{Error, Result};

/// Figure size in pixels.
const SIZE: (u32, u32) = (960, 560);

/// Draws `log10` of the mean top-1/2/3 and median `|h|` against the layer.
pub fn plot_massive_by_layer(result: &MassiveResult, title: &str, path: &Path) -> Result<()> {
    let n = |l: &strata_massive::LayerStats| l.n_sequences.max(1) as f64;
    let series: [(&str, Vec<(f64, f64)>); 4] = [
        (
            "top 1",
            result
                .layers
                .iter()
                .map(|l| (l.layer as f64, l.sum_top1 / n(l)))
                .collect(),
        ),
        (
            "top 2",
            result
                .layers
                .iter()
                .map(|l| (l.layer as f64, l.sum_top2 / n(l)))
                .collect(),
        ),
        (
            "top 3",
            result
                .layers
                .iter()
                .map(|l| (l.layer as f64, l.sum_top3 / n(l)))
                .collect(),
        ),
        (
            "median",
            result
                .layers
                .iter()
                .map(|l| (l.layer as f64, l.sum_median / n(l)))
                .collect(),
        ),
    ];
    let series: Vec<(&str, Vec<(f64, f64)>)> = series
        .into_iter()
        .map(|(name, pts)| {
            let pts = pts
                .into_iter()
                .filter(|(_, v)| v.is_finite() && *v > 0.0)
                .map(|(x, v)| (x, v.log10()))
                .collect();
            (name, pts)
        })
        .collect();
    let all: Vec<f64> = series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|q| q.1))
        .collect();
    if all.is_empty() {
        return Err(Error::NothingToPlot {
            path: path.to_path_buf(),
            reason: "no layer has a positive finite magnitude".into(),
        });
    }
    let (y_min, y_max) = all
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
            (a.min(v), b.max(v))
        });
    let x_max = result.layers.len().saturating_sub(1) as f64;
    let pad = ((y_max - y_min) * 0.08).max(0.1);
    let title = title.to_string();
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
                .y_desc("log10 |h| (mean over sequences)")
                .draw()
                .map_err(|e| e.to_string())?;
            for (idx, (name, pts)) in series.iter().enumerate() {
                let color = Palette99::pick(idx).to_rgba();
                chart
                    .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
                    .map_err(|e| e.to_string())?
                    .label(*name)
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                    });
                chart
                    .draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled())))
                    .map_err(|e| e.to_string())?;
            }
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperLeft)
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .draw()
                .map_err(|e| e.to_string())?;
            root.present().map_err(|e| e.to_string())
        };
    crate::svg::render_svg(path, SIZE, Box::new(plot))
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_massive::{LayerStats, MassiveConfig};

    #[test]
    fn four_series_are_drawn_and_an_empty_result_is_refused() {
        let layer = |l: usize, top: f64| LayerStats {
            layer: l,
            n_sequences: 2,
            sum_top1: 2.0 * top,
            sum_top2: top,
            sum_top3: 0.5 * top,
            sum_median: 1.0,
            top: Vec::new(),
        };
        let result = MassiveResult {
            config: MassiveConfig::default(),
            layers: vec![layer(0, 10.0), layer(1, 5000.0), layer(2, 4000.0)],
        };
        let path =
            std::env::temp_dir().join(format!("strata-massive-fig-{}.svg", std::process::id()));
        plot_massive_by_layer(&result, "test", &path).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        // One marker per layer and series.
        assert_eq!(svg.matches("<circle").count(), 4 * 3);
        for name in ["top 1", "top 2", "top 3", "median"] {
            assert!(svg.contains(name), "{name}");
        }
        std::fs::remove_file(&path).unwrap();
        let empty = MassiveResult {
            config: MassiveConfig::default(),
            layers: Vec::new(),
        };
        assert!(plot_massive_by_layer(&empty, "t", &path).is_err());
    }
}

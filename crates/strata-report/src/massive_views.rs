//! More figures of massive activations: the top-1/median ratio as a bar per layer, `|h|`
//! over (token, dimension) of one layer as a heatmap (Sun et al., Fig. 1), and the
//! per-layer trajectories over training with their fitted five-parameter curves
//! (arXiv:2508.03616, Fig. 4). All drawn through [`crate::svg::render_svg`].

use std::path::Path;

use plotters::prelude::*;
use strata_massive::{DynamicsParams, MassiveResult};

use crate::error::{Error, Result};
use crate::layer_lines::draw_legend;

/// Figure size in pixels.
const SIZE: (u32, u32) = (960, 560);

/// Draws `log10(top-1 / median)` of every layer as a bar (the ratio of the means over the
/// sequences measured).
pub fn plot_ratio_bars(result: &MassiveResult, title: &str, path: &Path) -> Result<()> {
    let bars: Vec<(usize, f64)> = result
        .layers
        .iter()
        .map(|l| (l.layer, l.ratio_of_means()))
        .filter(|(_, r)| r.is_finite() && *r > 0.0)
        .map(|(l, r)| (l, r.log10()))
        .collect();
    if bars.is_empty() {
        return Err(Error::NothingToPlot {
            path: path.to_path_buf(),
            reason: "no layer has a positive finite top-1/median ratio".into(),
        });
    }
    let n = result.layers.len();
    let y_max = bars.iter().map(|b| b.1).fold(0.0f64, f64::max).max(0.5) * 1.1;
    let title = title.to_string();
    let draw = move |root: DrawingArea<SVGBackend<'_>, plotters::coord::Shift>| {
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(56)
            .build_cartesian_2d(-0.5..n as f64 - 0.5, 0.0..y_max)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc("layer")
            .y_desc("log10 (top-1 / median)")
            .draw()
            .map_err(|e| e.to_string())?;
        let color = Palette99::pick(0).to_rgba();
        chart
            .draw_series(bars.iter().map(|&(l, v)| {
                let x = l as f64;
                Rectangle::new([(x - 0.38, 0.0), (x + 0.38, v)], color.filled())
            }))
            .map_err(|e| e.to_string())?;
        // log10(1000): the published threshold of a massive activation.
        chart
            .draw_series(LineSeries::new(
                [(-0.5, 3.0), (n as f64 - 0.5, 3.0)],
                BLACK.mix(0.5).stroke_width(1),
            ))
            .map_err(|e| e.to_string())?
            .label("1000x median")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], BLACK.mix(0.5)));
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())
    };
    crate::svg::render_svg(path, SIZE, Box::new(draw))
}

/// A `[n_tokens, width]` matrix of `|h|` values, row-major, with a label per token.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenDimMap {
    /// Number of token rows.
    pub n_tokens: usize,
    /// Number of feature columns.
    pub width: usize,
    /// `n_tokens * width` magnitudes, row-major.
    pub values: Vec<f32>,
    /// One label per token row (its text), shown on the y axis when there are few rows.
    pub tokens: Vec<String>,
}

/// Draws `|h|` over (token, dimension) as a heatmap, colour on a log scale. Wide maps are
/// max-pooled to at most `max_tokens` rows and `max_dims` columns, so an isolated massive
/// entry stays visible and the SVG stays small.
pub fn plot_token_dim_heatmap(
    map: &TokenDimMap,
    max_tokens: usize,
    max_dims: usize,
    title: &str,
    path: &Path,
) -> Result<()> {
    if map.n_tokens == 0 || map.width == 0 || map.values.len() != map.n_tokens * map.width {
        return Err(Error::NothingToPlot {
            path: path.to_path_buf(),
            reason: format!(
                "a {} x {} map holds {} values",
                map.n_tokens,
                map.width,
                map.values.len()
            ),
        });
    }
    let rows = map.n_tokens.min(max_tokens.max(1));
    let dims_per_col = map.width.div_ceil(max_dims.max(1));
    let cols = map.width.div_ceil(dims_per_col);
    let mut pooled = vec![0.0f32; rows * cols];
    for r in 0..rows {
        for c in 0..map.width {
            let v = map.values[r * map.width + c].abs();
            let cell = &mut pooled[r * cols + c / dims_per_col];
            if v.is_finite() && v > *cell {
                *cell = v;
            }
        }
    }
    let logs: Vec<f64> = pooled
        .iter()
        .map(|&v| f64::from(v.max(1e-6)).log10())
        .collect();
    let lo = logs.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = logs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let span = (hi - lo).max(1e-9);
    let labels: Vec<String> = map.tokens.iter().take(rows).cloned().collect();
    let title = title.to_string();
    let width = map.width;
    let draw = move |root: DrawingArea<SVGBackend<'_>, plotters::coord::Shift>| {
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!("{title} (colour: log10 |h|, {lo:.1} to {hi:.1})"),
                ("sans-serif", 18),
            )
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(90)
            .build_cartesian_2d(0.0..width as f64, rows as f64..0.0)
            .map_err(|e| e.to_string())?;
        let label_rows = labels.len() <= 40;
        chart
            .configure_mesh()
            .disable_mesh()
            .x_desc("feature dimension")
            .y_desc("token position")
            .y_labels(rows.min(40))
            .y_label_formatter(&|y| {
                let i = y.floor() as usize;
                match (label_rows, labels.get(i)) {
                    (true, Some(t)) => format!("{i} {}", t.chars().take(10).collect::<String>()),
                    _ => format!("{i}"),
                }
            })
            .draw()
            .map_err(|e| e.to_string())?;
        chart
            .draw_series((0..rows).flat_map(|r| {
                let logs = &logs;
                (0..cols).map(move |c| {
                    let t = (logs[r * cols + c] - lo) / span;
                    let color = ramp(t);
                    let x0 = (c * dims_per_col) as f64;
                    let x1 = ((c + 1) * dims_per_col).min(width) as f64;
                    Rectangle::new([(x0, r as f64), (x1, r as f64 + 1.0)], color.filled())
                })
            }))
            .map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())
    };
    crate::svg::render_svg(path, SIZE, Box::new(draw))
}

/// A dark-blue to yellow colour ramp on `t` in `[0, 1]` (three viridis stops).
fn ramp(t: f64) -> RGBColor {
    let stops = [
        (68.0, 1.0, 84.0),
        (33.0, 145.0, 140.0),
        (253.0, 231.0, 37.0),
    ];
    let t = t.clamp(0.0, 1.0) * 2.0;
    let i = (t.floor() as usize).min(1);
    let f = t - i as f64;
    let (a, b) = (stops[i], stops[i + 1]);
    let mix = |x: f64, y: f64| (x + (y - x) * f).round() as u8;
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// `(x, y)` points of a chart.
type Points = Vec<(f64, f64)>;

/// One layer's series over training and its fitted curve, if any.
#[derive(Debug, Clone, PartialEq)]
pub struct Trajectory {
    /// Legend name (`layer 3`).
    pub name: String,
    /// `(step, value)` points.
    pub points: Vec<(f64, f64)>,
    /// The fitted five-parameter curve.
    pub fit: Option<DynamicsParams>,
}

/// Draws each trajectory as markers and its fitted curve as a line of the same colour,
/// steps on the x axis.
pub fn plot_trajectories(
    trajectories: &[Trajectory],
    title: &str,
    y_desc: &str,
    path: &Path,
) -> Result<()> {
    let points: Vec<(f64, f64)> = trajectories
        .iter()
        .flat_map(|t| t.points.iter().copied())
        .filter(|p| p.0.is_finite() && p.1.is_finite())
        .collect();
    if points.is_empty() {
        return Err(Error::NothingToPlot {
            path: path.to_path_buf(),
            reason: "no finite point in any trajectory".into(),
        });
    }
    let x_max = points.iter().map(|p| p.0).fold(0.0f64, f64::max).max(1.0);
    let (y_min, y_max) = points
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |acc, p| {
            (acc.0.min(p.1), acc.1.max(p.1))
        });
    let pad = ((y_max - y_min) * 0.08).max(1e-3);
    let (y_lo, y_hi) = (y_min - pad, y_max + pad);
    let curves: Vec<(String, Points, Points)> = trajectories
        .iter()
        .map(|t| {
            let curve = t
                .fit
                .map(|p| {
                    (0..=200)
                        .map(|i| x_max * f64::from(i) / 200.0)
                        .map(|s| (s, p.eval(s)))
                        .filter(|(_, v)| v.is_finite())
                        .map(|(s, v)| (s, v.clamp(y_lo, y_hi)))
                        .collect()
                })
                .unwrap_or_default();
            (t.name.clone(), t.points.clone(), curve)
        })
        .collect();
    let (title, y_desc) = (title.to_string(), y_desc.to_string());
    let draw = move |root: DrawingArea<SVGBackend<'_>, plotters::coord::Shift>| {
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(64)
            .build_cartesian_2d(0.0..x_max * 1.02, y_lo..y_hi)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc("training step")
            .y_desc(y_desc)
            .draw()
            .map_err(|e| e.to_string())?;
        for (idx, (name, pts, curve)) in curves.into_iter().enumerate() {
            let color = Palette99::pick(idx).to_rgba();
            chart
                .draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled())))
                .map_err(|e| e.to_string())?
                .label(name)
                .legend(move |(x, y)| Circle::new((x + 9, y), 3, color.filled()));
            if !curve.is_empty() {
                chart
                    .draw_series(LineSeries::new(curve, color.stroke_width(2)))
                    .map_err(|e| e.to_string())?;
            }
        }
        draw_legend(&mut chart, SeriesLabelPosition::UpperRight)?;
        root.present().map_err(|e| e.to_string())
    };
    crate::svg::render_svg(path, SIZE, Box::new(draw))
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_massive::{LayerStats, MassiveConfig};

    fn tmp(name: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!(
            "strata-massive-views-{}-{name}.svg",
            std::process::id()
        ))
    }

    #[test]
    fn one_bar_per_layer() {
        let layer = |l: usize, top: f64| LayerStats {
            layer: l,
            n_sequences: 1,
            sum_top1: top,
            sum_top2: top,
            sum_top3: top,
            sum_median: 1.0,
            top: Vec::new(),
        };
        let result = MassiveResult {
            config: MassiveConfig::default(),
            layers: vec![layer(0, 10.0), layer(1, 5000.0), layer(2, 40.0)],
        };
        let path = tmp("bars");
        plot_ratio_bars(&result, "t", &path).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        // Three bars (plus the legend box and the background).
        assert!(svg.matches("<rect").count() >= 3, "{svg}");
        std::fs::remove_file(&path).unwrap();
        let empty = MassiveResult {
            config: MassiveConfig::default(),
            layers: Vec::new(),
        };
        assert!(plot_ratio_bars(&empty, "t", &path).is_err());
    }

    #[test]
    fn the_heatmap_is_pooled_and_a_wrong_size_refused() {
        let mut values = vec![0.5f32; 4 * 10];
        values[2 * 10 + 7] = 900.0;
        let map = TokenDimMap {
            n_tokens: 4,
            width: 10,
            values,
            tokens: vec!["a".into(), "b".into(), "c".into(), "d".into()],
        };
        let path = tmp("heat");
        // 10 dims pooled into 5 columns of 2: 4 x 5 cells.
        plot_token_dim_heatmap(&map, 8, 5, "t", &path).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.matches("<rect").count() >= 20, "{svg}");
        std::fs::remove_file(&path).unwrap();
        let bad = TokenDimMap {
            values: vec![1.0; 3],
            ..map
        };
        assert!(plot_token_dim_heatmap(&bad, 8, 5, "t", &path).is_err());
    }

    #[test]
    fn trajectories_draw_points_and_curves() {
        let fit = DynamicsParams {
            a: 2.0,
            lambda: 0.3,
            gamma: 0.05,
            t0: 1.0,
            k: 1.0,
        };
        let points: Vec<(f64, f64)> = [0.0, 10.0, 50.0, 100.0]
            .iter()
            .map(|&s| (s, fit.eval(s)))
            .collect();
        let path = tmp("traj");
        plot_trajectories(
            &[Trajectory {
                name: "layer 0".into(),
                points,
                fit: Some(fit),
            }],
            "t",
            "ratio",
            &path,
        )
        .unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert_eq!(svg.matches("<circle").count(), 4 + 1);
        assert!(svg.contains("<polyline"), "a fitted curve");
        std::fs::remove_file(&path).unwrap();
        assert!(plot_trajectories(&[], "t", "y", &path).is_err());
    }
}

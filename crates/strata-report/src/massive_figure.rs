//! The layer-wise figure of massive activations (as in Sun et al., Fig. 2): mean top-1, top-2,
//! top-3 and median magnitude of each block's output, on a log scale.

use std::path::Path;

use strata_massive::MassiveResult;

use crate::error::Result;

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
    // Magnitudes on a log scale: only positive finite values can be drawn.
    let series = series
        .into_iter()
        .map(|(name, pts)| {
            let pts = pts
                .into_iter()
                .filter(|(_, v)| v.is_finite() && *v > 0.0)
                .map(|(x, v)| (x, v.log10()))
                .collect();
            (name.to_string(), pts)
        })
        .collect();
    crate::layer_lines::plot_layer_lines(
        path,
        title,
        "log10 |h| (mean over sequences)",
        series,
        crate::layer_lines::LegendPosition::UpperLeft,
        "no layer has a positive finite magnitude",
    )
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

//! The per-layer activation-ratio figure of `strata sparsity`: one line per run (a PPL-p%
//! target or a fixed CETT), the fraction of MLP neurons the sparse model computes, by layer.

use std::path::Path;

use crate::error::Result;

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
}

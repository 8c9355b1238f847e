//! The activation-sparsity section: how many MLP neurons the model computes at a PPL-p%
//! target, layer by layer, and what that costs in perplexity.

use serde::Serialize;
use strata_sparsity::SparsityResult;

use super::number::{format_number, format_percent};
use super::page::SectionBody;
use crate::error::{Error, Result};

/// One row of the per-layer table (the columns of `sparsity.csv` that matter most).
#[derive(Serialize)]
struct LayerRow {
    layer: usize,
    threshold: f64,
    activation_ratio: f64,
    dense_activation_ratio: f64,
    zero_fraction: f64,
}

/// The reading and key table of one sparsity run: `p` is its PPL-p% target in percent
/// (`None` for a fixed CETT), `unreached` the reason when the search could not meet it.
pub fn sparsity_section(
    p: Option<f64>,
    result: &SparsityResult,
    unreached: Option<&str>,
) -> Result<SectionBody> {
    if result.layers.is_empty() {
        return Err(Error::NothingToReport {
            analysis: "sparsity".into(),
            reason: "the run measured no layer".into(),
        });
    }
    let target = p.map_or_else(
        || format!("a fixed CETT of {}", format_number(result.cett, 3)),
        |p| {
            format!(
                "PPL-{}% (perplexity allowed to rise {}%)",
                format_number(p, 3),
                format_number(p, 3)
            )
        },
    );
    let mut reading = Vec::new();
    if let Some(reason) = unreached {
        reading.push(format!("The target was not reached: {reason}."));
    }
    reading.push(format!(
        "At {target}, the CETT is {}: the MLPs compute {} of their neurons on average over \
         the layers (sparsity {}), and perplexity goes from {} to {} (ratio {}) over {} \
         windows of {} tokens.",
        format_number(result.cett, 3),
        format_percent(result.mean_activation_ratio()),
        format_percent(result.mean_sparsity()),
        format_number(result.dense_ppl(), 4),
        format_number(result.sparse_ppl(), 4),
        format_number(result.ppl_ratio(), 4),
        result.n_windows,
        result.window
    ));
    let ratios: Vec<(usize, f64)> = result
        .layers
        .iter()
        .map(|l| (l.layer, l.activation_ratio()))
        .collect();
    let sparsest = ratios.iter().min_by(|a, b| a.1.total_cmp(&b.1));
    let densest = ratios.iter().max_by(|a, b| a.1.total_cmp(&b.1));
    if let (Some(s), Some(d)) = (sparsest, densest) {
        reading.push(format!(
            "Layer {} is the sparsest ({} of its neurons active) and layer {} the densest ({}).",
            s.0,
            format_percent(s.1),
            d.0,
            format_percent(d.1)
        ));
    }
    let zeros = result.mean_zero_fraction();
    reading.push(format!(
        "Exact zeros are {} of the dense activations{}.",
        format_percent(zeros),
        if zeros < 0.01 {
            ", so the sparsity above comes from small activations, not from zeros (as with \
             SiLU or GELU; ReLU models give exact zeros)"
        } else {
            ""
        }
    ));
    let thresholds = result.mean_thresholds();
    let rows: Vec<LayerRow> = result
        .layers
        .iter()
        .zip(thresholds)
        .map(|(l, threshold)| LayerRow {
            layer: l.layer,
            threshold,
            activation_ratio: l.activation_ratio(),
            dense_activation_ratio: l.dense_activation_ratio(),
            zero_fraction: l.zero_fraction(),
        })
        .collect();
    SectionBody::with_table(reading, "Per layer (sparsity.csv)", &rows, usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_core::eval::Perplexity;
    use strata_sparsity::LayerSparsity;

    #[test]
    fn the_reading_gives_the_mean_ratio_and_the_sparsest_layer() {
        let layer = |l: usize, dropped: u64| LayerSparsity {
            n_dropped: dropped,
            n_pairs: 100,
            n_pairs_dense: 100,
            n_dropped_dense: dropped,
            sum_threshold: 0.2,
            ..LayerSparsity::empty(l)
        };
        let result = SparsityResult {
            cett: 0.125,
            window: 32,
            n_windows: 2,
            dense: Perplexity {
                nll_sum: 62.0,
                n_predicted: 62,
            },
            sparse: Perplexity {
                nll_sum: 62.62,
                n_predicted: 62,
            },
            sum_ppl_ratio: 2.02,
            layers: vec![layer(0, 20), layer(1, 60)],
        };
        let body = sparsity_section(Some(1.0), &result, None).unwrap();
        assert!(
            body.reading[0].contains("the CETT is 0.125"),
            "{}",
            body.reading[0]
        );
        assert!(
            body.reading[0].contains("compute 60.0% of their neurons"),
            "{}",
            body.reading[0]
        );
        assert!(
            body.reading[0].contains("(ratio 1.01)"),
            "{}",
            body.reading[0]
        );
        assert_eq!(
            body.reading[1],
            "Layer 1 is the sparsest (40.0% of its neurons active) and layer 0 the densest (80.0%)."
        );
        assert_eq!(body.tables[0].rows[0][1], "0.1");
        let unreached = sparsity_section(Some(1.0), &result, Some("too far")).unwrap();
        assert_eq!(unreached.reading[0], "The target was not reached: too far.");
    }
}

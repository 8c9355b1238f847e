//! The massive-activation section: where the largest residual-stream magnitude sits, how far
//! above the median each layer's top magnitude rises, and whether any entry meets the
//! published definition.

use strata_massive::{MassiveResult, layer_rows, top_rows};

use super::number::{format_indices, format_number, format_percent};
use super::page::SectionBody;
use crate::error::{Error, Result};

/// The reading and key table of a measurement; `token` spells a token id. The numbers are
/// those of `massive.csv` and `top_activations.csv` (the same rows).
pub fn massive_section(
    result: &MassiveResult,
    token: &dyn Fn(u32) -> String,
) -> Result<SectionBody> {
    let rows = layer_rows(result);
    let tops = top_rows(result, token);
    let largest = rows
        .iter()
        .filter(|r| r.n_sequences > 0)
        .max_by(|a, b| a.max_abs.total_cmp(&b.max_abs))
        .ok_or_else(|| Error::NothingToReport {
            analysis: "massive".into(),
            reason: "no layer was measured".into(),
        })?;
    let entry = tops
        .iter()
        .find(|t| t.layer == largest.layer && t.rank == 1)
        .ok_or_else(|| Error::NothingToReport {
            analysis: "massive".into(),
            reason: format!("layer {} kept no entry", largest.layer),
        })?;
    let n_sequences = largest.n_sequences;
    let mut reading = vec![format!(
        "Layer {} carries the largest activation: |h| = {}, {}x the median of its sequence, at \
         position {} (token {:?}) of sequence {}, dimension {}.",
        largest.layer,
        format_number(largest.max_abs, 3),
        format_number(entry.ratio_to_median, 3),
        entry.token_pos,
        entry.token,
        entry.sequence,
        entry.dim
    )];
    if let Some(peak) = rows.iter().max_by(|a, b| a.ratio.total_cmp(&b.ratio)) {
        let ends: Vec<String> = [(0, "layer 0"), (rows.len() - 1, "the last layer")]
            .into_iter()
            .filter(|&(idx, _)| idx != peak.layer)
            .map(|(idx, name)| format!("{}x at {name}", format_number(rows[idx].ratio, 3)))
            .collect();
        reading.push(format!(
            "The top-1 / median ratio (means over {n_sequences} sequences) peaks at layer {}: \
             {}x{}.",
            peak.layer,
            format_number(peak.ratio, 3),
            if ends.is_empty() {
                String::new()
            } else {
                format!("; it is {}", ends.join(" and "))
            }
        ));
    }
    let n_kept = tops.len();
    let n_first = tops.iter().filter(|t| t.token_pos == 0).count();
    let mut dims: std::collections::BTreeMap<usize, usize> = Default::default();
    for t in &tops {
        *dims.entry(t.dim).or_default() += 1;
    }
    if let Some((dim, count)) = dims
        .iter()
        .max_by_key(|(d, c)| (**c, std::cmp::Reverse(**d)))
    {
        reading.push(format!(
            "Of the {n_kept} largest entries kept ({} per layer), {} sit at the first token \
             and {} in dimension {dim}, the most frequent one.",
            result.config.top_k,
            format_percent(n_first as f64 / n_kept.max(1) as f64),
            format_percent(*count as f64 / n_kept.max(1) as f64),
        ));
    }
    let n_massive: usize = rows.iter().map(|r| r.n_massive).sum();
    let definition = format!(
        "|h| > {} and at least {}x the median",
        format_number(result.config.abs_threshold, 3),
        format_number(result.config.ratio_threshold, 3)
    );
    reading.push(if n_massive == 0 {
        format!(
            "No entry meets the published definition of a massive activation ({definition}): \
             this model has none in that sense."
        )
    } else {
        let layers: Vec<usize> = rows
            .iter()
            .filter(|r| r.n_massive > 0)
            .map(|r| r.layer)
            .collect();
        format!(
            "{n_massive} kept entries meet the published definition of a massive activation \
             ({definition}), in layer{} {}.",
            if layers.len() == 1 { "" } else { "s" },
            format_indices(&layers)
        )
    });
    SectionBody::with_table(reading, "Per layer (massive.csv)", &rows, usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_massive::{LayerStats, MassiveConfig, MassiveEntry};

    fn entry(layer: usize, position: usize, dim: usize, value: f64, ratio: f64) -> MassiveEntry {
        MassiveEntry {
            layer,
            sequence: 1,
            position,
            token_id: 7,
            dim,
            value,
            ratio_to_median: ratio,
            massive: value.abs() > 100.0 && ratio >= 1000.0,
        }
    }

    #[test]
    fn the_reading_names_the_layer_position_and_ratio_of_the_largest_entry() {
        let layer = |l: usize, e: MassiveEntry, median: f64| LayerStats {
            layer: l,
            n_sequences: 2,
            sum_top1: 2.0 * e.value.abs(),
            sum_top2: 1.0,
            sum_top3: 1.0,
            sum_median: 2.0 * median,
            top: vec![e],
        };
        let result = MassiveResult {
            config: MassiveConfig::default(),
            layers: vec![
                layer(0, entry(0, 3, 5, 2.0, 4.0), 0.5),
                layer(1, entry(1, 0, 9, -430.0, 2150.0), 0.2),
                layer(2, entry(2, 0, 9, 50.0, 100.0), 0.5),
            ],
        };
        let body = massive_section(&result, &|id| format!("t{id}")).unwrap();
        assert!(
            body.reading[0].starts_with(
                "Layer 1 carries the largest activation: |h| = 430, 2150x the median of its \
                 sequence, at position 0 (token \"t7\") of sequence 1, dimension 9."
            ),
            "{}",
            body.reading[0]
        );
        assert!(
            body.reading[1].contains("peaks at layer 1: 2150x"),
            "{}",
            body.reading[1]
        );
        assert!(
            body.reading[2].contains("66.7% sit at the first token"),
            "{}",
            body.reading[2]
        );
        assert!(
            body.reading[3].starts_with("1 kept entries meet"),
            "{}",
            body.reading[3]
        );
        assert_eq!(body.tables[0].rows.len(), 3);
    }
}

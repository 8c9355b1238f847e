//! The steering section: for each concept of the contrastive sets, at which layer a linear
//! probe tells the two sides apart best and where the mean difference separates them most.

use serde::Serialize;
use strata_steer::LayerScore;

use super::number::{format_number, format_percent};
use super::page::SectionBody;
use crate::error::{Error, Result};

/// The layer scores of one concept's contrastive pairs.
#[derive(Debug, Clone, PartialEq)]
pub struct SteerConcept {
    /// The concept (the `concept` field of the pairs).
    pub concept: String,
    /// Pairs the directions were extracted from.
    pub n_pairs: usize,
    /// One score per layer, in layer order.
    pub scores: Vec<LayerScore>,
}

/// One row of the table: one (concept, layer).
#[derive(Serialize)]
struct ScoreRow<'a> {
    concept: &'a str,
    layer: usize,
    separation: f64,
    probe_accuracy: Option<f64>,
    mean_diff_norm: f64,
}

/// The reading and key table of the extracted concepts.
pub fn steer_section(concepts: &[SteerConcept]) -> Result<SectionBody> {
    if concepts.iter().all(|c| c.scores.is_empty()) {
        return Err(Error::NothingToReport {
            analysis: "steer".into(),
            reason: "no concept has a scored layer".into(),
        });
    }
    let mut reading = Vec::new();
    for c in concepts {
        let best = c
            .scores
            .iter()
            .filter_map(|s| s.probe_accuracy.map(|a| (s, a)))
            .max_by(|a, b| {
                a.1.total_cmp(&b.1)
                    .then(a.0.separation.total_cmp(&b.0.separation))
            });
        let separated = c
            .scores
            .iter()
            .max_by(|a, b| a.separation.total_cmp(&b.separation));
        let mut sentence = format!("{} ({} pairs): ", c.concept, c.n_pairs);
        match best {
            Some((s, accuracy)) => sentence.push_str(&format!(
                "a held-out logistic probe tells the two sides apart best at layer {} \
                 (accuracy {})",
                s.layer,
                format_percent(accuracy)
            )),
            None => sentence.push_str("too few pairs for a held-out probe accuracy"),
        }
        if let Some(s) = separated {
            sentence.push_str(&format!(
                "; the separation along the mean difference peaks at layer {} ({}).",
                s.layer,
                format_number(s.separation, 3)
            ));
        } else {
            sentence.push('.');
        }
        reading.push(sentence);
    }
    let rows: Vec<ScoreRow<'_>> = concepts
        .iter()
        .flat_map(|c| {
            c.scores.iter().map(|s| ScoreRow {
                concept: &c.concept,
                layer: s.layer,
                separation: s.separation,
                probe_accuracy: s.probe_accuracy,
                mean_diff_norm: s.mean_diff_norm,
            })
        })
        .collect();
    SectionBody::with_table(
        reading,
        "Per concept and layer (layers.csv)",
        &rows,
        usize::MAX,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn score(layer: usize, separation: f64, accuracy: Option<f64>) -> LayerScore {
        LayerScore {
            layer,
            separation,
            probe_accuracy: accuracy,
            js: 0.0,
            legacy_ta2: 0.0,
            mean_diff_norm: 1.0,
        }
    }

    #[test]
    fn the_reading_names_the_best_probe_layer_of_each_concept() {
        let concepts = [
            SteerConcept {
                concept: "archaic".into(),
                n_pairs: 10,
                scores: vec![
                    score(0, 0.5, Some(0.5)),
                    score(1, 2.0, Some(0.9)),
                    score(2, 3.0, Some(0.9)),
                ],
            },
            SteerConcept {
                concept: "tiny".into(),
                n_pairs: 3,
                scores: vec![score(0, 1.5, None)],
            },
        ];
        let body = steer_section(&concepts).unwrap();
        assert_eq!(
            body.reading[0],
            "archaic (10 pairs): a held-out logistic probe tells the two sides apart best at \
             layer 2 (accuracy 90.0%); the separation along the mean difference peaks at layer \
             2 (3)."
        );
        assert!(body.reading[1].contains("too few pairs"));
        assert_eq!(body.tables[0].rows.len(), 4);
        assert!(steer_section(&[]).is_err());
    }
}

//! The void section: which layers the tokens use under the L2 Adaptive Computation rule,
//! which are voids for most tokens, and how often the last layer is one.

use serde::Serialize;
use strata_void::VoidResult;

use super::number::{format_indices, format_number, format_percent};
use super::page::SectionBody;
use crate::error::{Error, Result};

/// Usage below which a layer is named a candidate for skipping (as `strata void
/// --skip-below` defaults).
const RARE_USAGE: f64 = 0.5;

/// One row of the per-layer usage table.
#[derive(Serialize)]
struct UsageRow {
    layer: usize,
    tokens_active: u64,
    share_active: f64,
}

/// The reading and key table of a void measurement over the prompt phase (every token of
/// every measured sequence).
pub fn void_section(result: &VoidResult) -> Result<SectionBody> {
    let usage = &result.prompt;
    if usage.n_tokens == 0 {
        return Err(Error::NothingToReport {
            analysis: "void".into(),
            reason: "no token was measured".into(),
        });
    }
    let profile = usage.layer_usage();
    let mut reading = vec![format!(
        "Over {} tokens in {} forward passes at alpha {}, {} of the (token, layer) pairs are \
         active.",
        usage.n_tokens,
        result.n_calls,
        format_number(f64::from(result.config.alpha), 3),
        format_percent(usage.usage())
    )];
    let least = profile.iter().enumerate().min_by(|a, b| a.1.total_cmp(b.1));
    let most = profile.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1));
    if let (Some((l_lo, u_lo)), Some((l_hi, u_hi))) = (least, most) {
        reading.push(format!(
            "Layer {l_lo} is used least (active for {} of the tokens) and layer {l_hi} most ({}).",
            format_percent(*u_lo),
            format_percent(*u_hi)
        ));
    }
    reading.push(format!(
        "The last layer is a void for {} of the tokens; {} tokens have no active layer at all.",
        format_percent(usage.last_void_share()),
        usage.n_none_active
    ));
    let rare: Vec<usize> = profile
        .iter()
        .enumerate()
        .filter(|(_, u)| **u < RARE_USAGE)
        .map(|(l, _)| l)
        .collect();
    reading.push(if rare.is_empty() {
        "Every layer is active for at least half of the tokens: none is a candidate for \
         skipping."
            .to_string()
    } else {
        format!(
            "Layer{} {} {} active for fewer than half of the tokens: the candidates for \
             skipping (strata void --speed measures the gain).",
            if rare.len() == 1 { "" } else { "s" },
            format_indices(&rare),
            if rare.len() == 1 { "is" } else { "are" }
        )
    });
    let rows: Vec<UsageRow> = usage
        .n_active
        .iter()
        .zip(&profile)
        .enumerate()
        .map(|(layer, (&n, &share))| UsageRow {
            layer,
            tokens_active: n,
            share_active: share,
        })
        .collect();
    SectionBody::with_table(
        reading,
        "Layer usage over the measured tokens",
        &rows,
        usize::MAX,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_void::{PhaseUsage, VoidConfig};

    #[test]
    fn the_reading_names_the_least_used_layer_and_the_candidates() {
        let mut result = VoidResult::new(VoidConfig::default(), 4);
        result.n_calls = 2;
        result.prompt = PhaseUsage {
            n_tokens: 10,
            n_active: vec![10, 3, 8, 6],
            n_skipped: vec![0; 4],
            n_last_void: 4,
            n_none_active: 0,
        };
        let body = void_section(&result).unwrap();
        assert_eq!(
            body.reading[0],
            "Over 10 tokens in 2 forward passes at alpha 0.8, 67.5% of the (token, layer) pairs \
             are active."
        );
        assert!(body.reading[1].starts_with("Layer 1 is used least (active for 30.0%"));
        assert!(body.reading[2].starts_with("The last layer is a void for 40.0%"));
        assert!(body.reading[3].starts_with("Layer 1 is active for fewer than half"));
        assert_eq!(body.tables[0].rows[1], ["1", "3", "0.3"]);
        assert!(void_section(&VoidResult::new(VoidConfig::default(), 4)).is_err());
    }
}

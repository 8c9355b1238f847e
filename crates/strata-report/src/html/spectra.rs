//! The spectra section: which weight matrices are worst conditioned, by unit and by module
//! type, and how heavy their spectral tails are.

use serde::Serialize;
use strata_spectra::{SpectraResult, TensorSpectrum};

use super::number::format_number;
use super::page::SectionBody;
use crate::error::Result;

/// Units shown in the table (the worst conditioned first).
const N_TABLE_UNITS: usize = 10;

/// One row of the table of worst-conditioned units.
#[derive(Serialize)]
struct UnitRow<'a> {
    unit: &'a str,
    layer: Option<usize>,
    rows: usize,
    cols: usize,
    kappa: f64,
    stable_rank: f64,
    alpha: Option<f64>,
}

/// The reading and key table of a spectra result: the extreme and median condition numbers,
/// the module type with the highest median `kappa`, and the spread of the power-law `alpha`.
pub fn spectra_section(result: &SpectraResult) -> Result<SectionBody> {
    let mut units: Vec<(&TensorSpectrum, f64)> = result
        .ok_units()
        .filter_map(|u| u.kappa().map(|k| (u, k)))
        .collect();
    units.sort_by(|a, b| b.1.total_cmp(&a.1));
    let mut reading = vec![format!(
        "{} weight matrices analysed, {} could not be, {} tensors skipped by the configuration.",
        result.ok_units().count(),
        result.failed_units().count(),
        result.skipped.len()
    )];
    if let (Some(&(worst, k_max)), Some(&(best, k_min))) = (units.first(), units.last()) {
        let kappas: Vec<f64> = units.iter().map(|&(_, k)| k).collect();
        reading.push(format!(
            "The worst-conditioned matrix is {}{}: kappa = {}; the best-conditioned is {}: \
             kappa = {}; the median kappa is {}.",
            worst.unit,
            worst
                .layer_idx
                .map_or_else(String::new, |l| format!(" (layer {l})")),
            format_number(k_max, 3),
            best.unit,
            format_number(k_min, 3),
            format_number(median(&kappas), 3)
        ));
    }
    let mut by_type: std::collections::BTreeMap<&str, Vec<f64>> = Default::default();
    for &(u, k) in &units {
        by_type.entry(u.module_type.as_str()).or_default().push(k);
    }
    let medians: Vec<(&str, f64)> = by_type.iter().map(|(t, ks)| (*t, median(ks))).collect();
    let highest = medians.iter().max_by(|a, b| a.1.total_cmp(&b.1));
    let lowest = medians.iter().min_by(|a, b| a.1.total_cmp(&b.1));
    if let (Some(hi), Some(lo)) = (highest, lowest)
        && medians.len() > 1
    {
        reading.push(format!(
            "By module type, {} has the highest median kappa ({}) and {} the lowest ({}).",
            hi.0,
            format_number(hi.1, 3),
            lo.0,
            format_number(lo.1, 3)
        ));
    }
    let alphas: Vec<f64> = units
        .iter()
        .filter_map(|(u, _)| u.metrics.as_ref()?.powerlaw.as_ref().map(|p| p.alpha))
        .filter(|a| a.is_finite())
        .collect();
    if !alphas.is_empty() {
        let lo = alphas.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = alphas.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let n_heavy = alphas.iter().filter(|&&a| a < 2.0).count();
        reading.push(format!(
            "The power-law exponent alpha of the eigenvalue tail was fitted for {} matrices: \
             from {} to {}, median {}; {} below 2 (very heavy-tailed).",
            alphas.len(),
            format_number(lo, 3),
            format_number(hi, 3),
            format_number(median(&alphas), 3),
            n_heavy
        ));
    }
    let rows: Vec<UnitRow<'_>> = units
        .iter()
        .map(|&(u, kappa)| UnitRow {
            unit: &u.unit,
            layer: u.layer_idx,
            rows: u.rows,
            cols: u.cols,
            kappa,
            stable_rank: u.metrics.as_ref().map_or(f64::NAN, |m| m.stable_rank),
            alpha: u
                .metrics
                .as_ref()
                .and_then(|m| m.powerlaw.as_ref())
                .map(|p| p.alpha),
        })
        .collect();
    SectionBody::with_table(reading, "Worst-conditioned matrices", &rows, N_TABLE_UNITS)
}

/// The median of `values` (the mean of the two middle ones for an even count); NaN when
/// empty.
pub(crate) fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => sorted[n / 2],
        _ => 0.5 * (sorted[n / 2 - 1] + sorted[n / 2]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_spectra::{SpectraConfig, analyze_tensors};

    #[test]
    fn the_reading_names_the_worst_conditioned_matrix() {
        // A diagonal matrix with singular values 1 and 100 next to a well-conditioned one.
        let tensors = vec![
            (
                "layers.0.mlp.w.weight".to_string(),
                vec![2, 2],
                vec![1.0f32, 0.0, 0.0, 100.0],
            ),
            (
                "layers.1.attn.w.weight".to_string(),
                vec![2, 2],
                vec![1.0f32, 0.0, 0.0, 2.0],
            ),
        ];
        let result = analyze_tensors(&tensors, &SpectraConfig::default()).unwrap();
        let body = spectra_section(&result).unwrap();
        assert!(body.reading[0].starts_with("2 weight matrices analysed"));
        assert!(
            body.reading[1].contains("layers.0.mlp.w.weight (layer 0): kappa = 100"),
            "{}",
            body.reading[1]
        );
        assert!(
            body.reading[1].contains("median kappa is 51"),
            "{}",
            body.reading[1]
        );
        assert_eq!(body.tables[0].rows.len(), 2);
        assert_eq!(body.tables[0].rows[0][0], "layers.0.mlp.w.weight");
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert!(median(&[]).is_nan());
    }
}

//! The `spectra.csv` contract, the ranking table and the SVG figures, written from a small
//! in-memory result whose values are checked cell by cell.

use std::path::PathBuf;

use strata_report::{
    Error, RANKING_COLUMNS, SPECTRA_COLUMNS, plot_esd, plot_kappa_by_layer, write_ranking_rows,
    write_spectra_csv,
};
use strata_spectra::{Budget, SpectraConfig, SpectraResult, analyze_tensors, select};

/// Contract columns other tools read (issue 4, "Output contract").
const CONTRACT: [&str; 9] = [
    "tensor",
    "rows",
    "cols",
    "s_max",
    "s_min",
    "kappa",
    "log_volume",
    "stable_rank",
    "alpha",
];

fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("strata-report-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir is writable");
    dir
}

/// Two layers of two module types with deterministic pseudo-random values, plus a NaN tensor.
fn result(keep_singular_values: bool) -> SpectraResult {
    let values = |seed: u32, n: usize| -> Vec<f32> {
        (0..n)
            .map(|i| ((i as f32 + 1.0) * (seed as f32 * 0.37 + 1.3)).sin())
            .collect()
    };
    let mut tensors = Vec::new();
    for layer in 0..2u32 {
        tensors.push((
            format!("h.{layer}.attn.c_proj.weight"),
            vec![24, 24],
            values(layer, 576),
        ));
        tensors.push((
            format!("h.{layer}.mlp.c_fc.weight"),
            vec![24, 64],
            values(10 + layer, 1536),
        ));
    }
    let mut bad = values(99, 64);
    bad[0] = f32::NAN;
    tensors.push(("lm_head,odd\"name".into(), vec![8, 8], bad));
    let config = SpectraConfig {
        keep_singular_values,
        ..SpectraConfig::default()
    };
    analyze_tensors(&tensors, &config).expect("analyses")
}

/// Splits one CSV line, honouring RFC 4180 quotes.
fn split_csv(line: &str) -> Vec<String> {
    let (mut cells, mut cell, mut quoted, mut chars) =
        (Vec::new(), String::new(), false, line.chars().peekable());
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cell.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => cells.push(std::mem::take(&mut cell)),
            _ => cell.push(c),
        }
    }
    cells.push(cell);
    cells
}

#[test]
fn spectra_csv_has_the_contract_columns_and_the_result_values() {
    let result = result(false);
    let dir = scratch("csv");
    let path = dir.join("spectra.csv");
    write_spectra_csv(&result, &path).expect("writes");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut lines = text.lines();
    let header: Vec<String> = split_csv(lines.next().unwrap());
    assert_eq!(header[..CONTRACT.len()], CONTRACT);
    assert_eq!(header, SPECTRA_COLUMNS);
    let rows: Vec<Vec<String>> = lines.map(split_csv).collect();
    assert_eq!(rows.len(), result.units.len());
    for (row, unit) in rows.iter().zip(&result.units) {
        assert_eq!(row.len(), SPECTRA_COLUMNS.len(), "{row:?}");
        assert_eq!(row[0], unit.tensor);
        assert_eq!(row[1].parse::<usize>().unwrap(), unit.rows);
        assert_eq!(row[2].parse::<usize>().unwrap(), unit.cols);
        match &unit.metrics {
            Some(m) => {
                assert_eq!(row[3].parse::<f64>().unwrap(), m.s_max);
                assert_eq!(row[4].parse::<f64>().unwrap(), m.s_min);
                assert_eq!(row[5].parse::<f64>().unwrap(), m.kappa);
                assert_eq!(row[6].parse::<f64>().unwrap(), m.log_volume);
                assert_eq!(row[7].parse::<f64>().unwrap(), m.stable_rank);
                let alpha = m.powerlaw.as_ref().map(|f| f.alpha);
                assert_eq!(row[8].parse::<f64>().ok(), alpha);
                assert_eq!(row[15], "ok");
            }
            None => {
                assert!(row[3..9].iter().all(String::is_empty), "{row:?}");
                assert_eq!(row[15], "non_finite");
            }
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn ranking_table_lists_every_candidate_in_order() {
    let result = result(false);
    let selection = select(&result, Budget::Count(2)).unwrap();
    let mut out = Vec::new();
    write_ranking_rows(&selection, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    let rows: Vec<Vec<String>> = text.lines().map(split_csv).collect();
    assert_eq!(rows[0], RANKING_COLUMNS);
    assert_eq!(rows.len(), 1 + 4, "four finite units ranked");
    let kappas: Vec<f64> = rows[1..].iter().map(|r| r[3].parse().unwrap()).collect();
    assert!(kappas.windows(2).all(|w| w[0] <= w[1]));
    let selected: Vec<&str> = rows[1..].iter().map(|r| r[5].as_str()).collect();
    assert_eq!(selected, ["true", "true", "false", "false"]);
}

#[test]
fn figures_are_svg_with_one_series_per_module_type() {
    let result = result(true);
    let dir = scratch("figures");
    let kappa_path = dir.join("kappa_by_layer.svg");
    plot_kappa_by_layer(&result, &kappa_path).expect("draws");
    let svg = std::fs::read_to_string(&kappa_path).unwrap();
    assert!(svg.starts_with("<svg"));
    assert!(svg.contains("attn.c_proj") && svg.contains("mlp.c_fc"));
    assert_eq!(
        svg.matches("<circle").count(),
        4,
        "one marker per layered unit"
    );

    let esd_path = dir.join("esd.svg");
    plot_esd(
        &result,
        &["h.0.mlp.c_fc.weight", "h.1.attn.c_proj.weight"],
        &esd_path,
    )
    .expect("draws");
    let svg = std::fs::read_to_string(&esd_path).unwrap();
    assert!(svg.contains("h.0.mlp.c_fc.weight") && svg.contains("h.1.attn.c_proj.weight"));

    // Without stored singular values there is no ESD to draw: a clear error naming the file.
    let err = plot_esd(&self::result(false), &["h.0.mlp.c_fc.weight"], &esd_path).unwrap_err();
    assert!(matches!(err, Error::NothingToPlot { .. }));
    assert!(err.to_string().contains("esd.svg"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

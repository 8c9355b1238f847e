//! KappaTune selection: ascending ranking with ties by name, the four budgets, determinism,
//! and the trainable mask's JSON file.

use std::collections::BTreeSet;

use strata_spectra::{
    Budget, Convention, Error, SpectraConfig, SpectraResult, TrainableMask, analyze_tensors, rank,
    select,
};

/// `diag(1, ..., 1, 1 / kappa)` of size n: a matrix with exactly this condition number.
fn diag_with_kappa(n: usize, kappa: f32) -> Vec<f32> {
    let mut d = vec![0.0; n * n];
    for i in 0..n {
        d[i * n + i] = 1.0;
    }
    d[n * n - 1] = 1.0 / kappa;
    d
}

/// Eight 2-D units with known kappas (two ties), a bias and an embedding, in shuffled order.
fn fixture(order: &[usize]) -> SpectraResult {
    let specs: [(&str, usize, f32); 10] = [
        ("layers.0.attn.q.weight", 4, 30.0),
        ("layers.0.attn.k.weight", 4, 5.0),
        ("layers.0.mlp.up.weight", 6, 5.0),
        ("layers.1.attn.q.weight", 4, 2.0),
        ("layers.1.attn.k.weight", 4, 80.0),
        ("layers.1.mlp.up.weight", 6, 12.0),
        ("layers.2.attn.q.weight", 4, 12.0),
        ("layers.2.attn.k.weight", 4, 300.0),
        ("embed_tokens.weight", 4, 1.5),
        ("layers.0.attn.q.bias", 0, 1.0),
    ];
    let tensors: Vec<(String, Vec<usize>, Vec<f32>)> = order
        .iter()
        .map(|&i| {
            let (name, n, kappa) = specs[i];
            if n == 0 {
                (name.to_string(), vec![4], vec![0.1; 4])
            } else {
                (name.to_string(), vec![n, n], diag_with_kappa(n, kappa))
            }
        })
        .collect();
    analyze_tensors(&tensors, &SpectraConfig::default()).expect("fixture analyses")
}

fn selected_names(result: &SpectraResult, budget: Budget) -> Vec<String> {
    select(result, budget)
        .expect("valid budget")
        .selected()
        .map(|r| r.unit.clone())
        .collect()
}

const ASCENDING: [&str; 8] = [
    "layers.1.attn.q.weight",
    "layers.0.attn.k.weight",
    "layers.0.mlp.up.weight",
    "layers.1.mlp.up.weight",
    "layers.2.attn.q.weight",
    "layers.0.attn.q.weight",
    "layers.1.attn.k.weight",
    "layers.2.attn.k.weight",
];

#[test]
fn ranking_is_ascending_with_ties_by_name() {
    let result = fixture(&(0..10).collect::<Vec<_>>());
    let (ranking, unranked) = rank(&result);
    let names: Vec<&str> = ranking.iter().map(|r| r.unit.as_str()).collect();
    assert_eq!(names, ASCENDING);
    assert!(unranked.is_empty());
    assert!(ranking.windows(2).all(|w| w[0].kappa <= w[1].kappa));
    // Neither the embedding nor the 1-D bias is a candidate.
    assert!(
        names
            .iter()
            .all(|n| !n.contains("embed") && !n.ends_with("bias"))
    );
}

#[test]
fn selection_does_not_depend_on_input_order() {
    let a = fixture(&(0..10).collect::<Vec<_>>());
    let b = fixture(&[9, 7, 2, 5, 0, 8, 3, 6, 1, 4]);
    for budget in [
        Budget::Count(3),
        Budget::Fraction(0.5),
        Budget::Threshold(12.0),
    ] {
        assert_eq!(
            selected_names(&a, budget),
            selected_names(&b, budget),
            "{budget}"
        );
    }
}

#[test]
fn count_budget_takes_the_lowest_kappas() {
    let result = fixture(&(0..10).collect::<Vec<_>>());
    assert_eq!(selected_names(&result, Budget::Count(3)), ASCENDING[..3]);
    assert_eq!(selected_names(&result, Budget::Count(100)), ASCENDING);
}

#[test]
fn fraction_budget_is_floor_n_p_at_least_one() {
    let result = fixture(&(0..10).collect::<Vec<_>>());
    // 8 candidates: floor(8 * 0.2) = 1, floor(8 * 0.3) = 2, floor(8 * 0.05) = 0 -> 1.
    assert_eq!(selected_names(&result, Budget::Fraction(0.2)).len(), 1);
    assert_eq!(
        selected_names(&result, Budget::Fraction(0.3)),
        ASCENDING[..2]
    );
    assert_eq!(
        selected_names(&result, Budget::Fraction(0.05)),
        ASCENDING[..1]
    );
    assert_eq!(selected_names(&result, Budget::Fraction(1.0)).len(), 8);
}

#[test]
fn threshold_budget_keeps_kappa_at_or_below_it() {
    let result = fixture(&(0..10).collect::<Vec<_>>());
    // kappas: 2, 5, 5, 12, 12, 30, 80, 300 (up to f32 rounding of 1/kappa).
    assert_eq!(
        selected_names(&result, Budget::Threshold(5.5)),
        ASCENDING[..3]
    );
    assert_eq!(selected_names(&result, Budget::Threshold(1.0)).len(), 0);
}

#[test]
fn parameter_budget_takes_the_longest_fitting_prefix() {
    let result = fixture(&(0..10).collect::<Vec<_>>());
    // Parameters in ranking order: 16, 16, 36, 36, 16, ...
    assert_eq!(
        selected_names(&result, Budget::Parameters(68)),
        ASCENDING[..3]
    );
    assert_eq!(
        selected_names(&result, Budget::Parameters(67)),
        ASCENDING[..2]
    );
    let err = select(&result, Budget::Parameters(10)).unwrap_err();
    assert!(matches!(err, Error::InvalidBudget { .. }));
    assert!(err.to_string().contains("layers.1.attn.q.weight"), "{err}");
}

#[test]
fn budgets_parse_and_bad_budgets_are_rejected() {
    assert_eq!("count:5".parse::<Budget>().unwrap(), Budget::Count(5));
    assert_eq!("7".parse::<Budget>().unwrap(), Budget::Count(7));
    assert_eq!("0.2".parse::<Budget>().unwrap(), Budget::Fraction(0.2));
    assert_eq!(
        "fraction:0.3".parse::<Budget>().unwrap(),
        Budget::Fraction(0.3)
    );
    assert_eq!(
        "threshold:50".parse::<Budget>().unwrap(),
        Budget::Threshold(50.0)
    );
    assert_eq!(
        "params:1000".parse::<Budget>().unwrap(),
        Budget::Parameters(1000)
    );
    assert_eq!("all".parse::<Budget>().unwrap(), Budget::All);
    for bad in [
        "fraction:0",
        "fraction:1.5",
        "count:0",
        "count:x",
        "weird:3",
    ] {
        let err = bad.parse::<Budget>().unwrap_err();
        assert!(matches!(err, Error::InvalidBudget { .. }), "{bad}");
        assert!(
            err.to_string().contains(bad.split(':').next().unwrap()),
            "{err}"
        );
    }
}

#[test]
fn non_finite_tensors_are_never_selected() {
    let mut bad = diag_with_kappa(4, 1.1);
    bad[1] = f32::NAN;
    let tensors = vec![
        ("a.weight".to_string(), vec![4, 4], bad),
        ("b.weight".to_string(), vec![4, 4], diag_with_kappa(4, 9.0)),
    ];
    let result = analyze_tensors(&tensors, &SpectraConfig::default()).unwrap();
    let selection = select(&result, Budget::All).unwrap();
    assert_eq!(selection.unranked, ["a.weight"]);
    assert_eq!(selection.n_selected(), 1);
}

#[test]
fn trainable_mask_round_trips_through_json() {
    let result = fixture(&(0..10).collect::<Vec<_>>());
    let selection = select(&result, Budget::Count(4)).unwrap();
    let mask = TrainableMask::from_selection(&selection, Convention::Strata);
    let expected: BTreeSet<String> = ASCENDING[..4].iter().map(|s| s.to_string()).collect();
    assert_eq!(mask.tensors, expected);
    assert!(mask.is_trainable("layers.1.attn.q.weight"));
    assert!(!mask.is_trainable("layers.2.attn.k.weight"));
    assert!(mask.partial_units.is_empty());
    assert_eq!(mask.units, ASCENDING[..4]);
    assert_eq!(selection.n_params_selected(), 16 + 16 + 36 + 36);

    let path = std::env::temp_dir().join(format!("strata-mask-{}.json", std::process::id()));
    mask.save(&path).unwrap();
    assert_eq!(TrainableMask::load(&path).unwrap(), mask);
    std::fs::write(&path, "{not json").unwrap();
    let err = TrainableMask::load(&path).unwrap_err();
    assert!(matches!(err, Error::Json { .. }));
    std::fs::remove_file(&path).ok();
}

//! The massive-activation statistics against a reference computed independently on the host
//! (every `hook_resid_post` captured, magnitudes sorted in f64), merging of shards, and a
//! planted massive value found exactly where it was put.

use std::path::PathBuf;

use burn::backend::Flex;
use strata_core::probe::{Capture, FnProbe, Merge, ProbeSet, Site};
use strata_core::weights::HostTensor;
use strata_core::{Model, PadSide, TokenBatch};
use strata_massive::{MassiveConfig, MassiveProbe, measure};

type B = Flex;

fn model() -> Model<B> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/llama-tiny");
    Model::<B>::load(&dir, &Default::default()).unwrap()
}

fn sequences() -> Vec<Vec<u32>> {
    vec![
        vec![3, 14, 15, 92, 65, 35, 89, 79, 32, 38],
        vec![27, 18, 28, 18, 28, 45, 90, 45, 23, 53],
        vec![1, 61, 80, 33, 98 % 96, 87, 49, 89, 48, 4],
    ]
}

/// numpy's median of the magnitudes, and the three largest, in f64.
fn reference_stats(h: &HostTensor) -> (f64, [f64; 3]) {
    let mut abs: Vec<f64> = h.data.iter().map(|&v| f64::from(v).abs()).collect();
    abs.sort_by(f64::total_cmp);
    let n = abs.len();
    let median = if n % 2 == 1 {
        abs[n / 2]
    } else {
        (abs[n / 2 - 1] + abs[n / 2]) / 2.0
    };
    (median, [abs[n - 1], abs[n - 2], abs[n - 3]])
}

#[test]
fn statistics_match_a_host_reference() {
    let model = model();
    let config = MassiveConfig {
        top_k: 5,
        ..Default::default()
    };
    let result = measure(&model, &sequences(), &config, &mut |_, _| {}).unwrap();
    let n_layers = model.config().n_layers;
    let sites: Vec<Site> = (0..n_layers)
        .map(|layer| Site::ResidPost { layer })
        .collect();
    for layer in 0..n_layers {
        let (mut sum_median, mut sum_top) = (0.0, [0.0f64; 3]);
        let mut largest: Vec<(f64, usize, usize, usize)> = Vec::new();
        for (s, ids) in sequences().iter().enumerate() {
            let mut capture = Capture::new(sites.iter().copied());
            model
                .forward_with(
                    &TokenBatch::single(ids).unwrap(),
                    None,
                    &mut ProbeSet::one(&mut capture),
                )
                .unwrap();
            let h = &capture.captured[&Site::ResidPost { layer }];
            let (median, top) = reference_stats(h);
            sum_median += median;
            for i in 0..3 {
                sum_top[i] += top[i];
            }
            let d = h.shape[2];
            for (flat, &v) in h.data.iter().enumerate() {
                largest.push((f64::from(v), s, flat / d, flat % d));
            }
        }
        let stats = &result.layers[layer];
        assert_eq!(stats.n_sequences, 3);
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * b.abs().max(1.0);
        assert!(close(stats.sum_median, sum_median), "layer {layer} median");
        assert!(close(stats.sum_top1, sum_top[0]), "layer {layer} top1");
        assert!(close(stats.sum_top2, sum_top[1]), "layer {layer} top2");
        assert!(close(stats.sum_top3, sum_top[2]), "layer {layer} top3");
        largest.sort_by(|a, b| b.0.abs().total_cmp(&a.0.abs()));
        for (entry, want) in stats.top.iter().zip(&largest) {
            assert_eq!(
                (entry.value, entry.sequence, entry.position, entry.dim),
                *want,
                "layer {layer}"
            );
            assert_eq!(entry.token_id, sequences()[want.1][want.2]);
        }
        assert_eq!(stats.top.len(), 5);
        // Random fixture weights hold nothing massive by the published definition.
        assert_eq!(stats.massive().count(), 0);
    }
}

#[test]
fn two_shards_merge_to_the_whole() {
    let model = model();
    let config = MassiveConfig::default();
    let seqs = sequences();
    let whole = measure(&model, &seqs, &config, &mut |_, _| {}).unwrap();
    let a = measure(&model, &seqs[..1], &config, &mut |_, _| {}).unwrap();
    let b = measure(&model, &seqs[1..], &config, &mut |_, _| {}).unwrap();
    let merged = a.merge(b);
    for (m, w) in merged.layers.iter().zip(&whole.layers) {
        assert_eq!(m.n_sequences, w.n_sequences);
        assert_eq!(m.top, w.top);
        assert!((m.sum_median - w.sum_median).abs() < 1e-9);
        assert!((m.ratio_of_means() - w.ratio_of_means()).abs() < 1e-9);
    }
}

#[test]
fn a_planted_massive_value_is_found_where_it_was_put() {
    let model = model();
    let d = model.config().d_model;
    // Write 5000 into block 1's output at position 3, dimension 7.
    let mut plant = FnProbe::<B, _>::new(
        |site| site == Site::ResidPost { layer: 1 },
        move |_, x, _| {
            let mut host = HostTensor::from_tensor(x);
            host.data[3 * d + 7] = 5000.0;
            Ok(host.into_device(&Default::default()))
        },
    );
    let mut probe = MassiveProbe::new(model.config().n_layers, MassiveConfig::default());
    model
        .forward_with(
            &TokenBatch::single(&sequences()[0]).unwrap(),
            None,
            &mut ProbeSet::one(&mut plant).with(&mut probe),
        )
        .unwrap();
    let result = probe.into_result();
    let found: Vec<_> = result.massive().collect();
    assert_eq!(found.len(), 1, "{found:?}");
    let entry = found[0];
    assert_eq!(
        (entry.layer, entry.position, entry.dim, entry.value),
        (1, 3, 7, 5000.0)
    );
    assert!(entry.ratio_to_median >= 1000.0);
    // With a threshold above the planted value nothing is flagged.
    let strict = MassiveConfig {
        abs_threshold: 6000.0,
        ..Default::default()
    };
    let mut probe = MassiveProbe::new(model.config().n_layers, strict);
    model
        .forward_with(
            &TokenBatch::single(&sequences()[0]).unwrap(),
            None,
            &mut ProbeSet::one(&mut plant).with(&mut probe),
        )
        .unwrap();
    assert_eq!(probe.into_result().massive().count(), 0);
}

#[test]
fn padded_batches_are_refused() {
    let model = model();
    let batch = TokenBatch::padded(&[vec![1, 2, 3], vec![4]], 0, PadSide::Right).unwrap();
    let mut probe = MassiveProbe::new(model.config().n_layers, MassiveConfig::default());
    let err = model
        .forward_with(&batch, None, &mut ProbeSet::one(&mut probe))
        .unwrap_err()
        .to_string();
    assert!(err.contains("unpadded"), "{err}");
}

#[test]
fn the_intervention_replaces_exactly_the_massive_entries() {
    use strata_massive::{MassiveIntervention, Replacement};
    let model = model();
    let d = model.config().d_model;
    let ids = &sequences()[0];
    // Plant two large values in block 0's output, dimension 5, positions 2 and 6.
    let plant = move |x: burn::tensor::Tensor<B, 3>| {
        let mut host = HostTensor::from_tensor(x);
        host.data[2 * d + 5] = 4000.0;
        host.data[6 * d + 5] = -3000.0;
        host
    };
    let mut planted = FnProbe::<B, _>::new(
        |site| site == Site::ResidPost { layer: 0 },
        move |_, x, _| Ok(plant(x).into_device(&Default::default())),
    );
    let mut probe = MassiveProbe::new(model.config().n_layers, MassiveConfig::default());
    model
        .forward_with(
            &TokenBatch::single(ids).unwrap(),
            None,
            &mut ProbeSet::one(&mut planted).with(&mut probe),
        )
        .unwrap();
    let result = probe.into_result();
    let mean = MassiveIntervention::from_result(&result, Replacement::Mean).unwrap();
    assert_eq!((mean.layer, mean.dim, mean.value), (0, 5, 500.0));
    let zero = MassiveIntervention::from_result(&result, Replacement::Zero).unwrap();
    // Applied after the planting: the two entries become 0, nothing else changes.
    let mut intervention = zero.clone();
    let mut capture = Capture::new([Site::ResidPost { layer: 0 }]);
    model
        .forward_with(
            &TokenBatch::single(ids).unwrap(),
            None,
            &mut ProbeSet::one(&mut planted)
                .with(&mut intervention)
                .with(&mut capture),
        )
        .unwrap();
    let after = &capture.captured[&Site::ResidPost { layer: 0 }];
    let mut plain = Capture::new([Site::ResidPost { layer: 0 }]);
    model
        .forward_with(
            &TokenBatch::single(ids).unwrap(),
            None,
            &mut ProbeSet::one(&mut plain),
        )
        .unwrap();
    let before = &plain.captured[&Site::ResidPost { layer: 0 }];
    for (i, (&a, &b)) in after.data.iter().zip(&before.data).enumerate() {
        if i == 2 * d + 5 || i == 6 * d + 5 {
            assert_eq!(a, 0.0);
        } else {
            assert_eq!(a, b, "entry {i}");
        }
    }
    // No massive entry: no intervention.
    let none = measure(
        &model,
        &sequences(),
        &MassiveConfig::default(),
        &mut |_, _| {},
    )
    .unwrap();
    assert!(MassiveIntervention::from_result(&none, Replacement::Zero).is_none());
}

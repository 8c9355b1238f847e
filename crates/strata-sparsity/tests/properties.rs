//! Properties of the whole measurement on the embedded tiny model: nothing dropped at CETT 0,
//! activation ratio falling as CETT grows, shards merging exactly, PPL-p% landing on its
//! target; and bad input refused with a clear error.

use std::path::PathBuf;

use burn::backend::Flex;
use strata_core::Model;
use strata_core::eval::corpus;
use strata_core::probe::Merge;
use strata_sparsity::{
    DensePass, Error, SearchStatus, SparsityConfig, ThresholdConfig, ThresholdMask, at_cett,
    layer_threshold, ppl_p,
};

type B = Flex;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn tiny() -> Model<B> {
    Model::<B>::load(
        &root().join("datasets/models/tiny-default"),
        &Default::default(),
    )
    .unwrap()
}

fn kjv(model: &Model<B>, n_tokens: usize) -> Vec<u32> {
    let text = std::fs::read_to_string(root().join("datasets/kjv/valid.txt")).unwrap();
    let lines: Vec<&str> = text.lines().take(400).collect();
    let mut tokens = corpus::frame_lines(model.tokenizer().unwrap(), lines).unwrap();
    assert!(tokens.len() >= n_tokens, "{} tokens", tokens.len());
    tokens.truncate(n_tokens);
    tokens
}

fn config(window: usize, n_windows: usize) -> SparsityConfig {
    SparsityConfig {
        window,
        n_windows,
        ..SparsityConfig::for_model(tiny().config())
    }
}

#[test]
fn cett_zero_drops_only_negligible_neurons() {
    let model = tiny();
    let tokens = kjv(&model, 128);
    let r = at_cett(&model, &tokens, 0.0, &config(64, 2), &mut |_, _| {}).unwrap();
    assert_eq!(r.n_windows, 2);
    for layer in &r.layers {
        // Only output norms under 1e-7 go (SiLU makes a few), which changes nothing measurable.
        assert!(layer.activation_ratio() > 0.9999, "layer {}", layer.layer);
        assert_eq!(layer.n_pairs, 2 * 63 * 384);
        assert!(
            layer.cett() < 1e-6,
            "layer {}: {}",
            layer.layer,
            layer.cett()
        );
    }
    assert!((r.ppl_ratio() - 1.0).abs() < 1e-5, "{}", r.ppl_ratio());
}

#[test]
fn a_mask_that_drops_nothing_leaves_perplexity_unchanged() {
    use strata_core::ProbeSet;
    use strata_core::eval::{PerplexityConfig, perplexity};
    let model = tiny();
    let tokens = kjv(&model, 128);
    let cfg = PerplexityConfig::new(64, 64).unwrap();
    let plain = perplexity(&model, &tokens, &cfg, &mut ProbeSet::none(), &mut |_, _| {}).unwrap();
    let mut mask = ThresholdMask::new(&model, &[0.0; 4]).unwrap();
    let masked = perplexity(
        &model,
        &tokens,
        &cfg,
        &mut ProbeSet::one(&mut mask),
        &mut |_, _| {},
    )
    .unwrap();
    assert_eq!(mask.n_dropped, vec![0; 4]);
    assert_eq!(mask.n_pairs, vec![2 * 63 * 384; 4]);
    assert_eq!(masked, plain);
    // A huge threshold drops everything, and the model loses its MLPs.
    let mut all = ThresholdMask::new(&model, &[1e30; 4]).unwrap();
    let gutted = perplexity(
        &model,
        &tokens,
        &cfg,
        &mut ProbeSet::one(&mut all),
        &mut |_, _| {},
    )
    .unwrap();
    assert_eq!(all.n_dropped, all.n_pairs);
    assert!(
        gutted.ppl() > plain.ppl() * 1.5,
        "{} vs {}",
        gutted.ppl(),
        plain.ppl()
    );
}

#[test]
fn activation_ratio_falls_and_perplexity_rises_as_cett_grows() {
    let model = tiny();
    let tokens = kjv(&model, 128);
    let mut dense = DensePass::run(&model, &tokens, &config(64, 2), &mut |_, _| {}).unwrap();
    let targets = [0.02, 0.05, 0.1, 0.2, 0.4, 0.8];
    let results: Vec<_> = targets
        .iter()
        .map(|&c| dense.evaluate(&model, c, &mut |_, _| {}).unwrap())
        .collect();
    for pair in results.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        for (la, lb) in a.layers.iter().zip(&b.layers) {
            assert!(
                lb.dense_activation_ratio() <= la.dense_activation_ratio(),
                "layer {}: {} at c {} vs {} at c {}",
                la.layer,
                la.dense_activation_ratio(),
                a.cett,
                lb.dense_activation_ratio(),
                b.cett
            );
            assert!(lb.cett() >= la.cett() && lb.cett() <= b.cett + 1e-6);
        }
        assert!(b.mean_activation_ratio() < a.mean_activation_ratio());
    }
    let (first, last) = (&results[0], &results[results.len() - 1]);
    assert!(last.ppl_ratio() > first.ppl_ratio());
    assert!(first.ppl_ratio() > 0.99 && first.ppl_ratio() < 1.05);
    // Dense and sparse passes: one dense pass per window, one sparse pass per window and target.
    assert_eq!(dense.n_dense_passes(), 2);
    assert_eq!(dense.n_sparse_passes(), 2 * targets.len());
}

#[test]
fn results_of_two_shards_merge_into_the_result_of_both() {
    let model = tiny();
    let tokens = kjv(&model, 192);
    let cfg = config(64, 3);
    let whole = at_cett(&model, &tokens, 0.2, &cfg, &mut |_, _| {}).unwrap();
    let first = at_cett(&model, &tokens[..128], 0.2, &config(64, 2), &mut |_, _| {}).unwrap();
    let second = at_cett(&model, &tokens[128..], 0.2, &config(64, 1), &mut |_, _| {}).unwrap();
    assert_eq!(first.merge(second), whole);
}

#[test]
fn ppl_p_lands_on_its_target() {
    let model = tiny();
    let tokens = kjv(&model, 256);
    let found = ppl_p(
        &model,
        &tokens,
        &[1.0, 10.0],
        &config(64, 4),
        &mut |_, _| {},
    )
    .unwrap();
    for s in &found {
        assert_eq!(s.status, SearchStatus::Reached, "p {}", s.p);
        assert_eq!(s.steps.len(), 10);
        assert!(s.cett > 0.0 && s.cett < 1.0);
        let target = 1.0 + s.p / 100.0;
        // The last bracket holds the target between a step below it and one above it.
        let below = s
            .steps
            .iter()
            .filter(|st| st.ppl_ratio < target)
            .map(|st| st.cett);
        let above = s
            .steps
            .iter()
            .filter(|st| st.ppl_ratio >= target)
            .map(|st| st.cett);
        let lo = below.fold(0.0, f64::max);
        let hi = above.fold(1.0, f64::min);
        assert!(hi - lo <= s.tol + 1e-12 && s.cett > lo && s.cett < hi);
        let r = s.result.ppl_ratio();
        assert!(
            (r - target).abs() < 0.2 * (target - 1.0),
            "p {}: ratio {r}",
            s.p
        );
        assert!(s.result.mean_activation_ratio() < 1.0);
    }
    assert!(found[1].cett > found[0].cett);
    assert!(found[1].result.mean_activation_ratio() < found[0].result.mean_activation_ratio());
    assert_eq!(found[1].n_dense_passes, 4);
    assert_eq!(found[1].n_sparse_passes, 2 * 11 * 4);
}

#[test]
fn bad_input_is_refused_with_a_clear_error() {
    let model = tiny();
    let tokens = kjv(&model, 128);
    for p in [0.0, -1.0, 100.5, f64::NAN] {
        let err = ppl_p(&model, &tokens, &[p], &config(64, 2), &mut |_, _| {}).unwrap_err();
        assert!(matches!(err, Error::InvalidP { .. }), "{err}");
        assert!(err.to_string().contains("(0, 100]"), "{err}");
    }
    for c in [-0.1, 1.5, f64::NAN] {
        let err = at_cett(&model, &tokens, c, &config(64, 2), &mut |_, _| {}).unwrap_err();
        assert!(matches!(err, Error::InvalidCett { .. }), "{err}");
    }
    let err = at_cett(&model, &tokens[..100], 0.2, &config(64, 2), &mut |_, _| {}).unwrap_err();
    assert!(
        matches!(
            err,
            Error::CorpusTooShort {
                n_tokens: 100,
                needed: 128,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("100 tokens"), "{err}");
    let err = at_cett(&model, &tokens, 0.2, &config(1, 2), &mut |_, _| {}).unwrap_err();
    assert!(err.to_string().contains("window"), "{err}");
    let err = at_cett(&model, &tokens, 0.2, &config(256, 1), &mut |_, _| {}).unwrap_err();
    assert!(matches!(err, Error::CorpusTooShort { .. }), "{err}");
    let err = at_cett(&model, &tokens, 0.2, &config(64, 0), &mut |_, _| {}).unwrap_err();
    assert!(err.to_string().contains("n_windows"), "{err}");
    let mut bad_tol = config(64, 2);
    bad_tol.tol = 0.0;
    let err = ppl_p(&model, &tokens, &[1.0], &bad_tol, &mut |_, _| {}).unwrap_err();
    assert!(err.to_string().contains("tol"), "{err}");
    // A window longer than the model's context (128 tokens).
    let long = kjv(&model, 400);
    let err = at_cett(&model, &long, 0.2, &config(200, 2), &mut |_, _| {}).unwrap_err();
    assert!(err.to_string().contains("context"), "{err}");

    let err = ThresholdMask::new(&model, &[0.1, 0.2]).unwrap_err();
    assert!(err.to_string().contains("4 values"), "{err}");
    let err = ThresholdMask::new(&model, &[0.1, f64::NAN, 0.1, 0.1]).unwrap_err();
    assert!(err.to_string().contains("layer 1"), "{err}");

    let acts = burn::tensor::Tensor::<B, 2>::ones([3, 5], &Default::default());
    let weight = burn::tensor::Tensor::<B, 2>::ones([4, 2], &Default::default());
    let err = layer_threshold(acts.clone(), weight, 0.2, &ThresholdConfig::default()).unwrap_err();
    assert!(matches!(err, Error::Shape { .. }), "{err}");
    let grid = ThresholdConfig {
        grid_size: 1,
        ..ThresholdConfig::default()
    };
    let weight = burn::tensor::Tensor::<B, 2>::ones([5, 2], &Default::default());
    let err = layer_threshold(acts, weight, 0.2, &grid).unwrap_err();
    assert!(err.to_string().contains("grid_size"), "{err}");
}

#[test]
fn an_encoder_has_no_mlp_to_sparsify() {
    let dir = root().join("tests/fixtures/bert-tiny");
    let model = Model::<B>::load(&dir, &Default::default()).unwrap();
    let tokens: Vec<u32> = (0..32).map(|i| i % 50).collect();
    let err = at_cett(&model, &tokens, 0.2, &config(16, 2), &mut |_, _| {}).unwrap_err();
    assert!(matches!(err, Error::NoMlp { .. }), "{err}");
    assert!(err.to_string().contains("bert-tiny"), "{err}");
}

//! Checkpoint series: checkpoints found by step with their tokens seen; the joint PPL-p%
//! bisection on the last checkpoints matches the single-model search when the checkpoints
//! are copies of one model; every checkpoint's measurement matches the single-model one;
//! bad series folders and series too short to fit are refused with the folder or the count
//! named.

use std::path::{Path, PathBuf};

use burn::backend::Flex;
use strata_core::Model;
use strata_core::eval::corpus;
use strata_sparsity::{
    DensePass, Error, Law, LawConfig, SeriesTarget, SparsityConfig, at_cett, discover_checkpoints,
    measure_series, planned_passes,
};

type B = Flex;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "strata-sparsity-series-{name}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A checkpoint folder `dir/name` holding a copy of `model`, with `tokens` seen recorded
/// when given.
fn checkpoint(dir: &Path, name: &str, model: &Path, tokens: Option<u64>) -> PathBuf {
    let ckpt = dir.join(name);
    std::fs::create_dir_all(&ckpt).unwrap();
    for f in ["config.json", "model.safetensors", "tokenizer.json"] {
        if model.join(f).is_file() {
            std::fs::copy(model.join(f), ckpt.join(f)).unwrap();
        }
    }
    if let Some(t) = tokens {
        std::fs::write(
            ckpt.join("trainer_state.json"),
            format!("{{\"step\": 0, \"n_tokens_seen\": {t}}}"),
        )
        .unwrap();
    }
    ckpt
}

fn tiny_dir() -> PathBuf {
    root().join("datasets/models/tiny-default")
}

fn kjv(model: &Model<B>) -> Vec<u32> {
    let text = std::fs::read_to_string(root().join("datasets/kjv/valid.txt")).unwrap();
    let lines: Vec<&str> = text.lines().take(200).collect();
    corpus::frame_lines(model.tokenizer().unwrap(), lines).unwrap()
}

#[test]
fn a_series_of_copies_measures_like_the_one_model() {
    let dir = scratch("copies");
    for (name, tokens) in [
        ("step40", 8192),
        ("step10", 2048),
        ("step20", 4096),
        ("step30", 6144),
        ("step50", 10240),
    ] {
        checkpoint(&dir, name, &tiny_dir(), Some(tokens));
    }
    std::fs::create_dir_all(dir.join("logs")).unwrap();
    let checkpoints = discover_checkpoints(&dir, None).unwrap();
    let steps: Vec<u64> = checkpoints.iter().map(|c| c.step).collect();
    assert_eq!(steps, [10, 20, 30, 40, 50]);
    assert_eq!(checkpoints[3].tokens_seen, 8192);

    let device = Default::default();
    let model = Model::<B>::load(&tiny_dir(), &device).unwrap();
    let tokens = kjv(&model);
    let config = SparsityConfig {
        window: 64,
        n_windows: 2,
        tol: 1e-2,
        ..SparsityConfig::for_model(model.config())
    };
    // The single-model PPL-1% search on the same tokens.
    let mut dense = DensePass::run(&model, &tokens, &config, &mut |_, _| {}).unwrap();
    let alone = dense.search(&model, 1.0, &mut |_, _| {}).unwrap();

    let mut seen = Vec::new();
    let target = SeriesTarget::PplP { p: 1.0, last: 2 };
    let series = measure_series::<B>(
        &dir,
        &checkpoints,
        &tokens,
        target,
        &config,
        &device,
        &mut |done, planned| seen.push((done, planned)),
    )
    .unwrap();
    let search = series.search.as_ref().unwrap();
    assert_eq!(search.on_steps, [40, 50]);
    // The mean of identical PPL ratios is the ratio: the same bisection, the same CETT.
    assert_eq!(search.cett, alone.cett);
    assert_eq!(series.cett, alone.cett);
    assert_eq!(search.steps.len(), alone.steps.len());
    for c in &series.checkpoints {
        assert_eq!(c.result.layers, alone.result.layers, "step {}", c.step);
        assert_eq!(c.result.ppl_ratio(), alone.result.ppl_ratio());
    }
    let (dense_passes, sparse_passes) = planned_passes(5, target, &config);
    assert_eq!(series.n_dense_passes, dense_passes);
    assert_eq!(series.n_sparse_passes, sparse_passes);
    assert_eq!(
        seen.last(),
        Some(&(dense_passes + sparse_passes, dense_passes + sparse_passes))
    );
    assert!(
        seen.windows(2).all(|w| w[0].0 <= w[1].0),
        "progress never goes back"
    );

    // A fixed CETT gives every checkpoint the one-model measurement at that CETT.
    let fixed = measure_series::<B>(
        &dir,
        &checkpoints,
        &tokens,
        SeriesTarget::Cett(0.2),
        &config,
        &device,
        &mut |_, _| {},
    )
    .unwrap();
    let one = at_cett(&model, &tokens, 0.2, &config, &mut |_, _| {}).unwrap();
    assert!(fixed.search.is_none());
    for c in &fixed.checkpoints {
        assert_eq!(c.result, one);
    }
    // The same ratio at every checkpoint: no law fits a constant series, and it says so.
    let e = fixed.fit(Law::Silu, 0, &LawConfig::default()).unwrap_err();
    assert!(e.to_string().contains("constant"), "{e}");
    // Five checkpoints, the first dropped as warm-up: too few for the ReLU law.
    let e = fixed.fit(Law::Relu, 10, &LawConfig::default()).unwrap_err();
    assert!(
        matches!(
            e,
            Error::TooFewPoints {
                n_points: 4,
                needed: 5,
                ..
            }
        ),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_series_folders_are_refused_with_the_folder_named() {
    let msg = |dir: &Path, per_step| discover_checkpoints(dir, per_step).unwrap_err().to_string();

    let empty = scratch("empty");
    std::fs::create_dir_all(empty.join("not-a-checkpoint")).unwrap();
    let e = msg(&empty, None);
    assert!(
        e.contains(&empty.display().to_string()) && e.contains("no checkpoint"),
        "{e}"
    );

    let one = scratch("one");
    checkpoint(&one, "step100", &tiny_dir(), Some(100));
    let e = msg(&one, None);
    assert!(
        e.contains(&one.display().to_string()) && e.contains("at least two"),
        "{e}"
    );

    let missing = PathBuf::from("/no/such/series");
    assert!(msg(&missing, None).contains("/no/such/series"));

    let untracked = scratch("untracked");
    checkpoint(&untracked, "step1", &tiny_dir(), None);
    checkpoint(&untracked, "step2", &tiny_dir(), None);
    let e = msg(&untracked, None);
    assert!(e.contains("step1") && e.contains("tokens per step"), "{e}");
    // With a tokens-per-step count the tokens seen are step * count.
    let found = discover_checkpoints(&untracked, Some(512)).unwrap();
    assert_eq!(found[1].tokens_seen, 1024);

    let bad_name = scratch("badname");
    checkpoint(&bad_name, "step1", &tiny_dir(), Some(1));
    checkpoint(&bad_name, "stepX", &tiny_dir(), Some(2));
    assert!(msg(&bad_name, None).contains("stepX"));

    let no_config = scratch("noconfig");
    checkpoint(&no_config, "step1", &tiny_dir(), Some(1));
    std::fs::create_dir_all(no_config.join("step2")).unwrap();
    let e = msg(&no_config, None);
    assert!(e.contains("step2") && e.contains("config.json"), "{e}");

    // Two architectures in one series.
    let mixed = scratch("mixed");
    checkpoint(&mixed, "step1", &tiny_dir(), Some(1));
    checkpoint(
        &mixed,
        "step2",
        &root().join("tests/fixtures/llama-tiny"),
        Some(2),
    );
    let checkpoints = discover_checkpoints(&mixed, None).unwrap();
    let model = Model::<B>::load(&tiny_dir(), &Default::default()).unwrap();
    let config = SparsityConfig::for_model(model.config());
    let e = measure_series::<B>(
        &mixed,
        &checkpoints,
        &kjv(&model),
        SeriesTarget::Cett(0.2),
        &config,
        &Default::default(),
        &mut |_, _| {},
    )
    .unwrap_err();
    assert!(e.to_string().contains("another architecture"), "{e}");
    // A series of one checkpoint is refused by the measurement too.
    let e = measure_series::<B>(
        &mixed,
        &checkpoints[..1],
        &kjv(&model),
        SeriesTarget::Cett(0.2),
        &config,
        &Default::default(),
        &mut |_, _| {},
    )
    .unwrap_err();
    assert!(e.to_string().contains("at least two"), "{e}");
    for dir in [empty, one, untracked, bad_name, no_config, mixed] {
        std::fs::remove_dir_all(dir).unwrap();
    }
}

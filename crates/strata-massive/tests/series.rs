//! Checkpoint series: discovery in step order, the (checkpoint, layer) table, and every
//! kind of bad series refused with the folder named; NaN activations located.

use std::fs;
use std::path::{Path, PathBuf};

use burn::backend::Flex;
use strata_core::Model;
use strata_core::probe::{FnProbe, ProbeSet, Site};
use strata_core::weights::HostTensor;
use strata_massive::{
    Error, MassiveConfig, Statistic, discover_series, measure, measure_series, measure_with,
    series_rows,
};

type B = Flex;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(name)
}

/// A fresh folder under the system temp dir, unique to this test.
fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "strata-massive-series-{}-{test}",
        std::process::id()
    ));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

fn copy_model(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for file in ["config.json", "model.safetensors"] {
        fs::copy(from.join(file), to.join(file)).unwrap();
    }
}

/// A series of the llama-tiny fixture at the given step folder names.
fn series(test: &str, names: &[&str]) -> PathBuf {
    let dir = scratch(test);
    for name in names {
        copy_model(&fixture("llama-tiny"), &dir.join(name));
    }
    dir
}

fn sequences() -> Vec<Vec<u32>> {
    vec![
        vec![3, 14, 15, 92, 65, 35, 89, 79],
        vec![27, 18, 28, 18, 28, 45, 90, 45],
    ]
}

fn series_error(dir: &Path) -> String {
    let err = discover_series(dir).unwrap_err();
    assert!(matches!(err, Error::Series { .. }), "{err:?}");
    err.to_string()
}

#[test]
fn checkpoints_come_in_step_order_and_fill_a_checkpoint_by_layer_table() {
    // Listed out of numeric order on purpose (lexicographic order would put step1000 first).
    let dir = series(
        "order",
        &["step1000", "step2", "step0", "checkpoint-30", "notes"],
    );
    fs::remove_dir_all(dir.join("notes")).unwrap();
    fs::write(dir.join("README.txt"), "not a checkpoint").unwrap();
    let checkpoints = discover_series(&dir).unwrap();
    let steps: Vec<u64> = checkpoints.iter().map(|c| c.step).collect();
    assert_eq!(steps, vec![0, 2, 30, 1000]);
    let config = MassiveConfig::default();
    let mut seen = Vec::new();
    let result = measure_series::<B>(
        &dir,
        &checkpoints,
        &sequences(),
        &config,
        &Default::default(),
        &mut |done, total| seen.push((done, total)),
    )
    .unwrap();
    assert_eq!(seen.last(), Some(&(4, 4)));
    assert_eq!(result.steps(), vec![0, 2, 30, 1000]);
    assert_eq!(result.n_tokens, 16);
    // Every checkpoint holds the same weights here: the series equals one measurement.
    let model = Model::<B>::load(&fixture("llama-tiny"), &Default::default()).unwrap();
    let single = measure(&model, &sequences(), &config, &mut |_, _| {}).unwrap();
    let rows = series_rows(&result);
    assert_eq!(rows.len(), 4 * 2);
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(row.step, [0, 2, 30, 1000][i / 2]);
        assert_eq!(row.layer, i % 2);
        let want = &single.layers[row.layer];
        assert_eq!(row.top1, want.mean_top1());
        assert_eq!(row.median, want.mean_median());
    }
    let trajectory = result.trajectory(1, Statistic::Ratio);
    assert_eq!(trajectory, vec![single.layers[1].ratio_of_means(); 4]);
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_missing_folder_or_one_without_checkpoints_is_named() {
    let dir = scratch("empty");
    let err = series_error(&dir);
    assert!(err.contains("holds no checkpoint folders"), "{err}");
    assert!(err.contains(&dir.display().to_string()), "{err}");
    let missing = dir.join("nope");
    let err = series_error(&missing);
    assert!(err.contains("nope"), "{err}");
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_step_that_is_not_a_number_is_named() {
    let dir = series("nan-step", &["step0", "step1k"]);
    let err = series_error(&dir);
    assert!(
        err.contains("step1k") && err.contains("not a step number"),
        "{err}"
    );
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_step_given_twice_is_named() {
    let dir = series("twice", &["step100", "step0100"]);
    let err = series_error(&dir);
    assert!(err.contains("step 100 appears twice"), "{err}");
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_incomplete_checkpoint_is_named() {
    let dir = series("incomplete", &["step0", "step8"]);
    fs::remove_file(dir.join("step8/config.json")).unwrap();
    let err = series_error(&dir);
    assert!(
        err.contains("step8") && err.contains("no config.json"),
        "{err}"
    );
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn folders_out_of_order_are_named() {
    let dir = series("unordered", &["step0", "step8", "step16"]);
    // step8's folder holds what was saved at step 16.
    fs::write(dir.join("step8/trainer_state.json"), r#"{"step": 16}"#).unwrap();
    fs::write(dir.join("step16/trainer_state.json"), r#"{"step": 16}"#).unwrap();
    let err = series_error(&dir);
    assert!(err.contains("step8"), "{err}");
    assert!(
        err.contains("records step 16") && err.contains("out of order"),
        "{err}"
    );
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn missing_steps_of_a_strata_run_are_named() {
    let dir = series("missing", &["step0", "step1", "step4"]);
    fs::write(
        dir.join("summary.json"),
        r#"{"report": {"checkpoints": [0, 1, 2, 4, 8]}}"#,
    )
    .unwrap();
    let err = series_error(&dir);
    assert!(
        err.contains("steps 2, 8") && err.contains("missing steps"),
        "{err}"
    );
    fs::write(
        dir.join("summary.json"),
        r#"{"report": {"checkpoints": [0, 1, 4]}}"#,
    )
    .unwrap();
    assert_eq!(discover_series(&dir).unwrap().len(), 3);
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_checkpoint_of_another_architecture_is_named_before_any_weights_load() {
    let dir = series("arch", &["step0", "step10"]);
    copy_model(&fixture("gpt-neox-tiny"), &dir.join("step20"));
    let checkpoints = discover_series(&dir).unwrap();
    let err = measure_series::<B>(
        &dir,
        &checkpoints,
        &sequences(),
        &MassiveConfig::default(),
        &Default::default(),
        &mut |done, _| assert_eq!(done, usize::MAX, "nothing is measured"),
    )
    .unwrap_err();
    let Error::ArchitectureMismatch { path, key, .. } = &err else {
        panic!("{err:?}");
    };
    assert!(path.ends_with("step20"), "{err}");
    assert_eq!(key, "family");
    let text = err.to_string();
    assert!(text.contains("step20") && text.contains("step0"), "{text}");
    // A changed layer count is named by its key.
    let dir2 = series("arch-layers", &["step0", "step10"]);
    let cfg = fs::read_to_string(dir2.join("step10/config.json")).unwrap();
    fs::write(
        dir2.join("step10/config.json"),
        cfg.replace("\"num_hidden_layers\": 2", "\"num_hidden_layers\": 3"),
    )
    .unwrap();
    let err = strata_massive::check_architecture::<B>(&discover_series(&dir2).unwrap())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("`n_layers` is 3") && err.contains("has 2"),
        "{err}"
    );
    fs::remove_dir_all(&dir).unwrap();
    fs::remove_dir_all(&dir2).unwrap();
}

#[test]
fn a_nan_activation_is_reported_with_its_location() {
    let model = Model::<B>::load(&fixture("llama-tiny"), &Default::default()).unwrap();
    let d = model.config().d_model;
    // NaN in block 1's output of the second sequence, position 5, dimension 9.
    let mut calls = 0usize;
    let mut poison = FnProbe::<B, _>::new(
        |site| site == Site::ResidPost { layer: 1 },
        move |_, x, _| {
            calls += 1;
            let mut host = HostTensor::from_tensor(x);
            if calls == 2 {
                host.data[5 * d + 9] = f32::NAN;
            }
            Ok(host.into_device(&Default::default()))
        },
    );
    let err = measure_with(
        &model,
        &sequences(),
        &MassiveConfig::default(),
        &mut ProbeSet::one(&mut poison),
        &mut |_, _| {},
    )
    .unwrap_err();
    let Error::NonFiniteActivation {
        layer,
        sequence,
        position,
        dim,
        value,
    } = &err
    else {
        panic!("{err:?}");
    };
    assert_eq!((*layer, *sequence, *position, *dim), (1, 1, 5, 9));
    assert!(value.is_nan());
    let text = err.to_string();
    assert!(
        text.contains("block 1") && text.contains("sequence 1") && text.contains("position 5"),
        "{text}"
    );
}

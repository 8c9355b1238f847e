//! `strata sparsity` end to end: the output contract (`sparsity.csv` and `.parquet` with one
//! row per (p, layer), `sparsity.json` per p), the fixed-CETT mode, token ids instead of a
//! corpus, and bad input refused with a message naming the value.

use std::path::PathBuf;
use std::process::Command;

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn strata(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_strata"))
        .current_dir(workspace())
        .args(args)
        .output()
        .expect("strata runs")
}

fn out_dir(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("strata-sparsity-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn ok(args: &[&str]) {
    let out = strata(args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn ppl_p_writes_the_table_and_the_summary() {
    let dir = out_dir("p");
    let out = dir.to_str().unwrap();
    ok(&[
        "sparsity",
        "--model",
        "datasets/models/tiny-default",
        "--corpus",
        "datasets/kjv/valid.txt",
        "--p",
        "1,5",
        "--window",
        "64",
        "--n-windows",
        "2",
        "--out",
        out,
    ]);
    let csv = std::fs::read_to_string(dir.join("sparsity.csv")).unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    for column in ["p", "layer", "threshold", "activation_ratio"] {
        assert!(header.contains(&column), "{header:?}");
    }
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let rows: Vec<Vec<String>> = lines
        .map(|l| l.split(',').map(str::to_owned).collect())
        .collect();
    assert_eq!(rows.len(), 2 * 4, "one row per (p, layer)");
    assert!(dir.join("sparsity.parquet").exists());
    assert!(dir.join("sparsity_by_layer.svg").exists());
    assert!(dir.join("manifest.json").exists());

    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("sparsity.json")).unwrap()).unwrap();
    let runs = json["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    for (i, run) in runs.iter().enumerate() {
        let p = run["p"].as_f64().unwrap();
        assert_eq!(p, [1.0, 5.0][i]);
        let cett = run["cett"].as_f64().unwrap();
        assert!(cett > 0.0 && cett < 1.0);
        let (dense, sparse) = (
            run["dense_ppl"].as_f64().unwrap(),
            run["sparse_ppl"].as_f64().unwrap(),
        );
        assert!(sparse > dense && dense > 1.0);
        // The table and the summary report the same per-layer values.
        let ratios = run["activation_ratios"].as_array().unwrap();
        let mean = ratios.iter().map(|v| v.as_f64().unwrap()).sum::<f64>() / ratios.len() as f64;
        assert!((mean - run["mean_activation_ratio"].as_f64().unwrap()).abs() < 1e-12);
        for (layer, row) in rows
            .iter()
            .filter(|r| r[col("p")].parse::<f64>().unwrap() == p)
            .enumerate()
        {
            assert_eq!(row[col("layer")].parse::<usize>().unwrap(), layer);
            let ratio: f64 = row[col("activation_ratio")].parse().unwrap();
            assert!((ratio - ratios[layer].as_f64().unwrap()).abs() < 1e-12);
            let threshold: f64 = row[col("threshold")].parse().unwrap();
            assert!((threshold - run["thresholds"][layer].as_f64().unwrap()).abs() < 1e-12);
        }
    }
    assert!(
        runs[1]["mean_activation_ratio"].as_f64().unwrap()
            < runs[0]["mean_activation_ratio"].as_f64().unwrap()
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_fixed_cett_on_token_ids() {
    let dir = out_dir("cett");
    let ids: Vec<String> = (0..48).map(|i| ((i * 37 + 5) % 96).to_string()).collect();
    ok(&[
        "sparsity",
        "--model",
        "tests/fixtures/llama-tiny",
        "--token-ids",
        &ids.join(","),
        "--cett",
        "0.2",
        "--window",
        "24",
        "--n-windows",
        "2",
        "--out",
        dir.to_str().unwrap(),
    ]);
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("sparsity.json")).unwrap()).unwrap();
    let run = &json["runs"][0];
    assert!(run["p"].is_null());
    assert_eq!(run["cett"].as_f64().unwrap(), 0.2);
    let csv = std::fs::read_to_string(dir.join("sparsity.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 2, "header and one row per layer");
    std::fs::remove_dir_all(&dir).unwrap();
}

fn fails_with(args: &[&str], needle: &str) {
    let out = strata(args);
    assert!(!out.status.success(), "{args:?} succeeded");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(needle), "{args:?}: `{err}` lacks `{needle}`");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn bad_input_exits_with_a_message_naming_the_value() {
    let tiny = ["sparsity", "--model", "datasets/models/tiny-default"];
    let with = |extra: &[&'static str]| -> Vec<&'static str> {
        tiny.iter().chain(extra).copied().collect()
    };
    fails_with(
        &with(&["--corpus", "datasets/kjv/valid.txt", "--p", "0"]),
        "invalid p = 0",
    );
    fails_with(
        &with(&["--corpus", "datasets/kjv/valid.txt", "--p", "150"]),
        "(0, 100]",
    );
    fails_with(
        &with(&["--corpus", "datasets/kjv/valid.txt", "--cett", "2"]),
        "invalid CETT target 2",
    );
    fails_with(
        &with(&["--token-ids", "1,2,3,4,5", "--window", "4"]),
        "too short",
    );
    fails_with(
        &with(&["--corpus", "no/such/corpus.txt"]),
        "no/such/corpus.txt",
    );
    fails_with(&with(&[]), "--corpus or --token-ids");
}

/// A series folder `name` of copies of the tiny default model at `steps`, 2048 tokens a step
/// recorded in each `trainer_state.json`.
fn series_of_copies(name: &str, steps: &[u64]) -> PathBuf {
    let dir = out_dir(name);
    let model = workspace().join("datasets/models/tiny-default");
    for step in steps {
        let ckpt = dir.join(format!("step{step}"));
        std::fs::create_dir_all(&ckpt).unwrap();
        for f in ["config.json", "model.safetensors", "tokenizer.json"] {
            std::fs::copy(model.join(f), ckpt.join(f)).unwrap();
        }
        std::fs::write(
            ckpt.join("trainer_state.json"),
            format!("{{\"step\": {step}, \"n_tokens_seen\": {}}}", step * 2048),
        )
        .unwrap();
    }
    dir
}

const SMALL: [&str; 8] = [
    "--corpus",
    "datasets/kjv/valid.txt",
    "--window",
    "64",
    "--n-windows",
    "2",
    "--tol",
    "1e-2",
];

#[test]
fn a_series_writes_its_table_fits_and_figure() {
    let series = series_of_copies("series-in", &[10, 20, 30, 40, 50]);
    let dir = out_dir("series-out");
    let mut args = vec!["sparsity", "--series", series.to_str().unwrap()];
    args.extend(SMALL);
    args.extend(["--last", "2", "--warmup-steps", "10"]);
    args.extend(["--out", dir.to_str().unwrap()]);
    ok(&args);
    for f in [
        "series.csv",
        "series.parquet",
        "series.json",
        "activation_over_training.svg",
        "manifest.json",
    ] {
        assert!(dir.join(f).is_file(), "{f} missing");
    }
    let csv = std::fs::read_to_string(dir.join("series.csv")).unwrap();
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    for column in ["step", "tokens_seen", "warmup", "layer", "activation_ratio"] {
        assert!(header.contains(&column), "{header:?}");
    }
    assert_eq!(
        csv.lines().count(),
        1 + 5 * 4,
        "one row per (checkpoint, layer)"
    );

    // The one-model PPL-1% search on the same windows finds the same CETT: the checkpoints
    // are copies, so the mean of their PPL ratios is the one model's.
    let one = out_dir("series-one");
    let mut args = vec!["sparsity", "--model", "datasets/models/tiny-default"];
    args.extend(SMALL);
    args.extend(["--out", one.to_str().unwrap()]);
    ok(&args);
    let read = |path: PathBuf| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    };
    let alone = read(one.join("sparsity.json"));
    let json = read(dir.join("series.json"));
    let cett = json["series"]["cett"].as_f64().unwrap();
    assert_eq!(cett, alone["runs"][0]["cett"].as_f64().unwrap());
    assert_eq!(
        json["series"]["search"]["on_steps"],
        serde_json::json!([40, 50])
    );
    assert_eq!(json["warmup_steps"], 10);
    assert_eq!(json["n_fit_points"], 4);
    let checkpoints = json["series"]["checkpoints"].as_array().unwrap();
    assert_eq!(checkpoints.len(), 5);
    assert_eq!(checkpoints[4]["tokens_seen"], 50 * 2048);
    // Both laws are reported; neither fits copies of one model, and each says why.
    let fits = json["fits"].as_array().unwrap();
    assert_eq!(fits.len(), 2);
    for fit in fits {
        assert!(fit["fit"].is_null());
        let error = fit["error"].as_str().unwrap();
        assert!(
            error.contains("constant") || error.contains("too few points"),
            "{error}"
        );
    }
    // The tiny default model is SiLU-gated: the SiLU law is its law.
    assert_eq!(fits[1]["law"], "silu");
    assert_eq!(fits[1]["for_this_activation"], true);
    for d in [series, dir, one] {
        std::fs::remove_dir_all(d).unwrap();
    }
}

#[test]
fn bad_series_exit_with_a_message_naming_the_folder() {
    let empty = out_dir("series-empty");
    std::fs::create_dir_all(&empty).unwrap();
    let one = series_of_copies("series-single", &[100]);
    let short = series_of_copies("series-short", &[10, 20, 30]);
    let with = |dir: &PathBuf, extra: &[&str]| -> Vec<String> {
        ["sparsity", "--series", dir.to_str().unwrap()]
            .iter()
            .chain(SMALL.iter())
            .chain(extra)
            .map(|s| s.to_string())
            .collect()
    };
    let run = |args: Vec<String>, needle: &str| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        fails_with(&args, needle);
    };
    run(with(&empty, &[]), "holds no checkpoint folders");
    run(with(&empty, &[]), empty.to_str().unwrap());
    run(with(&one, &[]), "a series needs at least two");
    run(with(&one, &[]), one.to_str().unwrap());
    run(with(&short, &["--p", "1,5"]), "give one --p");
    run(with(&short, &["--cett", "1.5"]), "invalid CETT target 1.5");
    fails_with(
        &["sparsity", "--corpus", "datasets/kjv/valid.txt"],
        "--series",
    );

    // Three checkpoints, one of them warm-up: too few points for either law, said on the
    // terminal and in the summary, while the measurements are written.
    let out = out_dir("series-short-out");
    let args = with(
        &short,
        &[
            "--cett",
            "0.2",
            "--warmup-steps",
            "10",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let output = strata(&args);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.contains("too few points to fit the relu law: 2 point(s)"),
        "{text}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("series.json")).unwrap()).unwrap();
    assert!(
        json["fits"][1]["error"]
            .as_str()
            .unwrap()
            .contains("at least 4")
    );
    for d in [empty, one, short, out] {
        std::fs::remove_dir_all(d).unwrap();
    }
}

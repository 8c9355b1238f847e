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

//! Sharded corpus runs end to end: `ppl`, `massive --corpus` and `sparsity --cett` run
//! whole and as shards, `strata merge` of the shards writes the whole run's files, and
//! bad `--shard` values and inconsistent shard sets are refused with a message naming the
//! value or the file.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

const MODEL: &str = "datasets/models/tiny-default";
const CORPUS: &str = "datasets/kjv/valid.txt";

/// Relative tolerance between a merged float and the whole run's. The whole run adds each
/// sequence's or window's statistics to one running f64 sum; the merge adds the shards'
/// sums, which is the same terms added in another order (floating-point addition is not
/// associative), and `ppl` sends its windows through the model in other batches. Counts,
/// positions, token ids and the kept top entries are compared exactly.
const SUM_TOLERANCE: f64 = 1e-9;

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

/// A fresh, empty folder for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("strata-shard-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn ok(args: &[&str]) -> String {
    let out = strata(args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn fails_with(args: &[&str], needle: &str) {
    let out = strata(args);
    assert!(!out.status.success(), "{args:?} should fail");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(needle),
        "{args:?}: stderr lacks {needle:?}:\n{stderr}"
    );
}

fn cat<'a>(a: &[&'a str], b: &[&'a str]) -> Vec<&'a str> {
    [a, b].concat()
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Runs `command` whole into `root/whole`, as `n` shards into `root/shard{i}`, and merges
/// the shards into `root/merged`.
fn run_whole_and_sharded(root: &Path, command: &[&str], n: usize) {
    let whole = root.join("whole");
    ok(&cat(command, &["--out", path(&whole)]));
    let mut dirs = Vec::new();
    for i in 1..=n {
        let dir = root.join(format!("shard{i}"));
        let shard = format!("{i}/{n}");
        ok(&cat(command, &["--shard", &shard, "--out", path(&dir)]));
        assert!(dir.join("shard.json").is_file(), "{shard}: no shard.json");
        dirs.push(dir);
    }
    // The shards go in out of order: merge sorts them by number.
    dirs.reverse();
    let merged = root.join("merged");
    let dir_args: Vec<&str> = dirs.iter().map(|d| path(d)).collect();
    ok(&cat(&["merge", "--out", path(&merged)], &dir_args));
    assert!(
        !merged.join("shard.json").exists(),
        "a merged result is not a shard"
    );
}

/// `table.csv` of the whole and the merged run compared with [`assert_same_csv`]; where the
/// two came out byte for byte equal, `table.parquet` must be too (it holds the same rows).
fn assert_same_table(root: &Path, table: &str) {
    let file = |run: &str, ext: &str| root.join(run).join(format!("{table}.{ext}"));
    assert_same_csv(&file("whole", "csv"), &file("merged", "csv"));
    let bytes = |p: PathBuf| std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    if bytes(file("whole", "csv")) == bytes(file("merged", "csv")) {
        assert!(
            bytes(file("whole", "parquet")) == bytes(file("merged", "parquet")),
            "{table}.parquet differs where {table}.csv does not"
        );
    } else {
        assert!(file("merged", "parquet").is_file(), "{table}.parquet");
    }
}

fn same_number(a: f64, b: f64) -> bool {
    a == b || (a - b).abs() <= SUM_TOLERANCE * a.abs().max(b.abs())
}

/// Two tables cell by cell: equal text, or numbers within [`SUM_TOLERANCE`].
fn assert_same_csv(whole: &Path, merged: &Path) {
    let read = |p: &Path| -> Vec<csv::StringRecord> {
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .from_path(p)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        reader.records().map(Result::unwrap).collect()
    };
    let (a, b) = (read(whole), read(merged));
    assert_eq!(a.len(), b.len(), "{}: rows", merged.display());
    assert!(a.len() > 1, "{}: no rows", whole.display());
    for (row, (ra, rb)) in a.iter().zip(&b).enumerate() {
        assert_eq!(ra.len(), rb.len(), "{} row {row}", merged.display());
        for (col, (x, y)) in ra.iter().zip(rb).enumerate() {
            let same = x == y
                || matches!((x.parse::<f64>(), y.parse::<f64>()), (Ok(p), Ok(q)) if same_number(p, q));
            assert!(same, "{} row {row} col {col}: {x} vs {y}", merged.display());
        }
    }
}

/// Two JSON values: equal, or numbers within [`SUM_TOLERANCE`]; keys in `skip` (timings)
/// are not compared.
fn assert_same_json(a: &Value, b: &Value, at: &str, skip: &[&str]) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut kx: Vec<_> = x.keys().collect();
            let mut ky: Vec<_> = y.keys().collect();
            kx.sort();
            ky.sort();
            assert_eq!(kx, ky, "{at}: keys");
            for (k, v) in x {
                if !skip.contains(&k.as_str()) {
                    assert_same_json(v, &y[k], &format!("{at}.{k}"), skip);
                }
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            assert_eq!(x.len(), y.len(), "{at}: length");
            for (i, (v, w)) in x.iter().zip(y).enumerate() {
                assert_same_json(v, w, &format!("{at}[{i}]"), skip);
            }
        }
        (Value::Number(x), Value::Number(y)) if x.is_f64() || y.is_f64() => {
            let (p, q) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            assert!(same_number(p, q), "{at}: {p} vs {q}");
        }
        _ => assert_eq!(a, b, "{at}"),
    }
}

fn read_json(p: &Path) -> Value {
    let text =
        std::fs::read_to_string(p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()));
    serde_json::from_str(&text).unwrap()
}

fn assert_same_json_file(root: &Path, file: &str, skip: &[&str]) {
    assert_same_json(
        &read_json(&root.join("whole").join(file)),
        &read_json(&root.join("merged").join(file)),
        file,
        skip,
    );
}

/// The files the manifest lists, without the shard state.
fn manifest_files(dir: &Path) -> Vec<String> {
    let manifest = read_json(&dir.join("manifest.json"));
    let mut files: Vec<String> = manifest["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap().to_string())
        .collect();
    files.sort();
    files
}

#[test]
fn ppl_shards_merge_to_the_whole_run() {
    let root = scratch("ppl");
    let command = [
        "ppl",
        "--model",
        MODEL,
        "--corpus",
        CORPUS,
        "--max-tokens",
        "1500",
        "--window",
        "64",
        "--stride",
        "32",
    ];
    run_whole_and_sharded(&root, &command, 3);
    assert_same_json_file(&root, "ppl.json", &[]);
    let whole = read_json(&root.join("whole/ppl.json"));
    let merged = read_json(&root.join("merged/ppl.json"));
    // Counts are exact: every predicted token is predicted by exactly one shard.
    assert_eq!(merged["n_predicted"], whole["n_predicted"]);
    assert_eq!(whole["n_predicted"].as_u64(), Some(1499));
    let n_windows = whole["n_windows"].as_u64().unwrap();
    assert_eq!(merged["windows"]["end"].as_u64(), Some(n_windows));
    // The shards' own files say which windows they evaluated.
    let first = read_json(&root.join("shard1/ppl.json"));
    assert_eq!(first["shard"], "1/3");
    assert_eq!(first["windows"]["start"], 0);
    assert_eq!(
        manifest_files(&root.join("merged")),
        manifest_files(&root.join("whole"))
    );
    std::fs::remove_dir_all(&root).ok();
}

#[test]
fn massive_corpus_shards_merge_to_the_whole_run() {
    let root = scratch("massive");
    let command = [
        "massive",
        "--model",
        MODEL,
        "--corpus",
        CORPUS,
        "--seq-len",
        "32",
        "--n-seq",
        "7",
        "--top-k",
        "6",
        "--abs-threshold",
        "1",
        "--ratio-threshold",
        "5",
    ];
    run_whole_and_sharded(&root, &command, 3);
    for table in ["massive", "top_activations"] {
        assert_same_table(&root, table);
    }
    assert_same_json_file(&root, "massive.json", &[]);
    // The kept entries are the same entries, numbered as in the whole corpus.
    let whole = read_json(&root.join("whole/massive.json"));
    let merged = read_json(&root.join("merged/massive.json"));
    for (a, b) in whole["layers"]
        .as_array()
        .unwrap()
        .iter()
        .zip(merged["layers"].as_array().unwrap())
    {
        assert_eq!(a["n_sequences"], 7);
        assert_eq!(a["n_sequences"], b["n_sequences"]);
        assert_eq!(a["top"], b["top"], "top entries are exact");
    }
    let bytes = |run: &str, file: &str| {
        let p = root.join(run).join(file);
        std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    };
    // The heatmap is copied from the shard that holds the largest entry.
    assert!(bytes("whole", "top_layer_heatmap.svg") == bytes("merged", "top_layer_heatmap.svg"));
    // The other figures are drawn from the result: equal results draw equal figures.
    let same_result = bytes("whole", "massive.json") == bytes("merged", "massive.json");
    for figure in ["massive_by_layer.svg", "ratio_by_layer.svg"] {
        let merged = bytes("merged", figure);
        assert!(!same_result || bytes("whole", figure) == merged, "{figure}");
    }
    assert_eq!(
        manifest_files(&root.join("merged")),
        manifest_files(&root.join("whole"))
    );
    std::fs::remove_dir_all(&root).ok();
}

#[test]
fn sparsity_fixed_cett_shards_merge_to_the_whole_run() {
    let root = scratch("sparsity");
    let command = [
        "sparsity",
        "--model",
        MODEL,
        "--corpus",
        CORPUS,
        "--cett",
        "0.2",
        "--window",
        "32",
        "--n-windows",
        "5",
        "--grid-size",
        "4096",
    ];
    run_whole_and_sharded(&root, &command, 2);
    assert_same_table(&root, "sparsity");
    // Wall times are the machines', not the measurement's.
    assert_same_json_file(&root, "sparsity.json", &["wall_s", "dense_wall_s"]);
    let merged = read_json(&root.join("merged/sparsity.json"));
    assert_eq!(merged["n_windows"], 5);
    assert_eq!(merged["n_dense_passes"], 5);
    assert_eq!(merged["runs"][0]["result"]["n_windows"], 5);
    assert!(root.join("merged/sparsity_by_layer.svg").is_file());
    std::fs::remove_dir_all(&root).ok();
}

#[test]
fn bad_shard_values_are_refused_naming_the_value() {
    let dir = scratch("bad-values");
    let out = path(&dir);
    let ppl = [
        "ppl",
        "--model",
        MODEL,
        "--corpus",
        CORPUS,
        "--max-tokens",
        "100",
    ];
    fails_with(
        &cat(&ppl, &["--shard", "0/2", "--out", out]),
        "`0/2`: shards are numbered from 1 to 2",
    );
    fails_with(
        &cat(&ppl, &["--shard", "3/2", "--out", out]),
        "`3/2`: shards are numbered from 1 to 2",
    );
    fails_with(&cat(&ppl, &["--shard", "1/0", "--out", out]), "at least 1");
    fails_with(
        &cat(&ppl, &["--shard", "half", "--out", out]),
        "`half` is not a shard",
    );
    fails_with(&cat(&ppl, &["--shard", "1/2"]), "--shard 1/2 needs --out");
    // 100 tokens in windows of 64 with stride 32 are 3 windows: one of 4 shards is empty.
    let mut args = cat(&ppl, &["--window", "64", "--stride", "32"]);
    args.extend(["--shard", "1/4", "--out", out]);
    fails_with(&args, "only 3 windows, so shard 1 of 4 would be empty");

    let massive = ["massive", "--model", MODEL, "--out", out, "--shard", "1/2"];
    fails_with(
        &cat(&massive, &["--text", "In the beginning"]),
        "splits the sequences of --corpus",
    );
    fails_with(
        &cat(&massive, &["--corpus", CORPUS, "--intervene"]),
        "cannot run --intervene",
    );
    fails_with(
        &[
            "sparsity", "--model", MODEL, "--corpus", CORPUS, "--p", "1", "--shard", "1/2",
            "--out", out,
        ],
        "--shard 1/2 needs --cett",
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// Writes `dir/shard.json` edited by `edit` into a copy of `dir` at `to`.
fn edited_copy(dir: &Path, to: &Path, edit: impl FnOnce(&mut Value)) {
    std::fs::create_dir_all(to).unwrap();
    let mut state = read_json(&dir.join("shard.json"));
    edit(&mut state);
    std::fs::write(
        to.join("shard.json"),
        serde_json::to_string(&state).unwrap(),
    )
    .unwrap();
}

#[test]
fn merge_refuses_shard_sets_that_are_not_one_run() {
    let root = scratch("mismatch");
    let ppl = |shard: &str, window: &str, model: &str, dir: &Path| {
        ok(&[
            "ppl",
            "--model",
            model,
            "--corpus",
            CORPUS,
            "--max-tokens",
            "300",
            "--window",
            window,
            "--stride",
            "16",
            "--shard",
            shard,
            "--out",
            path(dir),
        ]);
    };
    let (one, two) = (root.join("one"), root.join("two"));
    ppl("1/2", "32", MODEL, &one);
    ppl("2/2", "32", MODEL, &two);
    let merged = root.join("merged");
    let merge = |dirs: &[&Path], needle: &str| {
        let mut args = vec!["merge", "--out", path(&merged)];
        args.extend(dirs.iter().map(|d| path(d)));
        fails_with(&args, needle);
    };
    // The complete set merges.
    ok(&["merge", "--out", path(&merged), path(&one), path(&two)]);

    merge(&[&one], "shard 2/2 missing");
    merge(&[&one, &one, &two], "are both shard 1/2");

    let other_window = root.join("two-window-24");
    ppl("2/2", "24", MODEL, &other_window);
    merge(&[&one, &other_window], "setting `window` is 24");

    // Another model: the tiny model with one config value changed.
    let model = root.join("other-model");
    std::fs::create_dir_all(&model).unwrap();
    for file in ["model.safetensors", "tokenizer.json"] {
        std::fs::copy(workspace().join(MODEL).join(file), model.join(file)).unwrap();
    }
    let config = std::fs::read_to_string(workspace().join(MODEL).join("config.json")).unwrap();
    std::fs::write(
        model.join("config.json"),
        config.replace("\"rms_norm_eps\": 1e-6", "\"rms_norm_eps\": 1e-5"),
    )
    .unwrap();
    let other_model = root.join("two-other-model");
    ppl("2/2", "32", path(&model), &other_model);
    merge(
        &[&one, &other_model],
        "two-other-model/shard.json measured the model",
    );

    let three = root.join("three");
    edited_copy(&two, &three, |s| s["shard"] = "2/3".into());
    merge(&[&one, &three], "is shard 2/3, but");
    let massive = root.join("massive");
    edited_copy(&two, &massive, |s| s["command"] = "massive".into());
    merge(&[&one, &massive], "is a `massive` shard");
    let newer = root.join("newer");
    edited_copy(&two, &newer, |s| s["version"] = 99.into());
    merge(&[&one, &newer], "newer/shard.json: shard state version 99");
    let moved = root.join("moved");
    edited_copy(&two, &moved, |s| s["items"]["start"] = 0.into());
    merge(
        &[&one, &moved],
        "moved/shard.json: shard 2/2 lists windows 0..",
    );

    merge(&[&one, &root.join("nowhere")], "nowhere: no such folder");
    merge(&[&one, &root.join("other-model")], "other-model/shard.json");
    fails_with(
        &["merge", "--out", path(&one), path(&one), path(&two)],
        "is the folder of shard 1/2",
    );
    std::fs::remove_dir_all(&root).ok();
}

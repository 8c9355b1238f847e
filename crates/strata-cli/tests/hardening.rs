//! The `strata` binary under careless or hostile use: closed and full stdout, sites named
//! twice, inputs longer than the context, impossible window and stride, a file-size limit
//! while writing, unknown units, and plain-text warnings when stderr is not a terminal.

use std::path::PathBuf;
use std::process::{Command, Stdio};

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn fixture(name: &str) -> String {
    workspace()
        .join("tests/fixtures")
        .join(name)
        .display()
        .to_string()
}

fn tiny_default() -> String {
    workspace()
        .join("datasets/models/tiny-default")
        .display()
        .to_string()
}

fn strata(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(args)
        .output()
        .expect("strata runs")
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs and expects a failure whose message contains every needle, and no panic.
fn fails_with(args: &[&str], needles: &[&str]) {
    let out = strata(args);
    let err = stderr(&out);
    assert!(!out.status.success(), "{args:?} succeeded: {err}");
    assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
    for needle in needles {
        assert!(err.contains(needle), "{args:?}: `{needle}` not in: {err}");
    }
}

#[test]
fn a_closed_stdout_ends_quietly_with_status_zero() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(["info", "--model", &fixture("llama-tiny")])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Close the reading end before strata writes its first line.
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "status {:?}: {}",
        out.status,
        stderr(&out)
    );
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));
}

#[test]
fn a_full_stdout_is_an_error_with_a_message() {
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(["info", "--model", &fixture("llama-tiny")])
        .stdout(full)
        .output()
        .unwrap();
    let err = stderr(&out);
    assert!(!out.status.success());
    assert!(err.contains("cannot write to standard output"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn a_site_named_twice_is_captured_once() {
    let out_path = std::env::temp_dir().join(format!(
        "strata-dup-sites-{}.safetensors",
        std::process::id()
    ));
    let out = strata(&[
        "capture",
        "--model",
        &fixture("gpt2-tiny"),
        "--token-ids",
        "1,2,3",
        "--sites",
        "logits,logits,blocks.*.hook_resid_post,blocks.0.hook_resid_post",
        "--out",
        out_path.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let bytes = std::fs::read(&out_path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut names: Vec<String> = st.names().into_iter().map(|s| s.to_string()).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "blocks.0.hook_resid_post",
            "blocks.1.hook_resid_post",
            "logits"
        ]
    );
}

#[test]
fn inputs_past_the_context_are_refused_up_front() {
    let long_text = "And it came to pass ".repeat(5_000);
    fails_with(
        &["generate", "--model", &tiny_default(), "--text", &long_text],
        &["longer than the model's context"],
    );
    fails_with(
        &[
            "capture",
            "--model",
            &tiny_default(),
            "--text",
            &long_text,
            "--sites",
            "logits",
            "--out",
            "/tmp/never.safetensors",
        ],
        &["longer than the model's context"],
    );
    fails_with(
        &[
            "generate",
            "--model",
            &tiny_default(),
            "--text",
            "In the beginning",
            "--max-new-tokens",
            "1000000000",
        ],
        &["exceeds the model's context", "at most"],
    );
    let corpus = workspace()
        .join("datasets/kjv/valid.txt")
        .display()
        .to_string();
    fails_with(
        &[
            "ppl",
            "--model",
            &tiny_default(),
            "--corpus",
            &corpus,
            "--window",
            "512",
            "--max-tokens",
            "600",
        ],
        &["window", "context"],
    );
    fails_with(
        &[
            "ppl",
            "--model",
            &tiny_default(),
            "--corpus",
            &corpus,
            "--stride",
            "0",
            "--max-tokens",
            "600",
        ],
        &["stride"],
    );
}

#[test]
fn an_interrupted_write_leaves_the_previous_result() {
    let dir = std::env::temp_dir().join(format!("strata-fsize-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let out_path = dir.join("capture.safetensors");
    std::fs::write(&out_path, b"the earlier result").unwrap();
    // A 1-block (512 byte) file-size limit: the capture cannot be written.
    let script = format!(
        "ulimit -f 1; exec {} capture --model {} --token-ids 1,2,3,4 --sites 'blocks.*.hook_resid_post,logits' --out {}",
        env!("CARGO_BIN_EXE_strata"),
        fixture("gpt2-tiny"),
        out_path.display()
    );
    let out = Command::new("bash").args(["-c", &script]).output().unwrap();
    assert!(!out.status.success());
    assert_eq!(std::fs::read(&out_path).unwrap(), b"the earlier result");
}

#[test]
fn an_unknown_esd_unit_is_an_error() {
    let out_dir = std::env::temp_dir().join(format!("strata-esd-{}", std::process::id()));
    fails_with(
        &[
            "spectra",
            "--model",
            &fixture("llama-tiny"),
            "--out",
            out_dir.to_str().unwrap(),
            "--esd",
            "no.such.unit",
        ],
        &["--esd", "no.such.unit"],
    );
}

#[test]
fn warnings_carry_no_colour_codes_when_stderr_is_not_a_terminal() {
    // A tied model with a separate head: strata warns that the head is not used.
    let dir = std::env::temp_dir().join(format!("strata-ansi-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for entry in std::fs::read_dir(fixture("gpt2-tiny")).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.join(path.file_name().unwrap())).unwrap();
    }
    let bytes = std::fs::read(dir.join("model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut tensors: Vec<(String, safetensors::tensor::TensorView<'_>)> =
        st.tensors().into_iter().collect();
    let wte = st.tensor("transformer.wte.weight").unwrap();
    tensors.push(("lm_head.weight".into(), wte));
    let out = safetensors::serialize(tensors, None).unwrap();
    std::fs::write(dir.join("model.safetensors"), out).unwrap();
    let run = strata(&[
        "generate",
        "--model",
        dir.to_str().unwrap(),
        "--token-ids",
        "1,2",
        "--max-new-tokens",
        "2",
    ]);
    let err = stderr(&run);
    assert!(run.status.success(), "{err}");
    assert!(err.contains("lm_head.weight"), "{err}");
    assert!(!err.contains('\u{1b}'), "colour codes in: {err:?}");
}

#[test]
fn a_memory_limit_refuses_what_would_not_fit() {
    // The tiny model's weights alone are several MB: a 1 MB limit refuses the load.
    fails_with(
        &[
            "generate",
            "--model",
            &tiny_default(),
            "--text",
            "In the beginning",
            "--max-memory",
            "1M",
        ],
        &["would need about", "1.0 MiB"],
    );
    fails_with(
        &[
            "generate",
            "--model",
            &tiny_default(),
            "--text",
            "x",
            "--max-memory",
            "lots",
        ],
        &["--max-memory"],
    );
    let ok = strata(&[
        "generate",
        "--model",
        &tiny_default(),
        "--text",
        "In the beginning",
        "--max-new-tokens",
        "2",
        "--max-memory",
        "2G",
    ]);
    assert!(ok.status.success(), "{}", stderr(&ok));
}

#[test]
fn a_run_into_an_old_folder_writes_a_manifest_and_names_stale_files() {
    let out_dir = std::env::temp_dir().join(format!("strata-manifest-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out_dir);
    std::fs::create_dir_all(&out_dir).unwrap();
    std::fs::write(out_dir.join("esd_of_another_model.svg"), "<svg/>").unwrap();
    let run = strata(&[
        "spectra",
        "--model",
        &fixture("llama-tiny"),
        "--out",
        out_dir.to_str().unwrap(),
        "--no-figures",
    ]);
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(
        stderr(&run).contains("esd_of_another_model.svg"),
        "{}",
        stderr(&run)
    );
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("manifest.json")).unwrap())
            .unwrap();
    let files: Vec<&str> = manifest["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    assert_eq!(files, ["spectra.csv", "spectra.parquet", "spectra.json"]);
    assert!(manifest["model"].as_str().unwrap().ends_with("llama-tiny"));
    assert!(manifest["finished_unix_s"].as_u64().unwrap() > 1_700_000_000);
}

#[test]
fn massive_reports_every_layer_and_writes_its_tables() {
    let out_dir = std::env::temp_dir().join(format!("strata-massive-{}", std::process::id()));
    let corpus = workspace()
        .join("datasets/kjv/valid.txt")
        .display()
        .to_string();
    let run = strata(&[
        "massive",
        "--model",
        &tiny_default(),
        "--corpus",
        &corpus,
        "--seq-len",
        "64",
        "--n-seq",
        "3",
        "--abs-threshold",
        "0",
        "--ratio-threshold",
        "1",
        "--top-k",
        "4",
        "--intervene",
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    assert!(run.status.success(), "{}", stderr(&run));
    let layers = std::fs::read_to_string(out_dir.join("massive.csv")).unwrap();
    let n_layers = 4; // tiny-default
    assert_eq!(layers.lines().count(), 1 + n_layers, "{layers}");
    assert!(
        layers.starts_with("layer,top1,top2,top3,median,ratio"),
        "{layers}"
    );
    for table in ["massive", "top_activations", "intervention"] {
        assert!(
            out_dir.join(format!("{table}.parquet")).is_file(),
            "{table}.parquet"
        );
    }
    let entries = std::fs::read_to_string(out_dir.join("top_activations.csv")).unwrap();
    assert_eq!(entries.lines().count(), 1 + 4 * n_layers, "{entries}");
    let intervention = std::fs::read_to_string(out_dir.join("intervention.csv")).unwrap();
    let rows: Vec<&str> = intervention.lines().collect();
    assert_eq!(rows.len(), 4, "{intervention}");
    assert!(
        rows[1].starts_with("none,")
            && rows[2].starts_with("zero,")
            && rows[3].starts_with("mean,")
    );
    // Thresholds of 0 and 1x flag every kept entry.
    assert!(
        entries.lines().skip(1).all(|l| l.ends_with(",true")),
        "{entries}"
    );
    fails_with(
        &["massive", "--model", &tiny_default()],
        &["give --text, --token-ids or --corpus"],
    );
}

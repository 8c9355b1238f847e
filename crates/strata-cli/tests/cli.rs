//! The `strata` binary end to end: `capture` on every fixture family writes the sites HF
//! computed, and bad input exits non-zero with a message naming the problem.

use std::path::{Path, PathBuf};
use std::process::Command;

use safetensors::SafeTensors;

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn strata(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(args)
        .output()
        .expect("strata runs")
}

fn f32_tensor(st: &SafeTensors<'_>, key: &str) -> (Vec<usize>, Vec<f64>) {
    let view = st
        .tensor(key)
        .unwrap_or_else(|_| panic!("no tensor `{key}`"));
    let values = match view.dtype() {
        safetensors::Dtype::F32 => view
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()) as f64)
            .collect(),
        safetensors::Dtype::I64 => view
            .data()
            .chunks_exact(8)
            .map(|b| i64::from_le_bytes(b.try_into().unwrap()) as f64)
            .collect(),
        other => panic!("unexpected dtype {other:?}"),
    };
    (view.shape().to_vec(), values)
}

fn capture_matches_reference(fixture: &str, decoder: bool) {
    let dir = workspace().join("tests/fixtures").join(fixture);
    let reference_bytes = std::fs::read(dir.join("reference.safetensors")).unwrap();
    let reference = SafeTensors::deserialize(&reference_bytes).unwrap();
    let (_, ids) = f32_tensor(&reference, "input_ids");
    let ids = ids
        .iter()
        .map(|&i| (i as u32).to_string())
        .collect::<Vec<_>>()
        .join(",");
    let out = std::env::temp_dir().join(format!(
        "strata-cli-{fixture}-{}.safetensors",
        std::process::id()
    ));
    let sites = if decoder {
        "hook_embed,blocks.*.hook_resid_post,logits"
    } else {
        "hook_embed,blocks.*.hook_resid_post"
    };
    let run = strata(&[
        "capture",
        "--model",
        dir.to_str().unwrap(),
        "--token-ids",
        &ids,
        "--sites",
        sites,
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(
        run.status.success(),
        "{fixture}: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let captured_bytes = std::fs::read(&out).unwrap();
    let captured = SafeTensors::deserialize(&captured_bytes).unwrap();
    let mut names: Vec<String> = captured.names().into_iter().map(String::from).collect();
    names.sort();
    let mut expected_names = vec![
        "blocks.0.hook_resid_post".to_string(),
        "blocks.1.hook_resid_post".into(),
        "hook_embed".into(),
    ];
    if decoder {
        expected_names.push("logits".into());
    }
    assert_eq!(
        names, expected_names,
        "{fixture}: one tensor per site, named as the site"
    );
    for name in &names {
        let (shape, got) = f32_tensor(&captured, name);
        let (ref_shape, want) = f32_tensor(&reference, name);
        assert_eq!(shape, ref_shape, "{fixture} {name}: [1, T, width]");
        let tol = 1e-4 * want.iter().fold(1.0f64, |m, v| m.max(v.abs()));
        let err = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        assert!(err <= tol, "{fixture} {name}: {err:e} > {tol:e}");
    }
    std::fs::remove_file(out).ok();
}

#[test]
fn capture_writes_hf_activations_for_every_family() {
    for fixture in [
        "gpt2-tiny",
        "gpt-neox-tiny",
        "gpt-neox-serial-tiny",
        "llama-tiny",
        "mistral-tiny",
        "qwen2-tiny",
    ] {
        capture_matches_reference(fixture, true);
    }
    capture_matches_reference("bert-tiny", false);
}

#[test]
fn capture_with_text_on_the_tiny_default_model() {
    let model = workspace().join("datasets/models/tiny-default");
    let out = std::env::temp_dir().join(format!(
        "strata-cli-text-{}.safetensors",
        std::process::id()
    ));
    let run = strata(&[
        "capture",
        "--model",
        model.to_str().unwrap(),
        "--text",
        "In the beginning",
        "--sites",
        "blocks.*.mlp.hook_post",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let bytes = std::fs::read(&out).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(model.join("config.json")).unwrap()).unwrap();
    let n_layers = cfg["num_hidden_layers"].as_u64().unwrap() as usize;
    assert_eq!(st.len(), n_layers);
    let view = st.tensor("blocks.0.mlp.hook_post").unwrap();
    assert_eq!(
        view.shape()[2],
        cfg["intermediate_size"].as_u64().unwrap() as usize
    );
    std::fs::remove_file(out).ok();
}

fn fails_with(args: &[&str], needle: &str) {
    let run = strata(args);
    assert!(!run.status.success(), "{args:?} should fail");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        stderr.contains(needle),
        "{args:?}: stderr lacks {needle:?}:\n{stderr}"
    );
}

#[test]
fn bad_input_exits_with_a_message_naming_the_problem() {
    let gpt2 = workspace().join("tests/fixtures/gpt2-tiny");
    let gpt2 = gpt2.to_str().unwrap();
    let out = std::env::temp_dir().join("strata-cli-never-written.safetensors");
    let out = out.to_str().unwrap();
    fails_with(
        &[
            "capture",
            "--model",
            gpt2,
            "--token-ids",
            "1,2",
            "--sites",
            "blocks.0.hook_nope",
            "--out",
            out,
        ],
        "blocks.0.hook_resid_post",
    );
    fails_with(
        &[
            "capture",
            "--model",
            gpt2,
            "--token-ids",
            "1,500",
            "--sites",
            "logits",
            "--out",
            out,
        ],
        "token id 500",
    );
    fails_with(
        &[
            "capture",
            "--model",
            gpt2,
            "--token-ids",
            "1",
            "--sites",
            "logits",
            "--out",
            out,
            "--device",
            "cuda",
        ],
        "--features cuda",
    );
    fails_with(
        &[
            "info",
            "--model",
            Path::new("/nonexistent/model").to_str().unwrap(),
        ],
        "config.json",
    );
    fails_with(
        &["generate", "--model", gpt2, "--text", "hello"],
        "tokenizer.json",
    );
}

#[test]
fn remote_devices_and_serving_name_their_cargo_features_when_missing() {
    let model = workspace().join("datasets/models/tiny-default");
    let model = model.to_str().unwrap();
    if !cfg!(feature = "remote") {
        fails_with(
            &[
                "generate",
                "--model",
                model,
                "--text",
                "hello",
                "--device",
                "remote:ws://127.0.0.1:3000",
            ],
            "--features remote",
        );
    }
    if !cfg!(feature = "server") {
        fails_with(&["serve-device"], "--features server");
    }
    fails_with(
        &[
            "generate",
            "--model",
            model,
            "--text",
            "hello",
            "--device",
            "remote:wss://127.0.0.1:3000",
        ],
        "malformed remote URL",
    );
}

//! A damaged checkpoint, an over-long input or a failing disk ends in a clear error (or a
//! warning), never a crash, a hang, a silently wrong number or a destroyed result. One test
//! per class of bad input.

mod common;

use std::path::Path;

use burn::backend::Flex;
use strata_core::eval::{PerplexityConfig, perplexity};
use strata_core::generate::{GenerateConfig, generate};
use strata_core::probe::{FiniteCheck, FnProbe, ProbeSet, Site};
use strata_core::weights::{HostTensor, WeightStore, write_safetensors};
use strata_core::{Error, Model, TokenBatch};

type B = Flex;

use common::scratch_copy;

fn load(dir: &Path) -> Result<Model<B>, Error> {
    Model::<B>::load(dir, &Default::default())
}

/// Sets `key` of the fixture's config.json to `value` (JSON text).
fn set_config(dir: &Path, key: &str, value: &str) {
    let path = dir.join("config.json");
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    json[key] = serde_json::from_str(value).unwrap();
    std::fs::write(&path, serde_json::to_string_pretty(&json).unwrap()).unwrap();
}

fn config_error(fixture: &str, key: &str, value: &str) -> String {
    let dir = scratch_copy(fixture, &format!("cfg-{key}"));
    set_config(&dir, key, value);
    let err = load(&dir).expect_err("a damaged config is refused");
    let msg = err.to_string();
    assert!(
        matches!(err, Error::BadConfig { .. }),
        "{key} = {value}: {msg}"
    );
    msg
}

#[test]
fn sizes_beyond_any_model_are_refused_before_allocating() {
    for (key, value) in [
        ("num_hidden_layers", "1000000000"),
        ("hidden_size", "1000000000000"),
        ("vocab_size", "4611686018427387904"),
        ("intermediate_size", "99999999999"),
        ("max_position_embeddings", "1000000000000"),
    ] {
        let msg = config_error("llama-tiny", key, value);
        assert!(msg.contains(key) && msg.contains("limit"), "{msg}");
        // Reading the config alone (what `strata info` does) refuses it too.
        let dir = scratch_copy("llama-tiny", &format!("read-{key}"));
        set_config(&dir, key, value);
        assert!(Model::<B>::read_config(&dir).is_err(), "{key}");
    }
}

#[test]
fn a_config_larger_than_its_weights_is_refused_before_allocating() {
    let msg = config_error("llama-tiny", "num_hidden_layers", "500");
    assert!(msg.contains("imply") && msg.contains("500 layers"), "{msg}");
}

#[test]
fn impossible_config_values_are_refused_with_their_key() {
    for (fixture, key, value) in [
        ("llama-tiny", "rms_norm_eps", "0.0"),
        ("llama-tiny", "rms_norm_eps", "-1e-5"),
        ("gpt2-tiny", "layer_norm_epsilon", "0.0"),
        ("llama-tiny", "eos_token_id", "5000"),
        ("llama-tiny", "bos_token_id", "96"),
        ("llama-tiny", "num_key_value_heads", "8"),
    ] {
        let msg = config_error(fixture, key, value);
        let shown = key.replace("layer_norm_epsilon", "layer_norm_eps");
        assert!(msg.contains(&shown), "{key} = {value}: {msg}");
    }
}

#[test]
fn a_non_positive_rotary_base_is_refused_in_either_config_style() {
    for (value, v5) in [("0.0", true), ("-10.0", true), ("0.0", false)] {
        let dir = scratch_copy("mistral-tiny", "theta");
        let path = dir.join("config.json");
        let mut json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let theta: serde_json::Value = serde_json::from_str(value).unwrap();
        if v5 {
            json["rope_parameters"]["rope_theta"] = theta;
        } else {
            json.as_object_mut().unwrap().remove("rope_parameters");
            json["rope_theta"] = theta;
        }
        std::fs::write(&path, json.to_string()).unwrap();
        let msg = load(&dir).unwrap_err().to_string();
        let key = if v5 {
            "rope_parameters.rope_theta"
        } else {
            "`rope_theta`"
        };
        assert!(
            msg.contains(key) && msg.contains("positive"),
            "{value}: {msg}"
        );
    }
}

#[test]
fn rope_errors_name_the_object_they_come_from() {
    let dir = scratch_copy("llama-tiny", "rope-params");
    let path = dir.join("config.json");
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    json.as_object_mut().unwrap().remove("rope_scaling");
    json["rope_parameters"] = serde_json::json!({"rope_type": "yarn", "rope_theta": 10000.0});
    std::fs::write(&path, json.to_string()).unwrap();
    let msg = load(&dir).unwrap_err().to_string();
    assert!(msg.contains("rope_parameters.rope_type"), "{msg}");
}

#[test]
fn non_finite_weights_are_named_by_tensor() {
    let dir = scratch_copy("llama-tiny", "nan-weights");
    let path = dir.join("model.safetensors");
    let store = WeightStore::open(&path).unwrap();
    let victim = "model.layers.1.self_attn.v_proj.weight";
    let tensors: Vec<(String, HostTensor)> = store
        .names()
        .into_iter()
        .map(|n| {
            let mut t = store.read_f32(&n).unwrap();
            if n == victim {
                t.data[3] = f32::NAN;
                t.data[7] = f32::INFINITY;
            }
            (n, t)
        })
        .collect();
    drop(store);
    write_safetensors(&path, &tensors, None).unwrap();
    let err = load(&dir).unwrap_err();
    assert!(
        matches!(&err, Error::NonFiniteWeights { key, n_bad: 2, .. } if key == victim),
        "{err}"
    );
}

#[test]
fn unused_tensors_are_reported() {
    let dir = scratch_copy("llama-tiny", "unused");
    let path = dir.join("model.safetensors");
    let store = WeightStore::open(&path).unwrap();
    let mut tensors: Vec<(String, HostTensor)> = store
        .names()
        .into_iter()
        .map(|n| (n.clone(), store.read_f32(&n).unwrap()))
        .collect();
    drop(store);
    tensors.push((
        "model.layers.7.mlp.gate_proj.weight".into(),
        HostTensor::new(vec![2, 2], vec![0.0; 4]),
    ));
    write_safetensors(&path, &tensors, None).unwrap();
    let model = load(&dir).unwrap();
    assert_eq!(
        model.unused_tensors(),
        vec!["model.layers.7.mlp.gate_proj.weight".to_string()]
    );
    assert!(
        load(&common::fixture("llama-tiny"))
            .unwrap()
            .unused_tensors()
            .is_empty()
    );
}

#[test]
fn a_tied_config_ignores_a_separate_head_as_transformers_does() {
    // qwen2-tiny ties its embeddings; add a random `lm_head.weight`: HF would still tie, so
    // the logits stay HF's reference logits.
    let dir = scratch_copy("qwen2-tiny", "tied-head");
    let (_, ids) = common::reference_ids("qwen2-tiny", "input_ids");
    let cfg = Model::<B>::read_config(&dir).unwrap();
    assert!(cfg.tied_embeddings);
    let head = HostTensor::new(
        vec![cfg.vocab_size, cfg.d_model],
        (0..cfg.vocab_size * cfg.d_model)
            .map(|i| ((i * 7919) % 13) as f32 - 6.0)
            .collect(),
    );
    write_safetensors(
        &dir.join("extra.safetensors"),
        &[("lm_head.weight".into(), head)],
        None,
    )
    .unwrap();
    // Point the index at the extra shard.
    let index_path = dir.join("model.safetensors.index.json");
    let mut index: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&index_path).unwrap()).unwrap();
    index["weight_map"]["lm_head.weight"] = "extra.safetensors".into();
    std::fs::write(&index_path, index.to_string()).unwrap();
    let model = load(&dir).unwrap();
    assert_eq!(model.unused_tensors(), vec!["lm_head.weight".to_string()]);
    let logits = model.forward(&TokenBatch::single(&ids).unwrap()).unwrap();
    let (shape, expected) = common::reference("qwen2-tiny", "logits");
    common::assert_close(
        "tied qwen2 logits",
        &HostTensor::from_tensor(logits),
        &shape,
        &expected,
    );
}

#[test]
fn an_index_cannot_point_outside_the_model_folder() {
    let dir = scratch_copy("qwen2-tiny", "escape");
    let index_path = dir.join("model.safetensors.index.json");
    for target in [
        "../../../../etc/passwd",
        "/etc/passwd",
        "sub/../../x.safetensors",
    ] {
        let mut index: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&index_path).unwrap()).unwrap();
        index["weight_map"]["model.norm.weight"] = target.into();
        std::fs::write(&index_path, index.to_string()).unwrap();
        let msg = load(&dir).unwrap_err().to_string();
        assert!(
            msg.contains("weight_map") && msg.contains("inside the model folder"),
            "{target}: {msg}"
        );
    }
}

#[test]
fn inputs_longer_than_the_context_are_refused_up_front() {
    for fixture in ["gpt2-tiny", "llama-tiny"] {
        let model = load(&common::fixture(fixture)).unwrap();
        let n_ctx = model.config().n_ctx;
        // 100k tokens: refused before any allocation (no 14 GB mask).
        let long = vec![1u32; 100_000];
        let err = model
            .forward(&TokenBatch::single(&long).unwrap())
            .unwrap_err();
        assert!(
            matches!(err, Error::SequenceTooLong { n_tokens: 100_000, n_ctx: c } if c == n_ctx),
            "{fixture}: {err}"
        );
        // A generation that would run past the context is refused before the first step.
        let config = GenerateConfig {
            max_new_tokens: 1_000_000_000,
            ..Default::default()
        };
        let started = std::time::Instant::now();
        let err = generate(&model, &[1, 2, 3], &config, &mut ProbeSet::none()).unwrap_err();
        assert!(matches!(err, Error::GenerationTooLong { .. }), "{err}");
        assert!(
            err.to_string().contains(&format!("at most {}", n_ctx - 3)),
            "{err}"
        );
        assert!(
            started.elapsed().as_secs() < 5,
            "refused without generating"
        );
        // A perplexity window longer than the context, and a zero stride.
        let tokens = vec![1u32; 3 * n_ctx];
        let err = perplexity(
            &model,
            &tokens,
            &PerplexityConfig {
                window: 4 * n_ctx,
                stride: n_ctx,
            },
            &mut ProbeSet::none(),
            &mut |_, _| {},
        )
        .unwrap_err();
        assert!(err.to_string().contains("context"), "{err}");
        assert!(PerplexityConfig::new(16, 0).is_err());
    }
}

#[test]
fn duplicate_tensor_names_are_an_error_not_a_panic() {
    let path = std::env::temp_dir().join(format!("strata-dup-{}.safetensors", std::process::id()));
    let t = HostTensor::new(vec![1], vec![1.0]);
    let err = write_safetensors(
        &path,
        &[("logits".into(), t.clone()), ("logits".into(), t)],
        None,
    )
    .unwrap_err();
    assert!(err.to_string().contains("`logits` appears twice"), "{err}");
}

#[test]
fn a_failed_write_leaves_the_previous_file_and_no_temporary() {
    let dir = std::env::temp_dir().join(format!("strata-atomic-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("result.json");
    strata_core::io::write_bytes_atomic(&path, b"old result").unwrap();
    let err = strata_core::io::write_atomic(&path, |w| {
        w.write_all(b"half of the new")?;
        Err(std::io::Error::other("disk full"))
    })
    .unwrap_err();
    assert!(err.to_string().contains("result.json"), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), b"old result");
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
}

#[test]
fn where_a_nan_first_appears_is_located() {
    let model = load(&common::fixture("gpt2-tiny")).unwrap();
    let batch = TokenBatch::single(&[1, 2, 3, 4]).unwrap();
    // A probe that writes NaN into token 2 of block 1's MLP output; the check runs after it.
    let mut poison = FnProbe::<B, _>::new(
        |site| site == Site::MlpOut { layer: 1 },
        |_, x, _| {
            let [b, p, d] = x.dims();
            let mut host = HostTensor::from_tensor(x);
            host.data[2 * d + 5] = f32::NAN;
            let _ = (b, p);
            Ok(host.into_device(&Default::default()))
        },
    );
    let mut check = FiniteCheck::default();
    model
        .forward_with(
            &batch,
            None,
            &mut ProbeSet::one(&mut poison).with(&mut check),
        )
        .unwrap();
    let at = check.first.expect("the NaN is found");
    assert_eq!(
        (at.site, at.row, at.pos, at.feature),
        (Site::MlpOut { layer: 1 }, 0, 2, 5)
    );
    let msg = at.into_error().to_string();
    assert!(
        msg.contains("blocks.1.hook_mlp_out") && msg.contains("position 2"),
        "{msg}"
    );
}

#[test]
fn config_paths_that_are_not_a_folder_with_a_file_say_what_they_are() {
    let base = std::env::temp_dir().join(format!("strata-paths-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    std::fs::create_dir_all(&base).unwrap();
    let read = |dir: &Path| Model::<B>::read_config(dir).unwrap_err().to_string();

    let missing = read(&base.join("nope"));
    assert!(missing.contains("no such model folder"), "{missing}");

    let file = base.join("plain.txt");
    std::fs::write(&file, "x").unwrap();
    let plain = read(&file);
    assert!(plain.contains("is a file, not a model folder"), "{plain}");

    let dir_config = base.join("dir-config");
    std::fs::create_dir_all(dir_config.join("config.json")).unwrap();
    let msg = read(&dir_config);
    assert!(msg.contains("is a folder, not a JSON file"), "{msg}");

    let looped = base.join("loop");
    std::fs::create_dir_all(&looped).unwrap();
    std::os::unix::fs::symlink(looped.join("config.json"), looped.join("config.json")).unwrap();
    let msg = read(&looped);
    assert!(
        msg.contains("config.json") && !msg.contains("no `config.json`"),
        "{msg}"
    );

    let array = base.join("array");
    std::fs::create_dir_all(&array).unwrap();
    std::fs::write(array.join("config.json"), "[1, 2]").unwrap();
    let msg = read(&array);
    assert!(
        msg.contains("must be a JSON object") && msg.contains("an array"),
        "{msg}"
    );

    // A byte-order mark is not an error.
    let bom = scratch_copy("gpt2-tiny", "bom");
    let text = std::fs::read_to_string(bom.join("config.json")).unwrap();
    std::fs::write(bom.join("config.json"), format!("\u{feff}{text}")).unwrap();
    Model::<B>::read_config(&bom).unwrap();
}

#[test]
fn an_unreadable_dtype_and_an_unwritable_path_are_named_plainly() {
    // A tensor stored as I64 where a float is expected: the error names the tensor and dtype.
    let dir = scratch_copy("llama-tiny", "dtype");
    let path = dir.join("model.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let victim = "model.norm.weight";
    let ints: Vec<u8> = (0..64i64).flat_map(|v| v.to_le_bytes()).collect();
    let mut tensors: Vec<(String, safetensors::tensor::TensorView<'_>)> = st
        .tensors()
        .into_iter()
        .filter(|(name, _)| name != victim)
        .collect();
    tensors.push((
        victim.into(),
        safetensors::tensor::TensorView::new(safetensors::Dtype::I64, vec![64], &ints).unwrap(),
    ));
    let out = safetensors::serialize(tensors, None).unwrap();
    std::fs::write(&path, out).unwrap();
    let msg = load(&dir).unwrap_err().to_string();
    assert!(msg.contains(victim) && msg.contains("I64"), "{msg}");

    // Writing below a path that is a file: the message is the I/O error on that path, not a
    // claim about the safetensors format.
    let blocker = std::env::temp_dir().join(format!("strata-blocker-{}", std::process::id()));
    std::fs::write(&blocker, "a file").unwrap();
    let target = blocker.join("capture.safetensors");
    let err = write_safetensors(
        &target,
        &[("x".into(), HostTensor::new(vec![1], vec![1.0]))],
        None,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("strata-blocker") && !err.contains("not a valid safetensors"),
        "{err}"
    );
}

#[test]
fn sizes_that_overflow_arithmetic_are_refused_not_panicked_on() {
    // Found by the randomised config test: a huge head_dim overflowed the rotary width, and
    // GPT-2's default MLP width (4 x hidden_size) can overflow too.
    for (fixture, key) in [("llama-tiny", "head_dim"), ("gpt2-tiny", "n_embd")] {
        let dir = scratch_copy(fixture, &format!("overflow-{key}"));
        set_config(&dir, key, "18446744073709551615");
        let err = Model::<B>::read_config(&dir).unwrap_err();
        assert!(matches!(err, Error::BadConfig { .. }), "{key}: {err}");
    }
}

//! Bad input gets a clear error naming the file, key or value: never a panic.

mod common;

use std::path::{Path, PathBuf};

use burn::backend::Flex;
use strata_core::weights::{HostTensor, WeightStore, write_safetensors};
use strata_core::{DeviceSpec, Error, Model, Site, TokenBatch, Tokenizer};

type B = Flex;

use common::scratch_copy;

fn load(dir: &Path) -> Result<Model<B>, Error> {
    Model::<B>::load(dir, &Default::default())
}

/// Rewrites `model.safetensors` through `edit`.
fn rewrite_weights(
    dir: &Path,
    edit: impl Fn(Vec<(String, HostTensor)>) -> Vec<(String, HostTensor)>,
) {
    let path = dir.join("model.safetensors");
    let store = WeightStore::open(&path).unwrap();
    let tensors: Vec<(String, HostTensor)> = store
        .names()
        .into_iter()
        .map(|n| (n.clone(), store.read_f32(&n).unwrap()))
        .collect();
    drop(store);
    write_safetensors(&path, &edit(tensors), None).unwrap();
}

#[test]
fn missing_config_names_the_folder_and_file() {
    let dir = scratch_copy("gpt2-tiny", "no-config");
    std::fs::remove_file(dir.join("config.json")).unwrap();
    let err = load(&dir).unwrap_err();
    assert!(
        matches!(err, Error::MissingFile { ref file, .. } if file == "config.json"),
        "{err}"
    );
    assert!(err.to_string().contains(&dir.display().to_string()));
}

#[test]
fn unknown_model_type_lists_the_known_ones() {
    let dir = scratch_copy("gpt2-tiny", "model-type");
    let path = dir.join("config.json");
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("\"gpt2\"", "\"falcon\"");
    std::fs::write(&path, text).unwrap();
    let err = load(&dir).unwrap_err();
    assert!(
        matches!(err, Error::UnknownModelType { ref value, .. } if value == "falcon"),
        "{err}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("config.json") && msg.contains("gpt_neox") && msg.contains("llama"),
        "{msg}"
    );
}

#[test]
fn heads_that_do_not_divide_the_width_are_a_config_error() {
    let dir = scratch_copy("llama-tiny", "heads");
    let path = dir.join("config.json");
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    cfg["num_attention_heads"] = 5.into();
    cfg.as_object_mut().unwrap().remove("head_dim");
    std::fs::write(&path, cfg.to_string()).unwrap();
    let err = load(&dir).unwrap_err();
    assert!(
        matches!(err, Error::BadConfig { ref key, .. } if key == "num_attention_heads"),
        "{err}"
    );
}

#[test]
fn missing_tensor_is_named() {
    let dir = scratch_copy("gpt-neox-tiny", "missing");
    let key = "gpt_neox.layers.1.mlp.dense_4h_to_h.weight";
    rewrite_weights(&dir, |ts| {
        ts.into_iter().filter(|(n, _)| n != key).collect()
    });
    let err = load(&dir).unwrap_err();
    assert!(
        matches!(err, Error::MissingTensor { key: ref k, .. } if k == key),
        "{err}"
    );
    assert!(err.to_string().contains("model.safetensors"));
}

#[test]
fn misshapen_tensor_reports_both_shapes() {
    let dir = scratch_copy("llama-tiny", "shape");
    let key = "model.layers.0.self_attn.k_proj.weight";
    rewrite_weights(&dir, |ts| {
        ts.into_iter()
            .map(|(n, t)| {
                if n == key {
                    (n, HostTensor::new(vec![16, 64], t.data[..16 * 64].to_vec()))
                } else {
                    (n, t)
                }
            })
            .collect()
    });
    let err = load(&dir).unwrap_err();
    match &err {
        Error::TensorShape {
            key: k,
            expected,
            found,
            ..
        } => {
            assert_eq!(k, key);
            assert_eq!(expected, &vec![32, 64]);
            assert_eq!(found, &vec![16, 64]);
        }
        other => panic!("expected a shape error, got {other}"),
    }
}

#[test]
fn truncated_safetensors_is_rejected_with_the_file_name() {
    let dir = scratch_copy("gpt2-tiny", "truncated");
    let path = dir.join("model.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 1000]).unwrap();
    let err = load(&dir).unwrap_err();
    assert!(matches!(err, Error::Safetensors { .. }), "{err}");
    assert!(err.to_string().contains("model.safetensors"), "{err}");
}

#[test]
fn corrupt_safetensors_header_is_rejected() {
    let dir = scratch_copy("gpt2-tiny", "corrupt");
    let path = dir.join("model.safetensors");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[8..40].copy_from_slice(&[b'#'; 32]);
    std::fs::write(&path, &bytes).unwrap();
    let err = load(&dir).unwrap_err();
    assert!(matches!(err, Error::Safetensors { .. }), "{err}");
}

#[test]
fn token_id_outside_the_vocabulary_is_named() {
    let model = load(&common::fixture("qwen2-tiny")).unwrap();
    let err = model
        .forward(&TokenBatch::single(&[1, 2, 96]).unwrap())
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::TokenOutOfRange {
                id: 96,
                vocab_size: 96
            }
        ),
        "{err}"
    );
}

#[test]
fn sequence_past_the_learned_position_limit_is_an_error() {
    let model = load(&common::fixture("gpt2-tiny")).unwrap();
    assert_eq!(model.config().n_ctx, 32);
    assert!(
        model
            .forward(&TokenBatch::single(&[1; 32]).unwrap())
            .is_ok()
    );
    let err = model
        .forward(&TokenBatch::single(&[1; 33]).unwrap())
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::SequenceTooLong {
                n_tokens: 33,
                n_ctx: 32
            }
        ),
        "{err}"
    );
}

#[test]
fn empty_input_is_an_error() {
    let tok_path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../datasets/tokenizer/tokenizer.json");
    let tok = Tokenizer::from_file(&tok_path).unwrap();
    assert!(matches!(tok.encode(""), Err(Error::EmptyInput { .. })));
    assert!(matches!(
        TokenBatch::single(&[]),
        Err(Error::EmptyInput { .. })
    ));
}

#[test]
fn unknown_site_lists_the_valid_ones() {
    let cfg = Model::<B>::read_config(&common::fixture("gpt-neox-tiny")).unwrap();
    let err = Site::expand("blocks.0.hook_resid_mid", &cfg).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("hook_resid_mid") && msg.contains("blocks.0.hook_resid_post"),
        "{msg}"
    );
    // A layer the model does not have is unknown too.
    assert!(Site::expand("blocks.7.hook_resid_post", &cfg).is_err());
    // GPT-NeoX has no learned positions.
    assert!(Site::expand("hook_pos_embed", &cfg).is_err());
}

#[test]
fn unavailable_device_names_its_cargo_feature() {
    let err = DeviceSpec::parse_available("cuda:1").unwrap_err();
    assert!(err.to_string().contains("--features cuda"), "{err}");
    let err = "tpu".parse::<DeviceSpec>().unwrap_err();
    assert!(err.to_string().contains("flex, wgpu"), "{err}");
}

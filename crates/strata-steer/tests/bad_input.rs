//! Bad input is an error naming the file, line, layer or value, never a panic.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::backend::Flex;
use strata_core::Model;
use strata_steer::{
    Error, ExtractConfig, Method, ReadPosition, SiteKind, Steering, SteeringMeta, SteeringVectors,
    aggregate, extract_activations, read_pairs,
};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn scratch(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("strata-steer-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.jsonl"));
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn a_line_without_a_negative_names_file_and_line() {
    let path = scratch(
        "unpaired",
        "{\"positive\": \"a\", \"negative\": \"b\"}\n{\"positive\": \"c\"}\n",
    );
    let err = read_pairs(&path, None).unwrap_err();
    assert!(matches!(err, Error::BadPair { line: 2, .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("unpaired.jsonl") && msg.contains("line 2"),
        "{msg}"
    );
}

#[test]
fn an_empty_set_or_unknown_concept_is_refused() {
    let path = scratch("empty", "\n\n");
    assert!(matches!(
        read_pairs(&path, None),
        Err(Error::Unpaired { .. })
    ));
    let real = root().join("datasets/steering/pairs.jsonl");
    let err = read_pairs(&real, Some("nonsense")).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("archaic") && msg.contains("nonsense"), "{msg}");
    assert_eq!(read_pairs(&real, Some("archaic")).unwrap().len(), 160);
}

#[test]
fn unequal_sides_are_refused_before_any_forward_pass() {
    let model = Model::<Flex>::load(
        &root().join("tests/fixtures/llama-tiny"),
        &Default::default(),
    )
    .unwrap();
    let err = extract_activations(
        &model,
        &[vec![1, 2, 3], vec![4, 5]],
        &[vec![1, 2, 3]],
        &ExtractConfig::default(),
        &mut |_, _| {},
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Unpaired {
                n_positive: 2,
                n_negative: 1,
                ..
            }
        ),
        "{err}"
    );
    let err = extract_activations(&model, &[], &[], &ExtractConfig::default(), &mut |_, _| {})
        .unwrap_err();
    assert!(matches!(err, Error::Unpaired { .. }));
    // A read position outside a sequence.
    let config = ExtractConfig {
        position: ReadPosition::Index(-9),
        ..ExtractConfig::default()
    };
    let err = extract_activations(
        &model,
        &[vec![1, 2]],
        &[vec![3, 4]],
        &config,
        &mut |_, _| {},
    )
    .unwrap_err();
    assert!(err.to_string().contains("-9"), "{err}");
    assert!(aggregate(Method::MeanDiff, &[1.0; 4], &[1.0; 2], 2).is_err());
}

fn meta(model_type: &str, d_model: usize) -> SteeringMeta {
    SteeringMeta {
        model: "somewhere/other-model".into(),
        model_type: model_type.into(),
        n_layers: 2,
        d_model,
        site: SiteKind::ResidPost,
        position: ReadPosition::Last,
        method: Method::MeanDiff,
        normalized: false,
        n_pairs: 3,
        concept: None,
    }
}

#[test]
fn a_vector_of_another_width_names_both_widths() {
    let model = Model::<Flex>::load(
        &root().join("tests/fixtures/llama-tiny"),
        &Default::default(),
    )
    .unwrap();
    let vectors = SteeringVectors {
        meta: meta("llama", 63),
        layers: BTreeMap::from([(0, vec![0.5; 63])]),
    };
    let err = vectors
        .check_model(
            Path::new("v.safetensors"),
            model.config(),
            "llama-tiny",
            true,
        )
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("63") && msg.contains("64") && msg.contains("llama-tiny"),
        "{msg}"
    );
    let steer = Steering::add(SiteKind::ResidPost, vectors.layers.clone(), 1.0).unwrap();
    let msg = steer
        .check_model(model.config(), "llama-tiny")
        .unwrap_err()
        .to_string();
    assert!(msg.contains("63") && msg.contains("64"), "{msg}");
}

#[test]
fn a_vector_made_for_another_model_is_refused_unless_allowed() {
    let model = Model::<Flex>::load(
        &root().join("tests/fixtures/llama-tiny"),
        &Default::default(),
    )
    .unwrap();
    let vectors = SteeringVectors {
        meta: meta("qwen2", 64),
        layers: BTreeMap::from([(1, vec![0.5; 64])]),
    };
    let file = Path::new("qwen.safetensors");
    let err = vectors
        .check_model(file, model.config(), "llama-tiny", false)
        .unwrap_err();
    assert!(matches!(err, Error::OtherModel { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("qwen2") && msg.contains("llama") && msg.contains("qwen.safetensors"),
        "{msg}"
    );
    vectors
        .check_model(file, model.config(), "llama-tiny", true)
        .unwrap();
}

#[test]
fn alpha_nan_is_refused() {
    let v = BTreeMap::from([(0, vec![1.0; 4])]);
    for alpha in [f32::NAN, f32::INFINITY] {
        let err = Steering::add(SiteKind::ResidPost, v.clone(), alpha).unwrap_err();
        assert!(err.to_string().contains("alpha"), "{err}");
    }
    assert!(Steering::ablate(&[0.0; 4]).is_err());
}

#[test]
fn bad_position_and_method_strings_say_what_is_accepted() {
    let err = "middle".parse::<ReadPosition>().unwrap_err().to_string();
    assert!(err.contains("middle") && err.contains("last"), "{err}");
    let err = "svd".parse::<Method>().unwrap_err().to_string();
    assert!(err.contains("svd") && err.contains("mean-diff"), "{err}");
    for text in ["last", "-2", "3", "mean", "mean:4", "explicit:1,3"] {
        assert_eq!(text.parse::<ReadPosition>().unwrap().to_string(), text);
    }
}

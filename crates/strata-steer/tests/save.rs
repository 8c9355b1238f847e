//! Saving, loading and the llama.cpp control-vector export, read back with strata-core's
//! GGUF reader.

use std::collections::BTreeMap;

use strata_core::weights::gguf::GgufFile;
use strata_steer::{Method, ReadPosition, SiteKind, SteeringMeta, SteeringVectors};

fn vectors() -> SteeringVectors {
    SteeringVectors {
        meta: SteeringMeta {
            model: "tests/fixtures/llama-tiny".into(),
            model_type: "llama".into(),
            n_layers: 3,
            d_model: 5,
            site: SiteKind::ResidPost,
            position: ReadPosition::Index(-2),
            method: Method::PcaCentered,
            normalized: false,
            n_pairs: 7,
            concept: Some("archaic".into()),
        },
        layers: BTreeMap::from([
            (0, vec![1.0, -2.0, 3.5, 0.25, -0.125]),
            (2, vec![0.1, 0.2, 0.3, 0.4, 0.5]),
        ]),
    }
}

fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("strata-steer-save-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

#[test]
fn safetensors_round_trip_keeps_vectors_and_metadata() {
    let path = scratch("directions.safetensors");
    let v = vectors();
    v.save(&path).unwrap();
    assert_eq!(SteeringVectors::load(&path).unwrap(), v);
    let bytes = std::fs::read(&path).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut names = file.names();
    names.sort();
    assert_eq!(
        names,
        ["blocks.0.hook_resid_post", "blocks.2.hook_resid_post"]
    );
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let meta = header.metadata().clone().unwrap();
    assert_eq!(meta["method"], "pca-centered");
    assert_eq!(meta["position"], "-2");
    assert_eq!(meta["layers"], "0,2");
    let normalized = v.normalized();
    let norm: f32 = normalized.layers[&0]
        .iter()
        .map(|x| x * x)
        .sum::<f32>()
        .sqrt();
    assert!((norm - 1.0).abs() < 1e-6 && normalized.meta.normalized);
}

#[test]
fn gguf_control_vector_reads_back() {
    let path = scratch("control.gguf");
    let v = vectors();
    v.export_gguf(&path).unwrap();
    let file = GgufFile::open(&path).unwrap();
    assert_eq!(file.version(), 3);
    assert_eq!(
        file.get_str("general.architecture").unwrap(),
        "controlvector"
    );
    assert_eq!(file.get_str("controlvector.model_hint").unwrap(), "llama");
    assert_eq!(file.get_u64("controlvector.layer_count").unwrap(), 2);
    let mut names = file.tensor_names();
    names.sort();
    assert_eq!(names, ["direction.1", "direction.3"]);
    for (layer, values) in &v.layers {
        let t = file.read_f32(&format!("direction.{}", layer + 1)).unwrap();
        assert_eq!(t.shape, vec![5]);
        assert_eq!(&t.data, values);
    }
}

#[test]
fn other_sites_do_not_export_as_control_vectors() {
    let mut v = vectors();
    v.meta.site = SiteKind::ResidPre;
    assert!(v.export_gguf(&scratch("pre.gguf")).is_err());
}

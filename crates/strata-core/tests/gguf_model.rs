//! GGUF files that cannot become a model are refused with a clear error: an architecture
//! strata does not implement (named), a metadata key of the wrong type (named, with both
//! types), a file that is not GGUF at all.

mod common;

use burn::backend::Flex;
use strata_core::Model;

type B = Flex;

fn gguf(name: &str) -> std::path::PathBuf {
    common::fixture("gguf").join(name)
}

#[test]
fn an_unsupported_architecture_is_named() {
    let msg = Model::<B>::load(&gguf("falcon-arch.gguf"), &Default::default())
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("falcon") && msg.contains("general.architecture") && msg.contains("llama"),
        "{msg}"
    );
    // `strata info` reads the config the same way.
    assert!(Model::<B>::read_config(&gguf("falcon-arch.gguf")).is_err());
}

#[test]
fn a_metadata_key_of_the_wrong_type_is_named() {
    let msg = Model::<B>::load(&gguf("llama-bad-type.gguf"), &Default::default())
        .unwrap_err()
        .to_string();
    assert!(msg.contains("llama.block_count"), "{msg}");
    assert!(msg.to_lowercase().contains("string"), "{msg}");
}

#[test]
fn a_file_named_gguf_that_is_not_one_is_refused() {
    let dir = std::env::temp_dir().join(format!("strata-not-gguf-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("model.gguf");
    std::fs::write(&path, b"{\"model_type\": \"llama\"}").unwrap();
    let msg = Model::<B>::load(&path, &Default::default())
        .unwrap_err()
        .to_string();
    assert!(msg.contains("model.gguf") && msg.contains("GGUF"), "{msg}");
}

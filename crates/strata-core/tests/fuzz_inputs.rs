//! Randomised inputs for every parser of untrusted files: `config.json`, the safetensors
//! header and the shard index. Whatever the bytes, strata returns an error or a model and
//! never panics, and never allocates beyond what the limits allow (a panic or an abort
//! fails the test).
//!
//! CI runs a few hundred cases per target; `STRATA_FUZZ_CASES=100000 cargo test -p
//! strata-core --test fuzz_inputs -- --nocapture` runs a long campaign, with a seed from
//! `STRATA_FUZZ_SEED` to reproduce one.

mod common;

use std::path::{Path, PathBuf};

use burn::backend::Flex;
use rand::Rng;
use rand::rngs::StdRng;
use strata_core::Model;
use strata_core::config::hf::HfConfig;
use strata_core::weights::WeightStore;

use common::{fuzz_cases as cases, fuzz_rng as rng};

fn scratch(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("strata-fuzz-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Values that break naive parsers: zero, negatives, huge, wrong types, NaN-like text.
fn hostile_value(rng: &mut StdRng) -> serde_json::Value {
    let pool = [
        "null",
        "0",
        "-1",
        "1",
        "2",
        "3",
        "7",
        "1e308",
        "-1e308",
        "1e-320",
        "0.0",
        "-0.5",
        "4294967296",
        "18446744073709551615",
        "9223372036854775807",
        "1000000000",
        "\"\"",
        "\"gelu\"",
        "\"llama\"",
        "\"NaN\"",
        "[]",
        "[1, 2]",
        "{}",
        "true",
        "false",
        "{\"rope_type\": \"llama3\", \"factor\": -1}",
        "{\"rope_type\": \"weird\"}",
        "{\"rope_theta\": 0}",
        "[null]",
    ];
    serde_json::from_str(pool[rng.random_range(0..pool.len())]).unwrap()
}

/// Mutates a JSON document: hostile values on existing keys, removed keys, or raw byte edits.
fn mutate_json(text: &str, rng: &mut StdRng) -> String {
    let mut value: serde_json::Value = serde_json::from_str(text).unwrap();
    match rng.random_range(0..4) {
        0 | 1 => {
            if let Some(obj) = value.as_object_mut() {
                let keys: Vec<String> = obj.keys().cloned().collect();
                for _ in 0..rng.random_range(1..4) {
                    let key = &keys[rng.random_range(0..keys.len())];
                    if rng.random_bool(0.2) {
                        obj.remove(key);
                    } else {
                        obj.insert(key.clone(), hostile_value(rng));
                    }
                }
            }
            value.to_string()
        }
        2 => {
            let mut bytes = value.to_string().into_bytes();
            for _ in 0..rng.random_range(1..6) {
                let i = rng.random_range(0..bytes.len());
                bytes[i] = rng.random();
            }
            String::from_utf8_lossy(&bytes).into_owned()
        }
        _ => {
            let text = value.to_string();
            let cut = rng.random_range(0..text.len());
            text[..cut].to_string()
        }
    }
}

fn copy_fixture(name: &str, into: &Path) {
    for entry in std::fs::read_dir(common::fixture(name)).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, into.join(path.file_name().unwrap())).unwrap();
    }
}

#[test]
fn config_parsing_never_panics() {
    let mut rng = rng(1);
    let fixtures = [
        "gpt2-tiny",
        "gpt-neox-tiny",
        "llama-tiny",
        "mistral-tiny",
        "qwen2-tiny",
        "bert-tiny",
    ];
    let path = Path::new("config.json");
    let (mut n_ok, mut n_err) = (0usize, 0usize);
    for case in 0..cases(600) {
        let fixture = fixtures[case % fixtures.len()];
        let text = std::fs::read_to_string(common::fixture(fixture).join("config.json")).unwrap();
        let fuzzed = mutate_json(&text, &mut rng);
        match HfConfig::parse(&fuzzed, path).and_then(|c| c.into_model_config(path)) {
            Ok(cfg) => {
                n_ok += 1;
                // Whatever was accepted is within the limits.
                assert!(cfg.n_layers <= strata_core::config::limits::MAX_LAYERS);
                assert!(cfg.norm_eps() > 0.0);
                let _ = strata_core::Site::all(&cfg);
            }
            Err(e) => {
                n_err += 1;
                assert!(!e.to_string().is_empty());
            }
        }
    }
    println!("config.json: {n_ok} accepted, {n_err} refused");
}

#[test]
fn loading_with_a_fuzzed_config_never_panics() {
    let mut rng = rng(2);
    let dir = scratch("load");
    let fixtures = ["gpt2-tiny", "llama-tiny", "gpt-neox-tiny", "bert-tiny"];
    let (mut n_ok, mut n_err) = (0usize, 0usize);
    for case in 0..cases(120) {
        let fixture = fixtures[case % fixtures.len()];
        copy_fixture(fixture, &dir);
        let text = std::fs::read_to_string(common::fixture(fixture).join("config.json")).unwrap();
        std::fs::write(dir.join("config.json"), mutate_json(&text, &mut rng)).unwrap();
        match Model::<Flex>::load(&dir, &Default::default()) {
            Ok(model) => {
                n_ok += 1;
                // A model that loaded runs a short input or refuses it cleanly.
                let batch = strata_core::TokenBatch::single(&[1, 2, 3]).unwrap();
                let _ = model.forward(&batch);
            }
            Err(_) => n_err += 1,
        }
        for entry in std::fs::read_dir(&dir).unwrap() {
            std::fs::remove_file(entry.unwrap().path()).unwrap();
        }
    }
    println!("load: {n_ok} loaded, {n_err} refused");
}

#[test]
fn safetensors_headers_never_panic() {
    let mut rng = rng(3);
    let dir = scratch("st");
    let original = std::fs::read(common::fixture("gpt2-tiny").join("model.safetensors")).unwrap();
    let header_len = u64::from_le_bytes(original[..8].try_into().unwrap()) as usize;
    let path = dir.join("model.safetensors");
    let (mut n_ok, mut n_err) = (0usize, 0usize);
    for _ in 0..cases(600) {
        let mut bytes = original.clone();
        match rng.random_range(0..4) {
            // Flip bytes inside the JSON header.
            0 | 1 => {
                for _ in 0..rng.random_range(1..8) {
                    let i = 8 + rng.random_range(0..header_len);
                    bytes[i] = rng.random();
                }
            }
            // A hostile header length.
            2 => {
                let len: u64 = [
                    0,
                    1,
                    7,
                    u64::MAX,
                    u64::MAX / 2,
                    1 << 40,
                    header_len as u64 + 1,
                ][rng.random_range(0..7)];
                bytes[..8].copy_from_slice(&len.to_le_bytes());
            }
            // Truncate anywhere.
            _ => bytes.truncate(rng.random_range(0..bytes.len())),
        }
        std::fs::write(&path, &bytes).unwrap();
        match WeightStore::open(&path) {
            Ok(store) => {
                n_ok += 1;
                for name in store.names() {
                    let _ = store.read_f32(&name);
                }
            }
            Err(_) => n_err += 1,
        }
    }
    println!("safetensors: {n_ok} opened, {n_err} refused");
}

#[test]
fn shard_indexes_never_panic_or_escape() {
    let mut rng = rng(4);
    let dir = scratch("index");
    copy_fixture("qwen2-tiny", &dir);
    let index_path = dir.join("model.safetensors.index.json");
    let original = std::fs::read_to_string(&index_path).unwrap();
    let names = [
        "../model.safetensors",
        "/etc/passwd",
        "",
        ".",
        "..",
        "a/../../b",
        "model-00001-of-00003.safetensors",
        "nonexistent.safetensors",
        "config.json",
        "model.safetensors.index.json",
    ];
    let (mut n_ok, mut n_err) = (0usize, 0usize);
    for _ in 0..cases(300) {
        let mut index: serde_json::Value = serde_json::from_str(&original).unwrap();
        let text = if rng.random_bool(0.7) {
            let keys: Vec<String> = index["weight_map"]
                .as_object()
                .unwrap()
                .keys()
                .cloned()
                .collect();
            for _ in 0..rng.random_range(1..4) {
                let key = &keys[rng.random_range(0..keys.len())];
                index["weight_map"][key] = if rng.random_bool(0.8) {
                    names[rng.random_range(0..names.len())].into()
                } else {
                    hostile_value(&mut rng)
                };
            }
            index.to_string()
        } else {
            mutate_json(&original, &mut rng)
        };
        std::fs::write(&index_path, &text).unwrap();
        match WeightStore::open(&dir) {
            Ok(_) => n_ok += 1,
            Err(_) => n_err += 1,
        }
    }
    println!("index: {n_ok} opened, {n_err} refused");
}

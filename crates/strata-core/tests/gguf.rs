//! The GGUF reader against the `gguf` Python package: every tensor of the fixtures
//! dequantizes bit-for-bit to the package's reference, the metadata and typed getters match,
//! v2 and v3 both parse, and bad or randomised headers give clear errors and never panic.
//!
//! The fixtures come from `tests/fixtures/gguf/make_gguf_fixtures.py`. The randomised tests
//! run a few hundred cases; `STRATA_FUZZ_CASES=100000 cargo test -p strata-core --test gguf
//! -- --nocapture` runs a long campaign, with a seed from `STRATA_FUZZ_SEED` to reproduce one.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use rand::Rng;
use rand::rngs::StdRng;
use safetensors::SafeTensors;
use strata_core::Error;
use strata_core::weights::gguf::{GgmlType, GgufArray, GgufFile, GgufValue};

const FILES: [&str; 2] = ["tensors.gguf", "v2.gguf"];

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/gguf")
}

fn reference_json() -> serde_json::Value {
    let text = std::fs::read_to_string(fixtures().join("reference.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn scratch(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("strata-gguf-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn fixture_bytes(name: &str) -> Vec<u8> {
    std::fs::read(fixtures().join(name)).unwrap()
}

/// Writes `bytes` to `dir/name` and opens it.
fn open_bytes(dir: &Path, name: &str, bytes: &[u8]) -> (PathBuf, Result<GgufFile, Error>) {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    let file = GgufFile::open(&path);
    (path, file)
}

/// The error message of a refused open, checked to name the file.
fn refusal(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let (path, result) = open_bytes(dir, name, bytes);
    let message = result.unwrap_err().to_string();
    assert!(
        message.contains(&*path.to_string_lossy()),
        "the message names the file: {message}"
    );
    message
}

// ---------------------------------------------------------------------------------------------
// Tensors

#[test]
fn every_tensor_dequantizes_bit_for_bit_to_the_reference() {
    let reference = fixture_bytes("reference.safetensors");
    let reference = SafeTensors::deserialize(&reference).unwrap();
    let json = reference_json();
    let mut types_seen = BTreeSet::new();
    let mut n_values = 0usize;
    for name in FILES {
        let file = GgufFile::open(fixtures().join(name)).unwrap();
        let listed = json[name]["tensors"].as_array().unwrap();
        assert_eq!(file.tensor_names().len(), listed.len(), "{name}");
        for (info, want) in file.tensors().iter().zip(listed) {
            assert_eq!(info.name(), want["name"].as_str().unwrap());
            assert_eq!(info.ggml_type().name(), want["type"].as_str().unwrap());
            let shape: Vec<usize> = serde_json::from_value(want["shape"].clone()).unwrap();
            assert_eq!(info.shape(), shape.as_slice(), "{}", info.name());
            let dims: Vec<u64> = shape.iter().rev().map(|&d| d as u64).collect();
            assert_eq!(
                info.dims(),
                dims.as_slice(),
                "GGUF dims are innermost first"
            );
            assert_eq!(info.n_elements(), shape.iter().product::<usize>() as u64);
            assert_eq!(info.file_offset() % file.alignment(), 0);
            assert_eq!(
                file.tensor_bytes(info.name()).unwrap().len() as u64,
                info.n_bytes()
            );

            let got = file.read_f32(info.name()).unwrap();
            let key = format!("{name}/{}", info.name());
            let view = reference.tensor(&key).unwrap();
            assert_eq!(view.dtype(), safetensors::Dtype::F32);
            assert_eq!(got.shape, view.shape(), "{key}");
            let expected: Vec<u32> = view
                .data()
                .chunks_exact(4)
                .map(|b| u32::from_le_bytes(b.try_into().unwrap()))
                .collect();
            assert_eq!(got.data.len(), expected.len(), "{key}");
            for (i, (g, e)) in got.data.iter().zip(&expected).enumerate() {
                assert_eq!(
                    g.to_bits(),
                    *e,
                    "{key}[{i}]: strata {g:e} ({:#010x}), gguf {:e} ({e:#010x})",
                    g.to_bits(),
                    f32::from_bits(*e)
                );
            }
            n_values += got.data.len();
            types_seen.insert(info.ggml_type().name());
        }
    }
    for ty in GgmlType::SUPPORTED {
        assert!(
            types_seen.contains(ty.name()),
            "the fixtures hold a {ty} tensor"
        );
        assert!(ty.is_supported());
    }
    println!(
        "{n_values} values of {} types match bit for bit",
        types_seen.len()
    );
}

#[test]
fn ggml_type_ids_and_names_round_trip() {
    let mut n = 0;
    for id in 0..64 {
        if let Some(ty) = GgmlType::from_id(id) {
            assert_eq!(ty.id(), id);
            assert!(ty.type_size() > 0 && ty.block_size() > 0);
            n += 1;
        }
    }
    assert_eq!(n, 34);
    assert_eq!(GgmlType::from_id(16).unwrap().name(), "IQ2_XXS");
    assert!(!GgmlType::IQ2_XXS.is_supported());
    assert_eq!(
        (GgmlType::Q4_K.block_size(), GgmlType::Q4_K.type_size()),
        (256, 144)
    );
}

#[test]
fn missing_tensor_names_the_tensor_and_file() {
    let file = GgufFile::open(fixtures().join("tensors.gguf")).unwrap();
    assert!(file.contains("q4_k.weight"));
    assert!(!file.contains("no.such.tensor"));
    for err in [
        file.read_f32("no.such.tensor").unwrap_err(),
        file.tensor_info("no.such.tensor").unwrap_err(),
    ] {
        assert!(matches!(err, Error::MissingTensor { .. }), "{err}");
        let message = err.to_string();
        assert!(message.contains("no.such.tensor") && message.contains("tensors.gguf"));
    }
}

// ---------------------------------------------------------------------------------------------
// Metadata

/// Item `i` of an array of scalars, as a value.
fn item(array: &GgufArray, i: usize) -> GgufValue {
    match array {
        GgufArray::U8(v) => GgufValue::U8(v[i]),
        GgufArray::I8(v) => GgufValue::I8(v[i]),
        GgufArray::U16(v) => GgufValue::U16(v[i]),
        GgufArray::I16(v) => GgufValue::I16(v[i]),
        GgufArray::U32(v) => GgufValue::U32(v[i]),
        GgufArray::I32(v) => GgufValue::I32(v[i]),
        GgufArray::F32(v) => GgufValue::F32(v[i]),
        GgufArray::Bool(v) => GgufValue::Bool(v[i]),
        GgufArray::String(v) => GgufValue::String(v[i].clone()),
        GgufArray::U64(v) => GgufValue::U64(v[i]),
        GgufArray::I64(v) => GgufValue::I64(v[i]),
        GgufArray::F64(v) => GgufValue::F64(v[i]),
        GgufArray::Array(v) => GgufValue::Array(v[i].clone()),
    }
}

fn check_scalar(key: &str, value: &GgufValue, want: &serde_json::Value) {
    match value {
        // Floats are written as strings, the shortest decimal that reads back exactly.
        GgufValue::F32(x) => {
            let w = want.as_str().unwrap().parse::<f64>().unwrap() as f32;
            assert_eq!(x.to_bits(), w.to_bits(), "{key}: {x} vs {w}");
        }
        GgufValue::F64(x) => {
            let w = want.as_str().unwrap().parse::<f64>().unwrap();
            assert_eq!(x.to_bits(), w.to_bits(), "{key}: {x} vs {w}");
        }
        GgufValue::Bool(b) => assert_eq!(Some(*b), want.as_bool(), "{key}"),
        GgufValue::String(s) => assert_eq!(Some(s.as_str()), want.as_str(), "{key}"),
        GgufValue::Array(_) => panic!("{key}: an array where a scalar was expected"),
        int => match int.as_u64() {
            Some(u) => assert_eq!(Some(u), want.as_u64(), "{key}"),
            None => assert_eq!(int.as_i64(), want.as_i64(), "{key}"),
        },
    }
}

fn check_array(key: &str, array: &GgufArray, want: &serde_json::Value) {
    assert_eq!(array.item_type().name(), want["item_type"], "{key}");
    let items = want["value"].as_array().unwrap();
    assert_eq!(array.len(), items.len(), "{key}");
    for (i, w) in items.iter().enumerate() {
        match array {
            GgufArray::Array(inner) => {
                assert_eq!(w["type"], "ARRAY", "{key}[{i}]");
                check_array(&format!("{key}[{i}]"), &inner[i], w);
            }
            scalars => check_scalar(&format!("{key}[{i}]"), &item(scalars, i), w),
        }
    }
}

#[test]
fn metadata_of_every_value_type_matches_the_reference() {
    let json = reference_json();
    let mut types_seen = BTreeSet::new();
    for name in FILES {
        let file = GgufFile::open(fixtures().join(name)).unwrap();
        let want = json[name]["metadata"].as_object().unwrap();
        let keys: Vec<&str> = file.metadata_keys().collect();
        let want_keys: Vec<&str> = want.keys().map(String::as_str).collect();
        assert_eq!(
            keys.iter().copied().collect::<BTreeSet<_>>(),
            want_keys.iter().copied().collect::<BTreeSet<_>>(),
            "{name}"
        );
        for (key, value) in file.metadata_entries() {
            let w = &want[key];
            assert_eq!(value.value_type().name(), w["type"], "{key}");
            assert_eq!(file.metadata(key), Some(value));
            match value {
                GgufValue::Array(array) => {
                    check_array(key, array, w);
                    types_seen.insert(format!("ARRAY of {}", array.item_type()));
                }
                scalar => check_scalar(key, scalar, &w["value"]),
            }
            types_seen.insert(value.value_type().name().to_string());
        }
    }
    // Every value type, as a value and as an array item.
    assert_eq!(types_seen.len(), 13 + 13, "{types_seen:?}");
}

#[test]
fn typed_getters_read_and_widen() {
    let file = GgufFile::open(fixtures().join("tensors.gguf")).unwrap();
    assert_eq!(file.get_str("general.architecture").unwrap(), "strata-test");
    assert_eq!(file.get_u64("test.u8").unwrap(), 200);
    assert_eq!(file.get_u64("test.u16").unwrap(), 60000);
    assert_eq!(file.get_u64("test.u32").unwrap(), 4_000_000_000);
    assert_eq!(file.get_u64("test.u64").unwrap(), (1 << 63) + 5);
    assert_eq!(file.get_i64("test.i8").unwrap(), -100);
    assert_eq!(file.get_i64("test.i16").unwrap(), -30000);
    assert_eq!(file.get_i64("test.i32").unwrap(), -2_000_000_000);
    assert_eq!(file.get_i64("test.i64").unwrap(), -(1 << 62) - 3);
    assert_eq!(file.get_i64("test.u32").unwrap(), 4_000_000_000);
    assert_eq!(file.get_f64("test.f32").unwrap(), f64::from(0.1f32));
    assert_eq!(file.get_f64("test.f64").unwrap(), 1.2345678901234567e-300);
    assert!(file.get_bool("test.bool").unwrap());
    assert!(!file.get_bool("test.bool_false").unwrap());
    assert_eq!(
        file.get_str("test.string").unwrap(),
        "h\u{e9}llo w\u{f6}rld \u{2713}"
    );
    assert_eq!(
        file.get_str_array("test.array.string").unwrap(),
        ["alpha", "", "\u{3b3}\u{3ac}\u{3bc}\u{3bc}\u{3b1}", "<s>"]
    );
    assert_eq!(
        file.get_i32_array("test.array.i32").unwrap(),
        [1, -2, 3, i32::MIN]
    );
    assert_eq!(
        file.get_u32_array("test.array.u32").unwrap(),
        [0, u32::MAX, 7]
    );
    assert_eq!(
        file.get_f32_array("test.array.f32").unwrap(),
        [0.5, -1.25, 1e-30, 3.4e38]
    );
    let nested = file.get_array("test.array.nested").unwrap();
    assert_eq!(
        nested,
        &GgufArray::Array(vec![
            GgufArray::I32(vec![1, 2, 3]),
            GgufArray::I32(vec![4, 5])
        ])
    );
    assert_eq!(nested.type_name(), "ARRAY of ARRAY");
    assert!(file.metadata("no.such.key").is_none());
    assert_eq!(file.metadata("test.u8"), Some(&GgufValue::U8(200)));
}

#[test]
fn wrong_type_and_missing_keys_name_the_key_and_types() {
    let file = GgufFile::open(fixtures().join("tensors.gguf")).unwrap();
    let cases: Vec<(Error, &str, &[&str])> = vec![
        (
            file.get_str("test.u32").unwrap_err(),
            "test.u32",
            &["STRING", "UINT32"],
        ),
        (
            file.get_u64("test.i8").unwrap_err(),
            "test.i8",
            &["non-negative integer", "INT8 -100"],
        ),
        (
            file.get_i64("test.u64").unwrap_err(),
            "test.u64",
            &["i64", "UINT64"],
        ),
        (
            file.get_u64("test.string").unwrap_err(),
            "test.string",
            &["STRING"],
        ),
        (
            file.get_f64("test.i32").unwrap_err(),
            "test.i32",
            &["FLOAT32", "INT32"],
        ),
        (
            file.get_bool("test.u8").unwrap_err(),
            "test.u8",
            &["BOOL", "UINT8"],
        ),
        (
            file.get_str_array("test.array.i32").unwrap_err(),
            "test.array.i32",
            &["ARRAY of STRING", "ARRAY of INT32"],
        ),
        (
            file.get_i32_array("test.array.string").unwrap_err(),
            "test.array.string",
            &["ARRAY of INT32", "ARRAY of STRING"],
        ),
        (
            file.get_f32_array("test.f32").unwrap_err(),
            "test.f32",
            &["ARRAY of FLOAT32", "FLOAT32"],
        ),
        (
            file.get_array("test.string").unwrap_err(),
            "test.string",
            &["ARRAY"],
        ),
        (
            file.get_u64("no.such.key").unwrap_err(),
            "no.such.key",
            &["missing"],
        ),
        (
            file.get_str_array("no.such.key").unwrap_err(),
            "no.such.key",
            &["missing"],
        ),
    ];
    for (err, key, fragments) in cases {
        let message = err.to_string();
        assert!(
            matches!(&err, Error::BadConfig { key: k, .. } if k == key),
            "{message}"
        );
        assert!(message.contains("tensors.gguf"), "{message}");
        assert!(message.contains(&format!("`{key}`")), "{message}");
        for fragment in fragments {
            assert!(message.contains(fragment), "`{fragment}` in: {message}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Versions

#[test]
fn versions_2_and_3_both_parse() {
    let json = reference_json();
    for (name, version, alignment) in [("tensors.gguf", 3, 32), ("v2.gguf", 2, 64)] {
        let file = GgufFile::open(fixtures().join(name)).unwrap();
        assert_eq!(file.version(), version, "{name}");
        assert_eq!(json[name]["version"], version);
        assert_eq!(file.alignment(), alignment, "{name}");
        assert_eq!(
            file.data_offset(),
            json[name]["data_offset"].as_u64().unwrap()
        );
        assert_eq!(file.data_offset() % alignment, 0);
        for info in file.tensors() {
            assert_eq!(info.file_offset() % alignment, 0);
            assert_eq!(info.file_offset(), file.data_offset() + info.offset());
        }
    }
    let v2 = GgufFile::open(fixtures().join("v2.gguf")).unwrap();
    assert_eq!(v2.get_str("test.string").unwrap(), "version two");
    assert_eq!(v2.get_u64("general.alignment").unwrap(), 64);
    assert_eq!(v2.get_str_array("test.array.string").unwrap(), ["x", "yz"]);
    assert_eq!(
        v2.tensor_info("v2.q4_k").unwrap().ggml_type(),
        GgmlType::Q4_K
    );
    assert!(format!("{v2:?}").contains("version: 2"));
}

// ---------------------------------------------------------------------------------------------
// Bad input

#[test]
fn not_a_gguf_file_is_refused() {
    let dir = scratch("magic");
    let safetensors = fixture_bytes("reference.safetensors");
    for (name, bytes) in [
        ("empty.gguf", &b""[..]),
        ("short.gguf", &b"GGU"[..]),
        ("zip.gguf", &b"PK\x03\x04\x14\x00\x00\x00\x08\x00"[..]),
        ("model.safetensors", &safetensors[..]),
        ("text.gguf", &b"{\"not\": \"gguf\"}\n"[..]),
    ] {
        let message = refusal(&dir, name, bytes);
        assert!(message.contains("not a GGUF file"), "{message}");
    }
    let missing = dir.join("missing.gguf");
    let err = GgufFile::open(&missing).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err}");
    assert!(err.to_string().contains("missing.gguf"));
    // Only the magic and part of a version.
    let message = refusal(&dir, "cut.gguf", b"GGUF\x03\x00");
    assert!(message.contains("version"), "{message}");
}

#[test]
fn unsupported_versions_are_refused() {
    let dir = scratch("version");
    let original = fixture_bytes("tensors.gguf");
    for (version, fragment) in [
        (1u32, "version 1"),
        (0, "unsupported GGUF version 0"),
        (4, "unsupported GGUF version 4"),
        (99, "unsupported GGUF version 99"),
        (u32::MAX, "unsupported GGUF version 4294967295"),
        (3u32.swap_bytes(), "big-endian"),
    ] {
        let mut bytes = original.clone();
        bytes[4..8].copy_from_slice(&version.to_le_bytes());
        let message = refusal(&dir, "version.gguf", &bytes);
        assert!(message.contains(fragment), "{version}: {message}");
        assert!(message.contains("versions 2 and 3") || fragment == "big-endian");
    }
}

/// Where the type id of tensor `name` sits in the file's bytes.
fn type_id_position(bytes: &[u8], file: &GgufFile, name: &str) -> usize {
    let mut needle = (name.len() as u64).to_le_bytes().to_vec();
    needle.extend_from_slice(name.as_bytes());
    let at = bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .unwrap();
    let n_dims = file.tensor_info(name).unwrap().dims().len();
    let pos = at + needle.len() + 4 + 8 * n_dims;
    let id = u32::from_le_bytes(bytes[pos..pos + 4].try_into().unwrap());
    assert_eq!(id, file.tensor_info(name).unwrap().ggml_type().id());
    pos
}

#[test]
fn an_unsupported_quantization_type_names_the_type_and_the_supported_ones() {
    let dir = scratch("qtype");
    let original = fixture_bytes("tensors.gguf");
    let intact = GgufFile::open(fixtures().join("tensors.gguf")).unwrap();
    let pos = type_id_position(&original, &intact, "q4_k.weight");

    for (ty, id) in [
        ("IQ2_XXS", 16u32),
        ("IQ3_S", 21),
        ("IQ1_S", 19),
        ("NVFP4", 40),
        ("Q8_1", 9),
    ] {
        let mut bytes = original.clone();
        bytes[pos..pos + 4].copy_from_slice(&id.to_le_bytes());
        let (_, file) = open_bytes(&dir, "qtype.gguf", &bytes);
        let file = file.unwrap();
        assert_eq!(
            file.tensor_info("q4_k.weight").unwrap().ggml_type().name(),
            ty
        );
        let message = file.read_f32("q4_k.weight").unwrap_err().to_string();
        for fragment in [
            "qtype.gguf",
            "q4_k.weight",
            ty,
            "Q4_K",
            "Q6_K",
            "BF16",
            "MXFP4",
        ] {
            assert!(message.contains(fragment), "`{fragment}` in: {message}");
        }
        // The other tensors still read.
        assert!(file.read_f32("q6_k.weight").is_ok());
    }

    // An id ggml does not define is refused when opening.
    for id in [4u32, 31, 42, 200, u32::MAX] {
        let mut bytes = original.clone();
        bytes[pos..pos + 4].copy_from_slice(&id.to_le_bytes());
        let message = refusal(&dir, "qtype.gguf", &bytes);
        assert!(
            message.contains("q4_k.weight") && message.contains(&id.to_string()),
            "{message}"
        );
    }
}

#[test]
fn a_truncated_tensor_region_names_the_tensor() {
    let dir = scratch("truncated");
    let original = fixture_bytes("tensors.gguf");
    let intact = GgufFile::open(fixtures().join("tensors.gguf")).unwrap();
    let last = intact
        .tensors()
        .iter()
        .max_by_key(|t| t.file_offset() + t.n_bytes())
        .unwrap();
    let end = (last.file_offset() + last.n_bytes()) as usize;
    for cut in [end - 1, end - 100, last.file_offset() as usize + 1] {
        let message = refusal(&dir, "cut.gguf", &original[..cut]);
        assert!(message.contains(last.name()), "{message}");
        assert!(message.contains("truncated"), "{message}");
    }
    // Cut inside the header.
    let message = refusal(&dir, "cut.gguf", &original[..300]);
    assert!(message.contains("truncated or corrupt header"), "{message}");
    // The padding after the last tensor is not needed.
    let (_, file) = open_bytes(&dir, "cut.gguf", &original[..end]);
    assert!(file.unwrap().read_f32(last.name()).is_ok());
}

/// A GGUF header built by hand, for inputs no writer produces.
struct Craft(Vec<u8>);

impl Craft {
    fn new(version: u32, n_tensors: u64, n_kv: u64) -> Self {
        let mut b = b"GGUF".to_vec();
        b.extend_from_slice(&version.to_le_bytes());
        b.extend_from_slice(&n_tensors.to_le_bytes());
        b.extend_from_slice(&n_kv.to_le_bytes());
        Craft(b)
    }
    fn u32(mut self, v: u32) -> Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn u64(mut self, v: u64) -> Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn raw(mut self, bytes: &[u8]) -> Self {
        self.0.extend_from_slice(bytes);
        self
    }
    fn str(self, s: &str) -> Self {
        self.u64(s.len() as u64).raw(s.as_bytes())
    }
    /// A tensor info.
    fn tensor(self, name: &str, dims: &[u64], ty: u32, offset: u64) -> Self {
        let mut c = self.str(name).u32(dims.len() as u32);
        for &d in dims {
            c = c.u64(d);
        }
        c.u32(ty).u64(offset)
    }
    /// Zero padding up to a multiple of 32, then `n` data bytes.
    fn data(mut self, n: usize) -> Self {
        self.0.resize(self.0.len().next_multiple_of(32) + n, 0);
        self
    }
}

#[test]
fn hostile_headers_give_clear_errors() {
    let dir = scratch("hostile");
    // An array nested `depth` deep around one u8.
    let nested = |depth: usize| {
        let mut c = Craft::new(3, 0, 1).str("deep").u32(9);
        for _ in 1..depth {
            c = c.u32(9).u64(1);
        }
        c.u32(0).u64(1).raw(&[7])
    };
    let cases: Vec<(&str, Craft, &[&str])> = vec![
        (
            "huge counts",
            Craft::new(3, u64::MAX, u64::MAX),
            &["claims 18446744073709551615 tensors"],
        ),
        (
            "huge kv count",
            Craft::new(3, 0, 1 << 40),
            &["metadata entries"],
        ),
        ("huge tensor count", Craft::new(2, 1 << 33, 0), &["tensors"]),
        (
            "huge key length",
            Craft::new(3, 0, 1).u64(u64::MAX).raw(&[0; 16]),
            &["header", "18446744073709551615 bytes"],
        ),
        (
            "huge string value",
            Craft::new(3, 0, 1)
                .str("k")
                .u32(8)
                .u64(1 << 50)
                .raw(&[0; 16]),
            &["`k`", "1125899906842624 bytes"],
        ),
        (
            "huge array",
            Craft::new(3, 0, 1).str("arr").u32(9).u32(6).u64(1 << 61),
            &["`arr`", "2305843009213693952 FLOAT32 items"],
        ),
        (
            "huge string array",
            Craft::new(3, 0, 1)
                .str("arr")
                .u32(9)
                .u32(8)
                .u64(u64::MAX / 4),
            &["`arr`", "STRING items"],
        ),
        ("deep nesting", nested(9), &["`deep`", "nest more than 8"]),
        (
            "bad value type",
            Craft::new(3, 0, 1).str("k").u32(13).raw(&[0; 8]),
            &["`k`", "13", "no GGUF value type"],
        ),
        (
            "bad array item type",
            Craft::new(3, 0, 1).str("k").u32(9).u32(99).u64(0),
            &["`k`", "99"],
        ),
        (
            "invalid utf-8 key",
            Craft::new(3, 0, 1)
                .u64(2)
                .raw(&[0xC3, 0x28])
                .u32(0)
                .raw(&[1]),
            &["UTF-8"],
        ),
        (
            "invalid utf-8 value",
            Craft::new(3, 0, 1).str("k").u32(8).u64(1).raw(&[0xFF]),
            &["`k`", "UTF-8"],
        ),
        (
            "duplicate key",
            Craft::new(3, 0, 2)
                .str("k")
                .u32(0)
                .raw(&[1])
                .str("k")
                .u32(0)
                .raw(&[2]),
            &["`k`", "twice"],
        ),
        (
            "zero alignment",
            Craft::new(3, 0, 1).str("general.alignment").u32(4).u32(0),
            &["`general.alignment`", "power of two"],
        ),
        (
            "odd alignment",
            Craft::new(3, 0, 1).str("general.alignment").u32(4).u32(48),
            &["`general.alignment`", "48"],
        ),
        (
            "alignment of the wrong type",
            Craft::new(3, 0, 1)
                .str("general.alignment")
                .u32(8)
                .str("32"),
            &["`general.alignment`", "UINT32", "STRING"],
        ),
        (
            "five dimensions",
            Craft::new(3, 1, 0)
                .tensor("t", &[1, 1, 1, 1, 1], 0, 0)
                .data(4),
            &["`t`", "5 dimensions"],
        ),
        (
            "four billion dimensions",
            Craft::new(3, 1, 0).str("t").u32(u32::MAX).raw(&[0; 32]),
            &["`t`", "4294967295 dimensions"],
        ),
        (
            "overflowing dims",
            Craft::new(3, 1, 0)
                .tensor("t", &[1 << 40, 1 << 40], 0, 0)
                .data(4),
            &["`t`", "overflow"],
        ),
        (
            "overflowing dims around a zero",
            Craft::new(3, 1, 0)
                .tensor("t", &[1 << 40, 0, 1 << 40], 0, 0)
                .data(4),
            &["`t`", "overflow"],
        ),
        (
            "row not a multiple of the block",
            Craft::new(3, 1, 0).tensor("t", &[33], 8, 0).data(68),
            &["`t`", "33", "Q8_0", "32"],
        ),
        (
            "misaligned offset",
            Craft::new(3, 1, 0).tensor("t", &[1], 0, 4).data(8),
            &["`t`", "offset 4", "alignment 32"],
        ),
        (
            "data past the end",
            Craft::new(3, 1, 0).tensor("t", &[1 << 30], 0, 0).data(16),
            &["`t`", "truncated"],
        ),
        (
            "offset overflowing",
            Craft::new(3, 1, 0)
                .tensor("t", &[8], 0, u64::MAX - 31)
                .data(32),
            &["`t`", "truncated"],
        ),
        (
            "duplicate tensor",
            Craft::new(3, 2, 0)
                .tensor("t", &[8], 0, 0)
                .tensor("t", &[8], 0, 32)
                .data(64),
            &["`t`", "two tensors"],
        ),
        (
            "unknown tensor type",
            Craft::new(3, 1, 0).tensor("t", &[8], 77, 0).data(64),
            &["`t`", "77"],
        ),
    ];
    for (what, craft, fragments) in cases {
        let message = refusal(&dir, "hostile.gguf", &craft.0);
        for fragment in fragments {
            assert!(
                message.contains(fragment),
                "{what}: `{fragment}` in: {message}"
            );
        }
    }
    // Depth 8 is accepted.
    let (_, file) = open_bytes(&dir, "deep.gguf", &nested(8).0);
    assert_eq!(file.unwrap().get_array("deep").unwrap().len(), 1);
}

#[test]
fn unusual_but_valid_headers_are_read() {
    let dir = scratch("valid");
    // Empty arrays, an empty key, no tensors, no padding after the header.
    let craft = Craft::new(3, 0, 4)
        .str("empty.u8")
        .u32(9)
        .u32(0)
        .u64(0)
        .str("empty.strings")
        .u32(9)
        .u32(8)
        .u64(0)
        .str("")
        .u32(7)
        .raw(&[2])
        .str("empty.nested")
        .u32(9)
        .u32(9)
        .u64(1)
        .u32(6)
        .u64(0);
    let (_, file) = open_bytes(&dir, "valid.gguf", &craft.0);
    let file = file.unwrap();
    assert!(file.get_array("empty.u8").unwrap().is_empty());
    assert!(file.get_str_array("empty.strings").unwrap().is_empty());
    assert!(
        file.get_bool("").unwrap(),
        "a non-zero bool byte reads as true"
    );
    assert_eq!(
        file.get_array("empty.nested").unwrap(),
        &GgufArray::Array(vec![GgufArray::F32(vec![])])
    );
    assert!(file.tensor_names().is_empty());

    // A scalar (no dimensions), an empty tensor and a 4-D one.
    let mut data = Craft::new(2, 3, 0)
        .tensor("scalar", &[], 0, 0)
        .tensor("empty", &[0, 5], 8, 32)
        .tensor("four", &[1, 2, 1, 2], 1, 32)
        .data(0)
        .0;
    data.extend_from_slice(&1.5f32.to_le_bytes());
    data.resize(data.len() + 28, 0);
    for v in [1.0f32, -2.0, 0.5, 65504.0] {
        data.extend_from_slice(&half::f16::from_f32(v).to_le_bytes());
    }
    let (_, file) = open_bytes(&dir, "shapes.gguf", &data);
    let file = file.unwrap();
    let scalar = file.read_f32("scalar").unwrap();
    assert_eq!(
        (scalar.shape.as_slice(), scalar.data.as_slice()),
        (&[][..], &[1.5][..])
    );
    let empty = file.read_f32("empty").unwrap();
    assert_eq!(empty.shape, [5, 0]);
    assert!(empty.data.is_empty());
    let four = file.read_f32("four").unwrap();
    assert_eq!(four.shape, [2, 1, 2, 1]);
    assert_eq!(four.data, [1.0, -2.0, 0.5, 65504.0]);
}

// ---------------------------------------------------------------------------------------------
// Randomised headers

use common::{fuzz_cases as cases, fuzz_rng as rng};

/// Whatever opened is usable: every getter and every tensor answers without panicking, and
/// every refusal names the file.
fn exercise(file: &GgufFile, path: &Path) -> (usize, usize) {
    let (mut n_read, mut n_refused) = (0, 0);
    let keys: Vec<String> = file.metadata_keys().map(str::to_string).collect();
    for key in &keys {
        let _ = file.get_u64(key);
        let _ = file.get_i64(key);
        let _ = file.get_f64(key);
        let _ = file.get_str(key);
        let _ = file.get_str_array(key);
        let _ = file.get_f32_array(key);
        let _ = file.get_i32_array(key);
    }
    for name in file.tensor_names() {
        match file.read_f32(name) {
            Ok(t) => {
                n_read += 1;
                assert_eq!(
                    t.data.len() as u64,
                    file.tensor_info(name).unwrap().n_elements()
                );
            }
            Err(e) => {
                n_refused += 1;
                assert!(e.to_string().contains(&*path.to_string_lossy()), "{e}");
            }
        }
    }
    (n_read, n_refused)
}

#[test]
fn mutated_headers_never_panic() {
    let mut rng = rng(11);
    let dir = scratch("fuzz");
    let path = dir.join("fuzz.gguf");
    let original = fixture_bytes("tensors.gguf");
    let intact = GgufFile::open(fixtures().join("tensors.gguf")).unwrap();
    let header_len = intact.data_offset() as usize;
    let type_positions: Vec<usize> = intact
        .tensor_names()
        .into_iter()
        .map(|name| type_id_position(&original, &intact, name))
        .collect();
    // The tensor infos start with the first tensor's name length.
    let first = intact.tensors()[0].name();
    let infos_start =
        type_positions[0] - 4 - 8 * intact.tensors()[0].dims().len() - first.len() - 8;
    let hostile: [u64; 12] = [
        0,
        1,
        4,
        5,
        13,
        255,
        u32::MAX as u64,
        u64::MAX,
        u64::MAX / 2,
        1 << 40,
        original.len() as u64,
        original.len() as u64 + 1,
    ];
    let (mut n_ok, mut n_err, mut n_read, mut n_refused) = (0usize, 0usize, 0usize, 0usize);
    for _ in 0..cases(600) {
        let mut bytes = original.clone();
        match rng.random_range(0..6) {
            // Random bytes anywhere in the header, or among the tensor infos only.
            0 | 1 => {
                let from = if rng.random_bool(0.5) { 0 } else { infos_start };
                for _ in 0..rng.random_range(1..8) {
                    let i = rng.random_range(from..header_len);
                    bytes[i] = rng.random();
                }
            }
            // A hostile count, length or type, 4 or 8 bytes wide, at any header position.
            2 => {
                let v = hostile[rng.random_range(0..hostile.len())];
                let width = if rng.random_bool(0.5) { 4 } else { 8 };
                let i = rng.random_range(4..header_len - width);
                bytes[i..i + width].copy_from_slice(&v.to_le_bytes()[..width]);
            }
            // A random tensor type id.
            3 => {
                let pos = type_positions[rng.random_range(0..type_positions.len())];
                let id: u32 = if rng.random_bool(0.8) {
                    rng.random_range(0..48)
                } else {
                    rng.random()
                };
                bytes[pos..pos + 4].copy_from_slice(&id.to_le_bytes());
            }
            // Bytes removed from or inserted into the header, shifting what follows.
            4 => {
                let i = rng.random_range(0..header_len);
                let n = rng.random_range(1..16);
                if rng.random_bool(0.5) {
                    bytes.drain(i..(i + n).min(bytes.len()));
                } else {
                    let junk: Vec<u8> = (0..n).map(|_| rng.random()).collect();
                    bytes.splice(i..i, junk);
                }
            }
            // Truncated anywhere, mostly inside the header.
            _ => {
                let end = if rng.random_bool(0.7) {
                    header_len
                } else {
                    bytes.len()
                };
                bytes.truncate(rng.random_range(0..end));
            }
        }
        std::fs::write(&path, &bytes).unwrap();
        match GgufFile::open(&path) {
            Ok(file) => {
                n_ok += 1;
                let (read, refused) = exercise(&file, &path);
                n_read += read;
                n_refused += refused;
            }
            Err(e) => {
                n_err += 1;
                assert!(e.to_string().contains("fuzz.gguf"), "{e}");
            }
        }
    }
    println!(
        "gguf mutations: {n_ok} opened ({n_read} tensors read, {n_refused} refused), \
         {n_err} refused"
    );
}

/// A random header from scratch: counts, lengths, types and dims drawn from hostile pools.
fn random_header(rng: &mut StdRng) -> Vec<u8> {
    let pool: [u64; 10] = [0, 1, 2, 3, 7, 64, 255, 1 << 20, u32::MAX as u64, u64::MAX];
    let pick = |rng: &mut StdRng| {
        if rng.random_bool(0.8) {
            rng.random_range(0..6)
        } else {
            pool[rng.random_range(0..pool.len())]
        }
    };
    let n_kv = pick(rng);
    let n_tensors = pick(rng);
    let version = [2, 3, 3, 3, 1, 99][rng.random_range(0..6)];
    let mut c = Craft::new(version, n_tensors, n_kv);
    for i in 0..n_kv.min(8) {
        c = c.str(&format!("k{i}"));
        let ty = if rng.random_bool(0.9) {
            rng.random_range(0..13)
        } else {
            rng.random()
        };
        c = c.u32(ty);
        match ty {
            8 => c = c.u64(pick(rng)).raw(b"abcdefgh"),
            9 => {
                let item = rng.random_range(0..14);
                c = c.u32(item).u64(pick(rng));
                let n: usize = rng.random_range(0..24);
                let junk: Vec<u8> = (0..n).map(|_| rng.random_range(0..3)).collect();
                c = c.raw(&junk);
            }
            _ => c = c.u64(rng.random()),
        }
    }
    for i in 0..n_tensors.min(8) {
        let n_dims = if rng.random_bool(0.9) {
            rng.random_range(0..5)
        } else {
            rng.random()
        };
        c = c.str(&format!("t{i}")).u32(n_dims);
        for _ in 0..n_dims.min(6) {
            c = c.u64(pick(rng));
        }
        let ty = [0, 1, 2, 8, 12, 14, 30, 16, 99][rng.random_range(0..9)];
        c = c.u32(ty).u64(pick(rng).wrapping_mul(32));
    }
    let n = rng.random_range(0..512);
    c.data(n).0
}

#[test]
fn random_headers_never_panic() {
    let mut rng = rng(12);
    let dir = scratch("random");
    let path = dir.join("random.gguf");
    let (mut n_ok, mut n_err, mut n_read) = (0usize, 0usize, 0usize);
    for _ in 0..cases(400) {
        let bytes = random_header(&mut rng);
        std::fs::write(&path, &bytes).unwrap();
        match GgufFile::open(&path) {
            Ok(file) => {
                n_ok += 1;
                n_read += exercise(&file, &path).0;
            }
            Err(e) => {
                n_err += 1;
                assert!(e.to_string().contains("random.gguf"), "{e}");
            }
        }
    }
    println!("random gguf headers: {n_ok} opened ({n_read} tensors read), {n_err} refused");
}

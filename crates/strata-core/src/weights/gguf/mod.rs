//! GGUF files (the llama.cpp format): the header, the metadata and tensors dequantized to f32.
//!
//! [`GgufFile::open`] memory-maps a GGUF v2 or v3 file (little-endian) and parses its header:
//! the metadata key/values of every GGUF value type (nested arrays included) and the tensor
//! infos. [`GgufFile::read_f32`] dequantizes one tensor at a time into a [`HostTensor`]; the
//! values are bit-for-bit those of the reference dequantization of the `gguf` Python package.
//! [`GgmlType::SUPPORTED`] lists the types it reads: F32, F16, BF16, F64, Q4_0, Q4_1, Q5_0,
//! Q5_1, Q8_0, the K-quants Q2_K to Q8_K, IQ4_NL, IQ4_XS, TQ1_0, TQ2_0 and MXFP4.
//!
//! GGUF lists dimensions innermost first; [`GgufTensorInfo::shape`] and the tensors read are
//! outermost first, like PyTorch: a `[n_embd, n_vocab]` GGUF embedding reads as
//! `[n_vocab, n_embd]`.
//!
//! The header is untrusted input: every count and length is checked against the file's size
//! before anything is allocated, every tensor's data must lie inside the file, and a bad file
//! is an error naming the file and the key or tensor at fault.
//!
//! # Example
//! ```no_run
//! use strata_core::weights::gguf::GgufFile;
//! # fn main() -> strata_core::Result<()> {
//! let file = GgufFile::open("model-Q4_K_M.gguf")?;
//! let arch = file.get_str("general.architecture")?;
//! let n_layers = file.get_u64(&format!("{arch}.block_count"))?;
//! println!("GGUF v{}: {arch}, {n_layers} layers", file.version());
//! for info in file.tensors() {
//!     println!("{} {:?} {}", info.name(), info.shape(), info.ggml_type());
//! }
//! let embedding = file.read_f32("token_embd.weight")?; // [n_vocab, n_embd]
//! let tokens = file.get_str_array("tokenizer.ggml.tokens")?;
//! assert_eq!(embedding.shape[0], tokens.len());
//! # Ok(()) }
//! ```

mod dequant;
mod header;
mod metadata;

use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

pub use dequant::GgmlType;
pub use header::{DEFAULT_ALIGNMENT, GgufTensorInfo, MAX_ARRAY_DEPTH, MAX_DIMS};
pub use metadata::{GgufArray, GgufValue, GgufValueType};

use super::HostTensor;
use crate::error::{Error, Result};
use header::{Header, bad};

/// A memory-mapped GGUF file: its metadata, and its tensors readable one at a time.
pub struct GgufFile {
    path: PathBuf,
    mmap: Mmap,
    header: Header,
}

impl std::fmt::Debug for GgufFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufFile")
            .field("path", &self.path)
            .field("version", &self.header.version)
            .field("n_metadata", &self.header.metadata.len())
            .field("n_tensors", &self.header.tensors.len())
            .finish()
    }
}

impl GgufFile {
    /// Memory-maps a GGUF file and parses its header (no tensor data is read).
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
        if len == 0 {
            return Err(bad(
                path,
                "header",
                "not a GGUF file: the file is empty".into(),
            ));
        }
        // SAFETY: the map is read-only; strata never writes a file it has mapped.
        let mmap = unsafe { Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
        let header = header::parse(&mmap, path)?;
        Ok(Self {
            path: path.to_path_buf(),
            mmap,
            header,
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The GGUF version (2 or 3).
    pub fn version(&self) -> u32 {
        self.header.version
    }

    /// The alignment of the tensor data: `general.alignment`, or 32 when absent.
    pub fn alignment(&self) -> u64 {
        self.header.alignment
    }

    /// Where the data section starts, in bytes from the start of the file.
    pub fn data_offset(&self) -> u64 {
        self.header.data_offset
    }

    /// The value of a metadata key, or `None` when absent.
    pub fn metadata(&self, key: &str) -> Option<&GgufValue> {
        self.header
            .key_index
            .get(key)
            .map(|&i| &self.header.metadata[i].1)
    }

    /// Every metadata key and value, in file order.
    pub fn metadata_entries(&self) -> impl Iterator<Item = (&str, &GgufValue)> {
        self.header.metadata.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// The metadata keys, in file order.
    pub fn metadata_keys(&self) -> impl Iterator<Item = &str> {
        self.header.metadata.iter().map(|(k, _)| k.as_str())
    }

    /// The value of a key that must be present.
    pub fn get(&self, key: &str) -> Result<&GgufValue> {
        self.metadata(key).ok_or_else(|| {
            bad(
                &self.path,
                key,
                "the key is missing from the GGUF metadata".into(),
            )
        })
    }

    fn wrong_type(&self, key: &str, expected: &str, found: &GgufValue) -> Error {
        let found = match found {
            GgufValue::Array(_) | GgufValue::String(_) => found.type_name(),
            other => format!("{} {}", other.type_name(), scalar_text(other)),
        };
        bad(
            &self.path,
            key,
            format!("expected {expected}, found {found}"),
        )
    }

    /// An unsigned count or id: a value of any integer type that is not negative.
    pub fn get_u64(&self, key: &str) -> Result<u64> {
        let value = self.get(key)?;
        value
            .as_u64()
            .ok_or_else(|| self.wrong_type(key, "a non-negative integer", value))
    }

    /// A value of any integer type that fits an i64.
    pub fn get_i64(&self, key: &str) -> Result<i64> {
        let value = self.get(key)?;
        value
            .as_i64()
            .ok_or_else(|| self.wrong_type(key, "an integer that fits an i64", value))
    }

    /// A `FLOAT32` or `FLOAT64`, as f64 (an f32 converts exactly).
    pub fn get_f64(&self, key: &str) -> Result<f64> {
        let value = self.get(key)?;
        value
            .as_f64()
            .ok_or_else(|| self.wrong_type(key, "FLOAT32 or FLOAT64", value))
    }

    /// A `BOOL`.
    pub fn get_bool(&self, key: &str) -> Result<bool> {
        let value = self.get(key)?;
        value
            .as_bool()
            .ok_or_else(|| self.wrong_type(key, "BOOL", value))
    }

    /// A `STRING`.
    pub fn get_str(&self, key: &str) -> Result<&str> {
        let value = self.get(key)?;
        value
            .as_str()
            .ok_or_else(|| self.wrong_type(key, "STRING", value))
    }

    /// An `ARRAY` of any item type.
    pub fn get_array(&self, key: &str) -> Result<&GgufArray> {
        let value = self.get(key)?;
        value
            .as_array()
            .ok_or_else(|| self.wrong_type(key, "ARRAY", value))
    }

    /// An `ARRAY` of `STRING` (a tokenizer's `tokenizer.ggml.tokens` or `merges`).
    pub fn get_str_array(&self, key: &str) -> Result<&[String]> {
        match self.get(key)? {
            GgufValue::Array(GgufArray::String(items)) => Ok(items),
            other => Err(self.wrong_type(key, "ARRAY of STRING", other)),
        }
    }

    /// An `ARRAY` of `INT32` (a tokenizer's `tokenizer.ggml.token_type`).
    pub fn get_i32_array(&self, key: &str) -> Result<&[i32]> {
        match self.get(key)? {
            GgufValue::Array(GgufArray::I32(items)) => Ok(items),
            other => Err(self.wrong_type(key, "ARRAY of INT32", other)),
        }
    }

    /// An `ARRAY` of `UINT32`.
    pub fn get_u32_array(&self, key: &str) -> Result<&[u32]> {
        match self.get(key)? {
            GgufValue::Array(GgufArray::U32(items)) => Ok(items),
            other => Err(self.wrong_type(key, "ARRAY of UINT32", other)),
        }
    }

    /// An `ARRAY` of `FLOAT32` (a tokenizer's `tokenizer.ggml.scores`).
    pub fn get_f32_array(&self, key: &str) -> Result<&[f32]> {
        match self.get(key)? {
            GgufValue::Array(GgufArray::F32(items)) => Ok(items),
            other => Err(self.wrong_type(key, "ARRAY of FLOAT32", other)),
        }
    }

    /// The tensor names, in file order.
    pub fn tensor_names(&self) -> Vec<&str> {
        self.header.tensors.iter().map(|t| t.name()).collect()
    }

    /// Every tensor info, in file order.
    pub fn tensors(&self) -> &[GgufTensorInfo] {
        &self.header.tensors
    }

    /// Whether a tensor exists.
    pub fn contains(&self, name: &str) -> bool {
        self.header.tensor_index.contains_key(name)
    }

    /// Name, shape, type and place of a tensor.
    pub fn tensor_info(&self, name: &str) -> Result<&GgufTensorInfo> {
        self.header
            .tensor_index
            .get(name)
            .map(|&i| &self.header.tensors[i])
            .ok_or_else(|| Error::MissingTensor {
                file: self.path.clone(),
                key: name.to_string(),
            })
    }

    /// The stored bytes of a tensor (blocks of its [`GgmlType`]), straight from the map.
    pub fn tensor_bytes(&self, name: &str) -> Result<&[u8]> {
        let info = self.tensor_info(name)?;
        Ok(&self.mmap[info.start..info.start + info.n_bytes as usize])
    }

    /// Reads one tensor as f32, dequantizing it, shaped outermost first.
    ///
    /// A type strata does not dequantize is an error naming the tensor, the type and the
    /// types it reads.
    pub fn read_f32(&self, name: &str) -> Result<HostTensor> {
        let info = self.tensor_info(name)?;
        let ty = info.ggml_type;
        let dequantize = ty.dequantizer().ok_or_else(|| {
            bad(
                &self.path,
                name,
                format!(
                    "the tensor is stored as {ty}, which strata cannot dequantize; it reads {}",
                    GgmlType::supported_names()
                ),
            )
        })?;
        let bytes = self.tensor_bytes(name)?;
        let n_elements =
            usize::try_from(info.n_elements).expect("element count checked when opening");
        #[cfg(unix)]
        let _ = self
            .mmap
            .advise_range(memmap2::Advice::Sequential, info.start, bytes.len());
        // Dequantize a few MiB at a time and let the kernel drop each part's pages once it
        // is read: pages of a read-only file map are re-read on demand, so a large tensor's
        // mapped bytes and its f32 copy are not held at once.
        const CHUNK_BYTES: usize = 8 << 20;
        let chunk = (CHUNK_BYTES / ty.type_size()).max(1) * ty.type_size();
        let mut data = Vec::with_capacity(n_elements);
        for (i, part) in bytes.chunks(chunk).enumerate() {
            dequantize(part, &mut data);
            #[cfg(unix)]
            // SAFETY: the map is read-only; DontNeed only drops clean file-backed pages.
            let _ = unsafe {
                self.mmap.unchecked_advise_range(
                    memmap2::UncheckedAdvice::DontNeed,
                    info.start + i * chunk,
                    part.len(),
                )
            };
            #[cfg(not(unix))]
            let _ = i;
        }
        debug_assert_eq!(data.len(), n_elements);
        Ok(HostTensor::new(info.shape.clone(), data))
    }
}

/// A scalar's value for messages.
fn scalar_text(value: &GgufValue) -> String {
    match value {
        GgufValue::U8(v) => v.to_string(),
        GgufValue::I8(v) => v.to_string(),
        GgufValue::U16(v) => v.to_string(),
        GgufValue::I16(v) => v.to_string(),
        GgufValue::U32(v) => v.to_string(),
        GgufValue::I32(v) => v.to_string(),
        GgufValue::F32(v) => v.to_string(),
        GgufValue::Bool(v) => v.to_string(),
        GgufValue::U64(v) => v.to_string(),
        GgufValue::I64(v) => v.to_string(),
        GgufValue::F64(v) => v.to_string(),
        GgufValue::String(_) | GgufValue::Array(_) => String::new(),
    }
}

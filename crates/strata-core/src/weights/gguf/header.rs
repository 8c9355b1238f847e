//! The GGUF header: magic, version, counts, metadata key/values and tensor infos.
//!
//! Every length and count is checked against the bytes left before anything is allocated
//! for it, so a hostile header costs at most a small multiple of the file's size and never
//! panics.

use std::collections::HashMap;
use std::path::Path;

use super::dequant::GgmlType;
use super::metadata::{GgufArray, GgufValue, GgufValueType};
use crate::error::{Error, Result};

/// The first four bytes of every GGUF file.
pub(crate) const MAGIC: &[u8; 4] = b"GGUF";
/// The alignment of the data section when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// The metadata key that sets the alignment.
pub(crate) const ALIGNMENT_KEY: &str = "general.alignment";
/// The most dimensions a ggml tensor has.
pub const MAX_DIMS: usize = 4;
/// How deeply metadata arrays may nest (an array of arrays is depth 2).
pub const MAX_ARRAY_DEPTH: usize = 8;

/// Fewest bytes of one metadata key/value: an empty key, the type, a one-byte value.
const MIN_KV_BYTES: u64 = 8 + 4 + 1;
/// Fewest bytes of one tensor info: an empty name, `n_dims`, the type, the offset.
const MIN_TENSOR_INFO_BYTES: u64 = 8 + 4 + 4 + 8;
/// Items of a variable-length array reserved ahead; larger arrays grow as they are read.
const RESERVE_LIMIT: usize = 4096;

/// Name, shape, type and place of one tensor, read from the header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GgufTensorInfo {
    pub(crate) name: String,
    pub(crate) dims: Vec<u64>,
    pub(crate) shape: Vec<usize>,
    pub(crate) ggml_type: GgmlType,
    pub(crate) offset: u64,
    pub(crate) n_elements: u64,
    pub(crate) n_bytes: u64,
    pub(crate) start: usize,
}

impl GgufTensorInfo {
    /// The tensor's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Dimensions as GGUF stores them: innermost (contiguous) first, the reverse of
    /// [`shape`](Self::shape).
    pub fn dims(&self) -> &[u64] {
        &self.dims
    }

    /// Dimensions outermost first, as PyTorch and [`HostTensor`](crate::weights::HostTensor)
    /// order them: a GGUF `[n_embd, n_vocab]` embedding has shape `[n_vocab, n_embd]`.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// How the elements are stored.
    pub fn ggml_type(&self) -> GgmlType {
        self.ggml_type
    }

    /// Offset of the data from the start of the data section, as the file stores it.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Offset of the data from the start of the file.
    pub fn file_offset(&self) -> u64 {
        self.start as u64
    }

    /// Number of elements.
    pub fn n_elements(&self) -> u64 {
        self.n_elements
    }

    /// Number of stored bytes.
    pub fn n_bytes(&self) -> u64 {
        self.n_bytes
    }
}

/// A parsed header.
#[derive(Debug)]
pub(crate) struct Header {
    pub version: u32,
    pub metadata: Vec<(String, GgufValue)>,
    pub key_index: HashMap<String, usize>,
    pub tensors: Vec<GgufTensorInfo>,
    pub tensor_index: HashMap<String, usize>,
    pub alignment: u64,
    pub data_offset: u64,
}

/// A bounds-checked little-endian reader over the header bytes.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
    file: &'a Path,
}

impl<'a> Cursor<'a> {
    fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    fn error(&self, key: &str, reason: String) -> Error {
        bad(self.file, key, reason)
    }

    fn take(&mut self, n: u64, key: &str, what: &str) -> Result<&'a [u8]> {
        let left = self.remaining();
        match usize::try_from(n) {
            Ok(n) if n <= left => {
                let out = &self.bytes[self.pos..self.pos + n];
                self.pos += n;
                Ok(out)
            }
            _ => Err(self.error(
                key,
                format!(
                    "{what} at byte {} needs {n} bytes but only {left} are left (truncated or \
                     corrupt header)",
                    self.pos
                ),
            )),
        }
    }

    fn array<const N: usize>(&mut self, key: &str, what: &str) -> Result<[u8; N]> {
        let bytes = self.take(N as u64, key, what)?;
        Ok(bytes.try_into().expect("take returns N bytes"))
    }

    fn u32(&mut self, key: &str, what: &str) -> Result<u32> {
        self.array(key, what).map(u32::from_le_bytes)
    }

    fn u64(&mut self, key: &str, what: &str) -> Result<u64> {
        self.array(key, what).map(u64::from_le_bytes)
    }

    fn string(&mut self, key: &str, what: &str) -> Result<String> {
        let at = self.pos;
        let len = self.u64(key, what)?;
        let bytes = self.take(len, key, what)?;
        String::from_utf8(bytes.to_vec())
            .map_err(|e| self.error(key, format!("{what} at byte {at} is not valid UTF-8 ({e})")))
    }

    fn value_type(&mut self, key: &str, what: &str) -> Result<GgufValueType> {
        let at = self.pos;
        let id = self.u32(key, what)?;
        GgufValueType::from_id(id).ok_or_else(|| {
            self.error(
                key,
                format!("{what} at byte {at} is {id}, which is no GGUF value type (0..=12)"),
            )
        })
    }

    fn value(&mut self, ty: GgufValueType, key: &str) -> Result<GgufValue> {
        const W: &str = "the value";
        Ok(match ty {
            GgufValueType::U8 => GgufValue::U8(u8::from_le_bytes(self.array(key, W)?)),
            GgufValueType::I8 => GgufValue::I8(i8::from_le_bytes(self.array(key, W)?)),
            GgufValueType::U16 => GgufValue::U16(u16::from_le_bytes(self.array(key, W)?)),
            GgufValueType::I16 => GgufValue::I16(i16::from_le_bytes(self.array(key, W)?)),
            GgufValueType::U32 => GgufValue::U32(u32::from_le_bytes(self.array(key, W)?)),
            GgufValueType::I32 => GgufValue::I32(i32::from_le_bytes(self.array(key, W)?)),
            GgufValueType::F32 => GgufValue::F32(f32::from_le_bytes(self.array(key, W)?)),
            GgufValueType::Bool => GgufValue::Bool(self.array::<1>(key, W)?[0] != 0),
            GgufValueType::String => GgufValue::String(self.string(key, "the string value")?),
            GgufValueType::Array => GgufValue::Array(self.array_value(key, 1)?),
            GgufValueType::U64 => GgufValue::U64(u64::from_le_bytes(self.array(key, W)?)),
            GgufValueType::I64 => GgufValue::I64(i64::from_le_bytes(self.array(key, W)?)),
            GgufValueType::F64 => GgufValue::F64(f64::from_le_bytes(self.array(key, W)?)),
        })
    }

    /// Fixed-size items: the whole array's bytes are checked, then decoded.
    fn fixed<T, const N: usize>(
        &mut self,
        len: u64,
        key: &str,
        decode: fn([u8; N]) -> T,
    ) -> Result<Vec<T>> {
        let bytes = self.take(len.saturating_mul(N as u64), key, "the array items")?;
        Ok(bytes
            .chunks_exact(N)
            .map(|c| decode(c.try_into().expect("N-byte chunk")))
            .collect())
    }

    fn array_value(&mut self, key: &str, depth: usize) -> Result<GgufArray> {
        let at = self.pos;
        let item = self.value_type(key, "the array item type")?;
        let len = self.u64(key, "the array length")?;
        let min = item.min_encoded_size() as u64;
        if len
            .checked_mul(min)
            .is_none_or(|n| n > self.remaining() as u64)
        {
            return Err(self.error(
                key,
                format!(
                    "the array at byte {at} claims {len} {item} items, at least {min} bytes \
                     each, but only {} bytes are left (corrupt header)",
                    self.remaining()
                ),
            ));
        }
        // `len` items of at least one byte each fit in the bytes left: it fits a usize.
        let n = usize::try_from(len).expect("array length bounded by the file size");
        Ok(match item {
            GgufValueType::U8 => GgufArray::U8(self.fixed(len, key, u8::from_le_bytes)?),
            GgufValueType::I8 => GgufArray::I8(self.fixed(len, key, i8::from_le_bytes)?),
            GgufValueType::U16 => GgufArray::U16(self.fixed(len, key, u16::from_le_bytes)?),
            GgufValueType::I16 => GgufArray::I16(self.fixed(len, key, i16::from_le_bytes)?),
            GgufValueType::U32 => GgufArray::U32(self.fixed(len, key, u32::from_le_bytes)?),
            GgufValueType::I32 => GgufArray::I32(self.fixed(len, key, i32::from_le_bytes)?),
            GgufValueType::F32 => GgufArray::F32(self.fixed(len, key, f32::from_le_bytes)?),
            GgufValueType::U64 => GgufArray::U64(self.fixed(len, key, u64::from_le_bytes)?),
            GgufValueType::I64 => GgufArray::I64(self.fixed(len, key, i64::from_le_bytes)?),
            GgufValueType::F64 => GgufArray::F64(self.fixed(len, key, f64::from_le_bytes)?),
            GgufValueType::Bool => GgufArray::Bool(self.fixed(len, key, |[b]: [u8; 1]| b != 0)?),
            GgufValueType::String => {
                let mut items = Vec::with_capacity(n.min(RESERVE_LIMIT));
                for _ in 0..n {
                    items.push(self.string(key, "an array string")?);
                }
                GgufArray::String(items)
            }
            GgufValueType::Array => {
                if depth >= MAX_ARRAY_DEPTH {
                    return Err(self.error(
                        key,
                        format!(
                            "arrays nest more than {MAX_ARRAY_DEPTH} deep at byte {at} \
                             (corrupt header)"
                        ),
                    ));
                }
                let mut items = Vec::with_capacity(n.min(RESERVE_LIMIT));
                for _ in 0..n {
                    items.push(self.array_value(key, depth + 1)?);
                }
                GgufArray::Array(items)
            }
        })
    }
}

/// The error for a header problem at `key` (a metadata key, a tensor name or `header`).
pub(crate) fn bad(file: &Path, key: &str, reason: String) -> Error {
    Error::BadConfig {
        file: file.to_path_buf(),
        key: key.to_string(),
        reason,
    }
}

/// Parses the header of a whole GGUF file (`bytes` is the file).
pub(crate) fn parse(bytes: &[u8], file: &Path) -> Result<Header> {
    const H: &str = "header";
    let mut cur = Cursor {
        bytes,
        pos: 0,
        file,
    };
    if bytes.len() < 4 || &bytes[..4] != MAGIC {
        let start = &bytes[..bytes.len().min(4)];
        return Err(bad(
            file,
            H,
            format!(
                "not a GGUF file: it starts with {start:02x?} ({} bytes in all), not the magic \
                 `GGUF`",
                bytes.len()
            ),
        ));
    }
    cur.pos = 4;
    let version = cur.u32(H, "the version")?;
    match version {
        2 | 3 => {}
        1 => {
            return Err(bad(
                file,
                H,
                "GGUF version 1 (32-bit counts, from 2023) is not supported; strata reads \
                 versions 2 and 3 (convert the file again with a current llama.cpp)"
                    .into(),
            ));
        }
        v if v & 0xFFFF == 0 && matches!(v.swap_bytes(), 2 | 3) => {
            return Err(bad(
                file,
                H,
                format!(
                    "a big-endian GGUF file (version {}); strata reads little-endian GGUF",
                    v.swap_bytes()
                ),
            ));
        }
        v => {
            return Err(bad(
                file,
                H,
                format!("unsupported GGUF version {v}; strata reads versions 2 and 3"),
            ));
        }
    }
    let n_tensors = cur.u64(H, "the tensor count")?;
    let n_kv = cur.u64(H, "the metadata key/value count")?;
    let needed = u128::from(n_tensors) * u128::from(MIN_TENSOR_INFO_BYTES)
        + u128::from(n_kv) * u128::from(MIN_KV_BYTES);
    if needed > cur.remaining() as u128 {
        return Err(bad(
            file,
            H,
            format!(
                "the header claims {n_tensors} tensors and {n_kv} metadata entries, which need \
                 at least {needed} bytes, but the file has {} bytes after the counts \
                 (truncated or corrupt header)",
                cur.remaining()
            ),
        ));
    }
    // Both counts fit in the bytes left (checked above): they fit a usize.
    let n_kv = usize::try_from(n_kv).expect("count bounded by the file size");
    let n_tensors = usize::try_from(n_tensors).expect("count bounded by the file size");

    let mut metadata = Vec::with_capacity(n_kv);
    let mut key_index = HashMap::with_capacity(n_kv);
    for i in 0..n_kv {
        let key = cur.string(H, &format!("the key of metadata entry {i}"))?;
        let ty = cur.value_type(&key, "the value type")?;
        let value = cur.value(ty, &key)?;
        if key_index.insert(key.clone(), metadata.len()).is_some() {
            return Err(bad(
                file,
                &key,
                "the key appears twice in the metadata".into(),
            ));
        }
        metadata.push((key, value));
    }

    let alignment = match key_index.get(ALIGNMENT_KEY).map(|&i| &metadata[i].1) {
        None => DEFAULT_ALIGNMENT,
        Some(GgufValue::U32(a)) if a.is_power_of_two() => u64::from(*a),
        Some(GgufValue::U32(a)) => {
            return Err(bad(
                file,
                ALIGNMENT_KEY,
                format!("the alignment is {a}; it must be a non-zero power of two"),
            ));
        }
        Some(other) => {
            return Err(bad(
                file,
                ALIGNMENT_KEY,
                format!("expected UINT32, found {}", other.type_name()),
            ));
        }
    };

    struct Raw {
        name: String,
        dims: Vec<u64>,
        ggml_type: GgmlType,
        offset: u64,
    }
    let mut raw = Vec::with_capacity(n_tensors);
    for i in 0..n_tensors {
        let name = cur.string(H, &format!("the name of tensor {i}"))?;
        let n_dims = cur.u32(&name, "the number of dimensions")?;
        if n_dims as usize > MAX_DIMS {
            return Err(bad(
                file,
                &name,
                format!("the tensor has {n_dims} dimensions; ggml tensors have at most {MAX_DIMS}"),
            ));
        }
        let mut dims = Vec::with_capacity(n_dims as usize);
        for _ in 0..n_dims {
            dims.push(cur.u64(&name, "a dimension")?);
        }
        let type_id = cur.u32(&name, "the tensor type")?;
        let ggml_type = GgmlType::from_id(type_id).ok_or_else(|| {
            bad(
                file,
                &name,
                format!("the tensor type id {type_id} is no ggml type"),
            )
        })?;
        let offset = cur.u64(&name, "the data offset")?;
        raw.push(Raw {
            name,
            dims,
            ggml_type,
            offset,
        });
    }

    let data_offset = (cur.pos as u64).next_multiple_of(alignment);
    let file_len = bytes.len() as u64;
    let mut tensors = Vec::with_capacity(raw.len());
    let mut tensor_index = HashMap::with_capacity(raw.len());
    for Raw {
        name,
        dims,
        ggml_type,
        offset,
    } in raw
    {
        let err = |reason: String| bad(file, &name, reason);
        // The product of the non-zero dimensions must fit, so that no partial product of
        // the shape overflows whatever the order (`[2^40, 0, 2^40]` is refused).
        let nonzero_product = dims
            .iter()
            .filter(|&&d| d != 0)
            .try_fold(1u64, |n, &d| n.checked_mul(d))
            .ok_or_else(|| err(format!("the dimensions {dims:?} overflow 64 bits")))?;
        let n_elements = if dims.contains(&0) {
            0
        } else {
            nonzero_product
        };
        let (block, size) = (ggml_type.block_size() as u64, ggml_type.type_size() as u64);
        let row = dims.first().copied().unwrap_or(1);
        if row % block != 0 {
            return Err(err(format!(
                "the rows hold {row} elements, not a multiple of the {ggml_type} block of \
                 {block}"
            )));
        }
        let n_bytes = (n_elements / block)
            .checked_mul(size)
            .ok_or_else(|| err(format!("the dimensions {dims:?} overflow 64 bits")))?;
        if offset % alignment != 0 {
            return Err(err(format!(
                "the data offset {offset} is not a multiple of the alignment {alignment}"
            )));
        }
        let range = data_offset
            .checked_add(offset)
            .and_then(|start| Some((start, start.checked_add(n_bytes)?)));
        let start = match range {
            Some((start, end)) if end <= file_len => start,
            _ => {
                return Err(err(format!(
                    "the {ggml_type} data ({n_bytes} bytes at offset {offset} of the data \
                     section, which starts at byte {data_offset}) ends past the end of the \
                     file ({file_len} bytes): the file is truncated or corrupt"
                )));
            }
        };
        // Inside the mapped file, so within usize.
        let start = usize::try_from(start).expect("offset inside the mapped file");
        let shape = dims
            .iter()
            .rev()
            .map(|&d| usize::try_from(d))
            .collect::<std::result::Result<Vec<usize>, _>>()
            .map_err(|_| err(format!("the dimensions {dims:?} do not fit this machine")))?;
        usize::try_from(nonzero_product)
            .map_err(|_| err(format!("the dimensions {dims:?} do not fit this machine")))?;
        if tensor_index.insert(name.clone(), tensors.len()).is_some() {
            return Err(err("two tensors have this name".into()));
        }
        tensors.push(GgufTensorInfo {
            name,
            dims,
            shape,
            ggml_type,
            offset,
            n_elements,
            n_bytes,
            start,
        });
    }

    Ok(Header {
        version,
        metadata,
        key_index,
        tensors,
        tensor_index,
        alignment,
        data_offset,
    })
}

//! Memory-mapped safetensors: one file or a sharded set described by an index.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::{Advice, Mmap};
use safetensors::{Dtype, SafeTensors};

use super::HostTensor;
use crate::error::{Error, Result};

/// The single-file weights name in a Hugging Face folder.
pub const SINGLE_FILE: &str = "model.safetensors";
/// The shard index name in a Hugging Face folder.
pub const INDEX_FILE: &str = "model.safetensors.index.json";

/// Shape and stored dtype of one tensor, read from the header without touching its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    /// Dimensions, outermost first.
    pub shape: Vec<usize>,
    /// The stored dtype as safetensors spells it (`F32`, `BF16`, ...).
    pub dtype: String,
}

struct MappedFile {
    path: PathBuf,
    mmap: Mmap,
}

struct Entry {
    file_idx: usize,
    dtype: Dtype,
    shape: Vec<usize>,
    /// Absolute byte range in the mapped file.
    start: usize,
    end: usize,
}

/// The weights of one checkpoint, memory-mapped, readable one tensor at a time.
///
/// Reading a tensor converts it to f32 and then tells the kernel it may drop the mapped pages,
/// so loading a whole model keeps peak host memory near one copy of the weights.
pub struct WeightStore {
    source: PathBuf,
    files: Vec<MappedFile>,
    entries: BTreeMap<String, Entry>,
    /// Names read so far, so a loader can report the tensors it never used.
    read: std::sync::Mutex<std::collections::BTreeSet<String>>,
}

impl std::fmt::Debug for WeightStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WeightStore")
            .field("source", &self.source)
            .field("n_files", &self.files.len())
            .field("n_tensors", &self.entries.len())
            .finish()
    }
}

impl WeightStore {
    /// Opens a model folder (`model.safetensors` or `model.safetensors.index.json` with its
    /// shards) or a single `.safetensors` file.
    pub fn open(path: &Path) -> Result<Self> {
        if path.is_file() {
            return Self::from_files(path.to_path_buf(), &[path.to_path_buf()]);
        }
        if !path.is_dir() {
            return Err(Error::io(
                path,
                std::io::Error::new(std::io::ErrorKind::NotFound, "no such file or folder"),
            ));
        }
        let single = path.join(SINGLE_FILE);
        if single.is_file() {
            return Self::from_files(single.clone(), &[single]);
        }
        let index = path.join(INDEX_FILE);
        if index.is_file() {
            let shards = read_index(&index)?;
            let files = shards
                .iter()
                .map(|s| shard_inside(path, &index, s))
                .collect::<Result<Vec<PathBuf>>>()?;
            return Self::from_files(index, &files);
        }
        Err(Error::MissingFile {
            dir: path.to_path_buf(),
            file: format!("{SINGLE_FILE}` or `{INDEX_FILE}"),
        })
    }

    fn from_files(source: PathBuf, paths: &[PathBuf]) -> Result<Self> {
        let mut files = Vec::with_capacity(paths.len());
        let mut entries = BTreeMap::new();
        for (file_idx, path) in paths.iter().enumerate() {
            let file = File::open(path).map_err(|e| Error::io(path, e))?;
            // SAFETY: the map is read-only; strata never writes weights files it has mapped.
            let mmap = unsafe { Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
            let bad = |reason: String| Error::Safetensors {
                file: path.clone(),
                reason,
            };
            let (header_len, metadata) =
                SafeTensors::read_metadata(&mmap).map_err(|e| bad(e.to_string()))?;
            let data_start = 8 + header_len;
            for (name, info) in metadata.tensors() {
                let (lo, hi) = info.data_offsets;
                let (start, end) = (data_start + lo, data_start + hi);
                if end > mmap.len() || lo > hi {
                    return Err(bad(format!(
                        "tensor `{name}` spans bytes {start}..{end} but the file has {} bytes \
                         (truncated?)",
                        mmap.len()
                    )));
                }
                let n_elements: usize = info.shape.iter().product();
                if n_elements * info.dtype.bitsize() / 8 != hi - lo {
                    return Err(bad(format!(
                        "tensor `{name}` has shape {:?} but {} data bytes",
                        info.shape,
                        hi - lo
                    )));
                }
                entries.insert(
                    name.clone(),
                    Entry {
                        file_idx,
                        dtype: info.dtype,
                        shape: info.shape.clone(),
                        start,
                        end,
                    },
                );
            }
            files.push(MappedFile {
                path: path.clone(),
                mmap,
            });
        }
        Ok(Self {
            source,
            files,
            entries,
            read: Default::default(),
        })
    }

    /// The file (or index) these weights came from; used in error messages.
    pub fn source(&self) -> &Path {
        &self.source
    }

    /// All tensor names, sorted.
    pub fn names(&self) -> Vec<String> {
        self.entries.keys().cloned().collect()
    }

    /// Whether a tensor exists.
    pub fn contains(&self, name: &str) -> bool {
        self.entries.contains_key(name)
    }

    /// Shape and dtype of a tensor.
    pub fn info(&self, name: &str) -> Result<TensorInfo> {
        let entry = self.entry(name)?;
        Ok(TensorInfo {
            shape: entry.shape.clone(),
            dtype: format!("{:?}", entry.dtype),
        })
    }

    /// The dtype most of the weights are stored in (`F32`, `BF16`, ...), or `None` when empty.
    pub fn dominant_dtype(&self) -> Option<String> {
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for e in self.entries.values() {
            *counts.entry(format!("{:?}", e.dtype)).or_default() +=
                e.shape.iter().product::<usize>();
        }
        counts.into_iter().max_by_key(|(_, n)| *n).map(|(d, _)| d)
    }

    /// Total number of stored elements.
    pub fn n_elements(&self) -> usize {
        self.entries
            .values()
            .map(|e| e.shape.iter().product::<usize>())
            .sum()
    }

    /// The tensors no `read_f32` has asked for yet, sorted: after loading a model, the ones
    /// the config does not use.
    pub fn unread_names(&self) -> Vec<String> {
        let read = self.read.lock().map(|r| r.clone()).unwrap_or_default();
        self.entries
            .keys()
            .filter(|name| !read.contains(*name))
            .cloned()
            .collect()
    }

    /// Reads one tensor as f32 (F16, BF16 and F64 are converted).
    pub fn read_f32(&self, name: &str) -> Result<HostTensor> {
        let entry = self.entry(name)?;
        if let Ok(mut read) = self.read.lock() {
            read.insert(name.to_string());
        }
        let file = &self.files[entry.file_idx];
        let bytes = &file.mmap[entry.start..entry.end];
        let convert: fn(&[u8], &mut Vec<f32>) = match entry.dtype {
            Dtype::F32 => |b, out| {
                out.extend(
                    b.chunks_exact(4)
                        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
                )
            },
            Dtype::F16 => |b, out| {
                out.extend(
                    b.chunks_exact(2)
                        .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32()),
                )
            },
            Dtype::BF16 => |b, out| {
                out.extend(
                    b.chunks_exact(2)
                        .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32()),
                )
            },
            Dtype::F64 => |b, out| {
                out.extend(
                    b.chunks_exact(8)
                        .map(|b| f64::from_le_bytes(b.try_into().expect("8-byte chunk")) as f32),
                )
            },
            other => {
                return Err(Error::TensorDtype {
                    file: file.path.clone(),
                    key: name.to_string(),
                    dtype: format!("{other:?}"),
                });
            }
        };
        let _ = file
            .mmap
            .advise_range(Advice::Sequential, entry.start, bytes.len());
        // Convert in chunks and release each chunk's pages as soon as it is converted: pages of
        // a read-only file map are re-read on demand, so loading never holds the mapped file
        // and the converted copy of a large tensor at once.
        const CHUNK_BYTES: usize = 8 << 20;
        let element_bytes = entry.dtype.bitsize() / 8;
        let chunk = CHUNK_BYTES - CHUNK_BYTES % element_bytes;
        let mut data = Vec::with_capacity(bytes.len() / element_bytes);
        for (i, part) in bytes.chunks(chunk).enumerate() {
            convert(part, &mut data);
            // SAFETY: the map is read-only; DontNeed only drops clean file-backed pages.
            let _ = unsafe {
                file.mmap.unchecked_advise_range(
                    memmap2::UncheckedAdvice::DontNeed,
                    entry.start + i * chunk,
                    part.len(),
                )
            };
        }
        Ok(HostTensor::new(entry.shape.clone(), data))
    }

    fn entry(&self, name: &str) -> Result<&Entry> {
        self.entries.get(name).ok_or_else(|| Error::MissingTensor {
            file: self.source.clone(),
            key: name.to_string(),
        })
    }
}

/// The path of shard `name` of an index in `dir`, refused unless it is a plain file name
/// inside the folder (an index must never make strata open files elsewhere).
fn shard_inside(dir: &Path, index: &Path, name: &str) -> Result<PathBuf> {
    let escape = |reason: &str| Error::BadConfig {
        file: index.to_path_buf(),
        key: "weight_map".into(),
        reason: format!("shard `{name}` {reason}; shards must be files inside the model folder"),
    };
    let relative = Path::new(name);
    if relative.is_absolute()
        || relative
            .components()
            .any(|c| !matches!(c, std::path::Component::Normal(_)))
    {
        return Err(escape("is not a plain relative path"));
    }
    let path = dir.join(relative);
    if let (Ok(real_dir), Ok(real)) = (dir.canonicalize(), path.canonicalize())
        && !real.starts_with(&real_dir)
    {
        return Err(escape("resolves outside the folder"));
    }
    Ok(path)
}

/// The shard file names listed by a `model.safetensors.index.json`, in first-seen order.
fn read_index(index: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(index).map_err(|e| Error::io(index, e))?;
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|source| Error::Json {
        path: index.to_path_buf(),
        source,
    })?;
    let map = value
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| Error::BadConfig {
            file: index.to_path_buf(),
            key: "weight_map".into(),
            reason: "missing or not an object".into(),
        })?;
    let mut shards: Vec<String> = Vec::new();
    for (key, file) in map {
        let file = file.as_str().ok_or_else(|| Error::BadConfig {
            file: index.to_path_buf(),
            key: format!("weight_map.{key}"),
            reason: "not a file name".into(),
        })?;
        if !shards.iter().any(|s| s == file) {
            shards.push(file.to_string());
        }
    }
    Ok(shards)
}

impl super::WeightSource for WeightStore {
    fn source(&self) -> &Path {
        WeightStore::source(self)
    }

    fn names(&self) -> Vec<String> {
        WeightStore::names(self)
    }

    fn contains(&self, name: &str) -> bool {
        WeightStore::contains(self, name)
    }

    fn info(&self, name: &str) -> Result<TensorInfo> {
        WeightStore::info(self, name)
    }

    fn read_f32(&self, name: &str) -> Result<HostTensor> {
        WeightStore::read_f32(self, name)
    }

    fn n_elements(&self) -> usize {
        WeightStore::n_elements(self)
    }

    fn unread_names(&self) -> Vec<String> {
        WeightStore::unread_names(self)
    }
}

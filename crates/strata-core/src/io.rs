//! Writing results so that a failure never destroys an earlier one.
//!
//! Every output strata writes (tables, figures, JSON, safetensors) goes through
//! [`write_atomic`]: the bytes go to a temporary file in the destination's folder, are
//! flushed to disk, and only then renamed over the destination. An interrupted or failed
//! write (full disk, file-size limit, read-only folder) leaves the previous file as it was
//! and no truncated file behind. [`RunManifest`] records what a run wrote, so files left in a
//! folder by an older run are recognisable.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Writes `path` atomically: `write` fills a temporary file next to it, which replaces
/// `path` only if everything succeeded. The folder is created if needed.
pub fn write_atomic(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<()> {
    let dir = match path.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(dir) => dir.to_path_buf(),
        None => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| Error::InvalidArgument {
            what: "output path".into(),
            reason: format!("{} names no file", path.display()),
        })?;
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| -> std::io::Result<()> {
        let file = std::fs::File::create(&tmp)?;
        let mut buffered = std::io::BufWriter::new(file);
        write(&mut buffered)?;
        let file = buffered.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        // Name the destination, and for a folder that refuses files, say so plainly.
        return Err(Error::io(path, e));
    }
    Ok(())
}

/// [`write_atomic`] of a byte slice.
pub fn write_bytes_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic(path, |w| w.write_all(bytes))
}

/// Writes a value as pretty JSON (with a final newline), atomically. Non-finite floats
/// must already be mapped (see [`json_float`]): JSON has no NaN or infinity.
pub fn write_json_atomic<T: Serialize + ?Sized>(path: &Path, value: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(|source| Error::Json {
        path: path.to_path_buf(),
        source,
    })?;
    write_bytes_atomic(path, (text + "\n").as_bytes())
}

/// A float for JSON: finite values as numbers, NaN as `null`, infinities as the strings
/// `"inf"` and `"-inf"` (what readers of strata's JSON expect; see `strata-report`).
pub fn json_float(value: f64) -> serde_json::Value {
    if value.is_finite() {
        serde_json::json!(value)
    } else if value.is_nan() {
        serde_json::Value::Null
    } else if value > 0.0 {
        serde_json::Value::String("inf".into())
    } else {
        serde_json::Value::String("-inf".into())
    }
}

/// What one run wrote into an output folder: `manifest.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunManifest {
    /// The model (folder or file) the run analysed.
    pub model: String,
    /// The command line, as given.
    pub command: Vec<String>,
    /// When the run finished, seconds since the Unix epoch.
    pub finished_unix_s: u64,
    /// strata's version.
    pub strata_version: String,
    /// The files this run wrote, relative to the folder.
    pub files: Vec<String>,
}

impl RunManifest {
    /// A manifest of `files` for `model`, stamped now with this process's command line.
    pub fn new(model: impl Into<String>, files: Vec<String>) -> Self {
        Self {
            model: model.into(),
            command: std::env::args().collect(),
            finished_unix_s: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            strata_version: env!("CARGO_PKG_VERSION").to_string(),
            files,
        }
    }

    /// Writes `dir/manifest.json` and warns about files in `dir` that this run did not write
    /// (left by an earlier run: they are not current).
    pub fn write(&self, dir: &Path) -> Result<()> {
        if let Ok(entries) = std::fs::read_dir(dir) {
            let stale: Vec<String> = entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n != "manifest.json" && !n.starts_with('.'))
                .filter(|n| {
                    !self
                        .files
                        .iter()
                        .any(|f| f == n || f.starts_with(&format!("{n}/")))
                })
                .collect();
            if !stale.is_empty() {
                tracing::warn!(
                    "{}: {} file(s) were not written by this run and are not current: {}",
                    dir.display(),
                    stale.len(),
                    stale.join(", ")
                );
            }
        }
        write_json_atomic(&dir.join("manifest.json"), self)
    }
}

//! Sharded corpus runs: `--shard i/n` (numbered from 1) makes a command measure only the
//! `i`-th of `n` contiguous shares of its sequences or windows and write, beside its normal
//! outputs, the mergeable state of that share to `OUT/shard.json`. `strata merge` reads the
//! states of every shard, checks that they belong to one run, and writes the files the
//! unsharded run writes.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use strata_core::Shard;
use strata_core::io::write_json_atomic;

/// The state file a sharded run writes into its output folder.
pub const STATE_FILE: &str = "shard.json";

/// The layout version of [`STATE_FILE`].
pub const STATE_VERSION: u32 = 1;

/// `--shard` as clap parses it.
pub fn parse_shard(text: &str) -> std::result::Result<Shard, String> {
    text.parse().map_err(|e: strata_core::Error| e.to_string())
}

/// One shard's state: what [`STATE_FILE`] holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShardState {
    /// The layout version ([`STATE_VERSION`]).
    pub version: u32,
    /// The command that wrote it (`ppl`, `massive`, `sparsity`).
    pub command: String,
    /// Which shard, `i/n`, numbered from 1.
    pub shard: Shard,
    /// The model as given on the command line.
    pub model: String,
    /// A fingerprint of the model's files (see [`model_fingerprint`]).
    pub model_fingerprint: String,
    /// Everything the shards of one run share: the settings that shape the result and a
    /// fingerprint of the whole run's tokens. Must be equal in every shard.
    pub settings: BTreeMap<String, Value>,
    /// What the work items are (`sequences`, `windows`).
    pub unit: String,
    /// Items of the whole run.
    pub n_items: usize,
    /// The items this shard measured.
    pub items: Range<usize>,
    /// The command's mergeable statistics of this shard.
    pub state: Value,
}

impl ShardState {
    /// A state of `shard`, taking `items` of the run's `n_items` `unit`s.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        command: &str,
        shard: Shard,
        model: &Path,
        settings: BTreeMap<String, Value>,
        unit: &str,
        n_items: usize,
        items: Range<usize>,
        state: &impl Serialize,
    ) -> Result<Self> {
        Ok(Self {
            version: STATE_VERSION,
            command: command.into(),
            shard,
            model: model.display().to_string(),
            model_fingerprint: model_fingerprint(model)?,
            settings,
            unit: unit.into(),
            n_items,
            items,
            state: serde_json::to_value(state).context("serialising the shard state")?,
        })
    }

    /// Writes `out/shard.json`.
    pub fn write(&self, out: &Path) -> Result<()> {
        Ok(write_json_atomic(&out.join(STATE_FILE), self)?)
    }

    /// The command-specific state, read as `T`; `file` names the state in errors.
    pub fn state<T: serde::de::DeserializeOwned>(&self, file: &Path) -> Result<T> {
        serde_json::from_value(self.state.clone()).with_context(|| {
            format!(
                "{}: the `state` of this {} shard is not what strata {} writes",
                file.display(),
                self.command,
                env!("CARGO_PKG_VERSION")
            )
        })
    }
}

/// The items of `n_items` `unit`s that `shard` takes, refusing an empty share.
pub fn take(shard: Shard, n_items: usize, unit: &str) -> Result<Range<usize>> {
    let range = shard.range(n_items);
    if range.is_empty() {
        bail!(
            "--shard {shard}: the run has only {n_items} {unit}, so shard {} of {} would be \
             empty; split it into at most {n_items} shards",
            shard.number(),
            shard.count()
        );
    }
    Ok(range)
}

/// Refuses `--shard` without `--out`: the shard's state has to go somewhere.
pub fn require_out(shard: Shard, out: Option<&Path>) -> Result<&Path> {
    out.with_context(|| {
        format!("--shard {shard} needs --out: the shard's state is written to OUT/{STATE_FILE}")
    })
}

/// A fingerprint of a token stream: FNV-1a over its length and ids, as 16 hex digits.
pub fn tokens_fingerprint(tokens: &[u32]) -> String {
    let mut hash = Fnv::new();
    hash.write(&(tokens.len() as u64).to_le_bytes());
    for id in tokens {
        hash.write(&id.to_le_bytes());
    }
    hash.hex()
}

/// Bytes read from each end of a model file for [`model_fingerprint`].
const FINGERPRINT_BYTES: u64 = 64 * 1024;

/// A fingerprint of a model's files, as 16 hex digits: FNV-1a over the name, size, first and
/// last 64 KiB of each of them in name order (a folder's `config.json`, `tokenizer.json`,
/// `*.safetensors`, `*.safetensors.index.json` and `*.gguf`, or one `.gguf` file). It tells
/// two models or two checkpoints of one training run apart without reading every weight.
pub fn model_fingerprint(model: &Path) -> Result<String> {
    let mut files: Vec<PathBuf> = if model.is_dir() {
        let entries = std::fs::read_dir(model)
            .with_context(|| format!("listing the model folder {}", model.display()))?;
        let mut files = Vec::new();
        for entry in entries {
            let path = entry
                .with_context(|| format!("listing the model folder {}", model.display()))?
                .path();
            let name = path
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
            let weights = name.ends_with(".safetensors")
                || name.ends_with(".safetensors.index.json")
                || name.ends_with(".gguf");
            if path.is_file() && (weights || name == "config.json" || name == "tokenizer.json") {
                files.push(path);
            }
        }
        files
    } else {
        vec![model.to_path_buf()]
    };
    files.sort();
    let mut hash = Fnv::new();
    for path in &files {
        hash_file_ends(&mut hash, path)
            .with_context(|| format!("reading {} for its fingerprint", path.display()))?;
    }
    Ok(hash.hex())
}

fn hash_file_ends(hash: &mut Fnv, path: &Path) -> std::io::Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = std::fs::File::open(path)?;
    let size = file.metadata()?.len();
    let name = path
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    hash.write(name.as_bytes());
    hash.write(&size.to_le_bytes());
    let mut buffer = Vec::new();
    (&mut file)
        .take(FINGERPRINT_BYTES)
        .read_to_end(&mut buffer)?;
    hash.write(&buffer);
    if size > FINGERPRINT_BYTES {
        let tail = FINGERPRINT_BYTES.min(size - FINGERPRINT_BYTES);
        file.seek(SeekFrom::Start(size - tail))?;
        buffer.clear();
        file.take(tail).read_to_end(&mut buffer)?;
        hash.write(&buffer);
    }
    Ok(())
}

/// 64-bit FNV-1a: small, fast enough for fingerprints, and the same on every platform.
struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    fn hex(&self) -> String {
        format!("{:016x}", self.0)
    }
}

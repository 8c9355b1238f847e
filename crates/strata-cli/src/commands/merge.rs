//! `strata merge`: combines the states of the shards of one run (`--shard i/n`) into the
//! files the unsharded run writes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use super::shard::{STATE_FILE, STATE_VERSION, ShardState};
use super::{massive, ppl, sparsity};

/// Arguments of `strata merge`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The output folders of the shard runs (each holding `shard.json`), in any order.
    #[arg(required = true, value_name = "SHARD_DIR")]
    pub shards: Vec<PathBuf>,
    /// Folder for the merged result: the files the unsharded run writes.
    #[arg(long)]
    pub out: PathBuf,
}

/// One shard's state and where it was read from.
#[derive(Debug)]
pub struct ShardFile {
    /// The state file.
    pub path: PathBuf,
    /// The shard's output folder.
    pub dir: PathBuf,
    /// Its contents.
    pub state: ShardState,
}

/// Runs the command.
pub fn run(args: &Args) -> Result<()> {
    let mut shards = args
        .shards
        .iter()
        .map(|p| read(p))
        .collect::<Result<Vec<_>>>()?;
    check_one_run(&shards)?;
    shards.sort_by_key(|s| s.state.shard.number());
    refuse_shard_folder(&args.out, &shards)?;
    let first = &shards[0];
    match first.state.command.as_str() {
        "ppl" => ppl::merge_shards(&shards, &args.out),
        "massive" => massive::merge_shards(&shards, &args.out),
        "sparsity" => sparsity::merge_shards(&shards, &args.out),
        other => bail!(
            "{}: strata merge does not know `{other}` shards (it merges ppl, massive and \
             sparsity)",
            first.path.display()
        ),
    }
}

/// Reads `path/shard.json` (or `path` itself, when it is a file).
fn read(path: &Path) -> Result<ShardFile> {
    if !path.exists() {
        bail!(
            "{}: no such folder: give the --out folders of runs made with --shard",
            path.display()
        );
    }
    let (file, dir) = if path.is_dir() {
        (path.join(STATE_FILE), path.to_path_buf())
    } else {
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        (path.to_path_buf(), dir.to_path_buf())
    };
    let text = std::fs::read_to_string(&file).with_context(|| {
        format!(
            "reading {}: give the --out folders of runs made with --shard",
            file.display()
        )
    })?;
    let value: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{}: not a JSON shard state", file.display()))?;
    let version = value.get("version").and_then(serde_json::Value::as_u64);
    if version != Some(u64::from(STATE_VERSION)) {
        bail!(
            "{}: shard state version {}, but this strata reads version {STATE_VERSION}",
            file.display(),
            version.map_or_else(|| "missing".into(), |v| v.to_string())
        );
    }
    let state: ShardState = serde_json::from_value(value)
        .with_context(|| format!("{}: not a shard state strata writes", file.display()))?;
    Ok(ShardFile {
        path: file,
        dir,
        state,
    })
}

/// Refuses shards that are not the complete set of one run: another command, model,
/// setting or token stream, a different shard count, a duplicate or a missing shard.
fn check_one_run(shards: &[ShardFile]) -> Result<()> {
    let first = &shards[0];
    let (a, name_a) = (&first.state, first.path.display());
    for other in &shards[1..] {
        let (b, name_b) = (&other.state, other.path.display());
        if b.command != a.command {
            bail!(
                "{name_b} is a `{}` shard, but {name_a} is a `{}` shard: merge the shards of \
                 one run",
                b.command,
                a.command
            );
        }
        if b.model_fingerprint != a.model_fingerprint {
            bail!(
                "{name_b} measured the model {} (fingerprint {}), but {name_a} measured {} \
                 (fingerprint {}): the shards of one run measure the same model",
                b.model,
                b.model_fingerprint,
                a.model,
                a.model_fingerprint
            );
        }
        let keys: std::collections::BTreeSet<&String> =
            a.settings.keys().chain(b.settings.keys()).collect();
        for key in keys {
            let (va, vb) = (a.settings.get(key), b.settings.get(key));
            if va != vb {
                let show = |v: Option<&serde_json::Value>| {
                    v.map_or_else(|| "missing".to_string(), ToString::to_string)
                };
                bail!(
                    "{name_b}: setting `{key}` is {}, but {name_a} has {}: the shards of one \
                     run share every setting",
                    show(vb),
                    show(va)
                );
            }
        }
        if b.shard.count() != a.shard.count() {
            bail!(
                "{name_b} is shard {}, but {name_a} is shard {}: the shards of one run share \
                 the shard count",
                b.shard,
                a.shard
            );
        }
        if (b.unit.as_str(), b.n_items) != (a.unit.as_str(), a.n_items) {
            bail!(
                "{name_b} splits {} {}, but {name_a} splits {} {}",
                b.n_items,
                b.unit,
                a.n_items,
                a.unit
            );
        }
    }
    let mut by_number: BTreeMap<usize, &ShardFile> = BTreeMap::new();
    for s in shards {
        let expected = s.state.shard.range(s.state.n_items);
        if s.state.items != expected {
            bail!(
                "{}: shard {} lists {} {}..{}, but shard {} of {} {} is {}..{}",
                s.path.display(),
                s.state.shard,
                s.state.unit,
                s.state.items.start,
                s.state.items.end,
                s.state.shard,
                s.state.n_items,
                s.state.unit,
                expected.start,
                expected.end
            );
        }
        if let Some(twin) = by_number.insert(s.state.shard.number(), s) {
            bail!(
                "{} and {} are both shard {}: give each shard once",
                twin.path.display(),
                s.path.display(),
                s.state.shard
            );
        }
    }
    let count = a.shard.count();
    let missing: Vec<String> = (1..=count)
        .filter(|n| !by_number.contains_key(n))
        .map(|n| format!("{n}/{count}"))
        .collect();
    if !missing.is_empty() {
        let given: Vec<String> = by_number
            .values()
            .map(|s| format!("{} ({})", s.state.shard, s.path.display()))
            .collect();
        bail!(
            "{} {} missing: merge needs every shard of the run, got {}",
            if missing.len() == 1 {
                "shard"
            } else {
                "shards"
            },
            missing.join(", "),
            given.join(", ")
        );
    }
    Ok(())
}

/// Refuses to write the merged result into a shard's own folder.
fn refuse_shard_folder(out: &Path, shards: &[ShardFile]) -> Result<()> {
    let Ok(out_real) = out.canonicalize() else {
        return Ok(());
    };
    for s in shards {
        if s.dir.canonicalize().is_ok_and(|d| d == out_real) {
            bail!(
                "--out {} is the folder of shard {} ({}): write the merged result elsewhere",
                out.display(),
                s.state.shard,
                s.path.display()
            );
        }
    }
    Ok(())
}

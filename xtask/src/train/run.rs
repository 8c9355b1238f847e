//! The training loop: next-token cross-entropy, AdamW, warmup + cosine, gradient clipping,
//! HF checkpoints at the scheduled steps, and resumption from the last one.
//!
//! A run folder holds `run.json` (what the run is: spec, corpus and tokenizer
//! fingerprints), `step{N}/` checkpoints (`config.json`, `model.safetensors`,
//! `tokenizer.json`, `trainer_state.json`), `log.jsonl` (one line per step) and `resume/`
//! (the weights and AdamW moments of the last checkpoint in burn's recorder format, plus
//! `state.json`). A restarted run continues from `resume/` with the same optimiser state
//! and the same batches an uninterrupted run would have seen.

use std::fs;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use burn::module::{AutodiffModule, Module};
use burn::optim::Optimizer;
use burn::record::{FullPrecisionSettings, NamedMpkFileRecorder, Recorder};
use burn::tensor::backend::AutodiffBackend;
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use strata_core::ModelConfig;
use strata_core::models::Decoder;
use strata_core::models::init_decoder;
use strata_core::models::save_hf;
use strata_core::train::{AdamWSettings, train_step};

use super::data::Blocks;
use super::schedule::{checkpoint_steps, learning_rate};
use super::spec::TrainSpec;

/// What a run folder was made from; a folder whose `run.json` differs holds another run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunIdentity {
    /// The run's settings.
    pub spec: TrainSpec,
    /// Number of tokens in the training stream.
    pub corpus_tokens: usize,
    /// FNV-1a hash of the training stream's token ids.
    pub corpus_hash: String,
    /// FNV-1a hash of `tokenizer.json`.
    pub tokenizer_hash: String,
}

/// The outcome of [`train`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainReport {
    /// Model name.
    pub name: String,
    /// Number of parameters.
    pub n_params: usize,
    /// Optimiser steps done in total.
    pub n_steps: usize,
    /// Training tokens seen in total.
    pub n_tokens_seen: usize,
    /// Mean training loss (nats per token) over the last 20 steps.
    pub final_train_loss: f64,
    /// Seconds spent in training steps (forward, backward, update), over all sessions.
    pub train_seconds: f64,
    /// Training tokens per second of training-step time.
    pub tokens_per_second: f64,
    /// Wall-clock seconds of this session, checkpoints included.
    pub session_wall_seconds: f64,
    /// The step this session resumed from, if it did.
    pub resumed_from: Option<usize>,
    /// The checkpoint steps.
    pub checkpoints: Vec<usize>,
}

/// Where the run is when a checkpoint is written.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ResumeState {
    step: usize,
    n_tokens_seen: usize,
    train_seconds: f64,
}

/// One line of `log.jsonl`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct LogLine {
    step: usize,
    loss: f64,
    lr: f64,
    tokens_per_second: f64,
}

/// FNV-1a, 64 bits, as hex: a fingerprint for run identity, not a security hash.
pub fn fnv1a(bytes: impl IntoIterator<Item = u8>) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// Makes `out` ready for `identity`: creates it, accepts it when it holds the same run
/// (to resume), and refuses a different run unless `overwrite`, in which case the old
/// run's files are removed. Returns whether an earlier session of this run exists.
pub fn prepare_run_dir(out: &Path, identity: &RunIdentity, overwrite: bool) -> Result<bool> {
    let run_file = out.join("run.json");
    let mut same_run = false;
    if run_file.is_file() {
        let text = fs::read_to_string(&run_file)
            .with_context(|| format!("{}: cannot read", run_file.display()))?;
        let old: serde_json::Value = serde_json::from_str(&text)
            .with_context(|| format!("{}: not valid JSON", run_file.display()))?;
        let new = serde_json::to_value(identity)?;
        let diffs = diff_paths(&old, &new, String::new());
        if diffs.is_empty() {
            same_run = true;
        } else if !overwrite {
            bail!(
                "{}: this folder holds a different training run (differs in {}); pass --overwrite to replace it, or choose another --out",
                out.display(),
                diffs.join(", ")
            );
        }
    } else if out.is_dir() && fs::read_dir(out)?.next().is_some() && !overwrite {
        bail!(
            "{}: the folder is not empty and holds no training run (no run.json); pass --overwrite to train into it anyway",
            out.display()
        );
    }
    if !same_run && out.is_dir() {
        remove_run_files(out)?;
    }
    fs::create_dir_all(out).with_context(|| format!("{}: cannot create", out.display()))?;
    fs::write(&run_file, serde_json::to_string_pretty(identity)? + "\n")
        .with_context(|| format!("{}: cannot write", run_file.display()))?;
    Ok(same_run && resume_dir(out).is_some())
}

/// Removes what a run writes (and nothing else) from `out`.
fn remove_run_files(out: &Path) -> Result<()> {
    for entry in fs::read_dir(out)? {
        let path = entry?.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        let is_step = name
            .strip_prefix("step")
            .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()));
        if is_step || name == "resume" || name == "resume.tmp" {
            fs::remove_dir_all(&path)
                .with_context(|| format!("{}: cannot remove", path.display()))?;
        } else if ["run.json", "log.jsonl", "summary.json"].contains(&name.as_str()) {
            fs::remove_file(&path).with_context(|| format!("{}: cannot remove", path.display()))?;
        }
    }
    Ok(())
}

/// Dotted paths at which two JSON values differ.
fn diff_paths(a: &serde_json::Value, b: &serde_json::Value, at: String) -> Vec<String> {
    use serde_json::Value;
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            keys.into_iter()
                .flat_map(|k| {
                    let sub = if at.is_empty() {
                        k.clone()
                    } else {
                        format!("{at}.{k}")
                    };
                    match (x.get(k), y.get(k)) {
                        (Some(u), Some(v)) => diff_paths(u, v, sub),
                        _ => vec![sub],
                    }
                })
                .collect()
        }
        _ if a == b => Vec::new(),
        _ => vec![at],
    }
}

/// The folder holding the last complete resume state: `resume/`, or `resume.tmp/` when a
/// session stopped between writing it and renaming it.
fn resume_dir(out: &Path) -> Option<PathBuf> {
    ["resume", "resume.tmp"]
        .into_iter()
        .map(|n| out.join(n))
        .find(|d| d.join("state.json").is_file())
}

/// AdamW with the run's moments, decay and per-tensor gradient clipping.
pub fn adamw(spec: &TrainSpec) -> AdamWSettings {
    AdamWSettings {
        beta_1: spec.beta_1,
        beta_2: spec.beta_2,
        weight_decay: spec.weight_decay,
        grad_clip_norm: spec.grad_clip_norm,
    }
}

/// Trains the model of `spec` on `blocks`, writing checkpoints into `out` (prepared by
/// [`prepare_run_dir`]); resumes from `out/resume` when `resume` is set. With `stop_at`,
/// the session ends after writing the checkpoint of that step, as an interruption would.
#[allow(clippy::too_many_arguments)]
pub fn train<B: AutodiffBackend>(
    spec: &TrainSpec,
    cfg: &ModelConfig,
    blocks: &Blocks,
    out: &Path,
    tokenizer_file: &Path,
    resume: bool,
    stop_at: Option<usize>,
    device: &B::Device,
) -> Result<TrainReport> {
    let session_start = Instant::now();
    let recorder = NamedMpkFileRecorder::<FullPrecisionSettings>::new();
    let mut decoder: Decoder<B> = init_decoder(cfg, device, spec.seed)?;
    let n_params = decoder.num_params();
    let mut optim = adamw(spec).init::<B>();
    let mut state = ResumeState {
        step: 0,
        n_tokens_seen: 0,
        train_seconds: 0.0,
    };
    let mut resumed_from = None;
    if resume && let Some(dir) = resume_dir(out) {
        let text = fs::read_to_string(dir.join("state.json"))?;
        state = serde_json::from_str(&text)
            .with_context(|| format!("{}: bad resume state", dir.display()))?;
        decoder = decoder
            .load_file(dir.join("model"), &recorder, device)
            .map_err(|e| anyhow!("{}: cannot load the weights: {e:?}", dir.display()))?;
        let record = recorder
            .load(dir.join("optimizer"), device)
            .map_err(|e| anyhow!("{}: cannot load the optimizer: {e:?}", dir.display()))?;
        optim = optim.load_record(record);
        resumed_from = Some(state.step);
    }
    let mut log = read_log(out, state.step)?;
    let checkpoints = checkpoint_steps(spec.n_steps, spec.checkpoint_every);
    let tokens_per_step = spec.tokens_per_step();

    let bar = ProgressBar::new(spec.n_steps as u64).with_prefix(spec.arch.name.clone());
    bar.set_style(
        ProgressStyle::with_template(
            "{prefix} [{elapsed_precise}] {bar:30} {pos}/{len} {msg} (eta {eta})",
        )
        .expect("the progress template is valid"),
    );
    bar.set_position(state.step as u64);
    let plain_log = !std::io::stderr().is_terminal();
    let mut session_tokens = 0usize;
    let mut session_seconds = 0.0f64;

    for step in state.step..=spec.n_steps {
        if checkpoints.contains(&step) && resumed_from != Some(step) {
            save_checkpoint(
                &decoder,
                &optim,
                &recorder,
                &state,
                &log,
                out,
                tokenizer_file,
            )?;
        }
        if step == spec.n_steps || stop_at == Some(step) {
            break;
        }
        let t0 = Instant::now();
        let lr = learning_rate(spec, step);
        let batch = blocks.batch(step, spec.batch_size);
        let (next, loss_value) =
            train_step(decoder, &mut optim, &batch, lr, None).with_context(|| {
                format!(
                    "{}: step {step} failed (a non-finite loss: lower the learning rate)",
                    spec.arch.name
                )
            })?;
        decoder = next;
        let seconds = t0.elapsed().as_secs_f64();
        state.step = step + 1;
        state.n_tokens_seen += tokens_per_step;
        state.train_seconds += seconds;
        session_tokens += tokens_per_step;
        session_seconds += seconds;
        let tps = session_tokens as f64 / session_seconds;
        log.push(LogLine {
            step: step + 1,
            loss: loss_value,
            lr,
            tokens_per_second: tokens_per_step as f64 / seconds,
        });
        bar.set_message(format!("loss {loss_value:.3} lr {lr:.1e} {tps:.0} tok/s"));
        bar.inc(1);
        if plain_log && (step + 1).is_multiple_of(10) {
            eprintln!(
                "{} step {}/{} loss {loss_value:.4} lr {lr:.2e} {tps:.0} tok/s",
                spec.arch.name,
                step + 1,
                spec.n_steps
            );
        }
    }
    bar.finish();
    let tail = &log[log.len().saturating_sub(20)..];
    let final_train_loss = tail.iter().map(|l| l.loss).sum::<f64>() / tail.len().max(1) as f64;
    Ok(TrainReport {
        name: spec.arch.name.clone(),
        n_params,
        n_steps: state.step,
        n_tokens_seen: state.n_tokens_seen,
        final_train_loss,
        train_seconds: state.train_seconds,
        tokens_per_second: state.n_tokens_seen as f64 / state.train_seconds.max(1e-9),
        session_wall_seconds: session_start.elapsed().as_secs_f64(),
        resumed_from,
        checkpoints,
    })
}

/// `log.jsonl` up to `step`: lines past it belong to work the resume state does not hold.
fn read_log(out: &Path, step: usize) -> Result<Vec<LogLine>> {
    let path = out.join("log.jsonl");
    if !path.is_file() {
        return Ok(Vec::new());
    }
    let text = fs::read_to_string(&path)?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str::<LogLine>(l)
                .with_context(|| format!("{}: bad line {l:?}", path.display()))
        })
        .filter(|l| l.as_ref().map_or(true, |l| l.step <= step))
        .collect()
}

/// Writes `step{N}/` in HF format, then the resume state, then the log.
fn save_checkpoint<B: AutodiffBackend, O: Optimizer<Decoder<B>, B>>(
    decoder: &Decoder<B>,
    optim: &O,
    recorder: &NamedMpkFileRecorder<FullPrecisionSettings>,
    state: &ResumeState,
    log: &[LogLine],
    out: &Path,
    tokenizer_file: &Path,
) -> Result<()> {
    let dir = out.join(format!("step{}", state.step));
    save_hf(&decoder.valid(), &dir).with_context(|| format!("{}: cannot save", dir.display()))?;
    fs::copy(tokenizer_file, dir.join("tokenizer.json"))
        .with_context(|| format!("{}: cannot copy the tokenizer", dir.display()))?;
    let recent = &log[log.len().saturating_sub(20)..];
    let trainer_state = serde_json::json!({
        "step": state.step,
        "n_tokens_seen": state.n_tokens_seen,
        "train_loss_last_20_steps": if recent.is_empty() {
            serde_json::Value::Null
        } else {
            (recent.iter().map(|l| l.loss).sum::<f64>() / recent.len() as f64).into()
        },
    });
    fs::write(
        dir.join("trainer_state.json"),
        serde_json::to_string_pretty(&trainer_state)? + "\n",
    )?;

    let tmp = out.join("resume.tmp");
    if tmp.exists() {
        fs::remove_dir_all(&tmp)?;
    }
    fs::create_dir_all(&tmp)?;
    decoder
        .clone()
        .save_file(tmp.join("model"), recorder)
        .map_err(|e| anyhow!("{}: cannot save the weights: {e:?}", tmp.display()))?;
    recorder
        .record(optim.to_record(), tmp.join("optimizer"))
        .map_err(|e| anyhow!("{}: cannot save the optimizer: {e:?}", tmp.display()))?;
    // state.json last: its presence marks a complete resume state.
    fs::write(tmp.join("state.json"), serde_json::to_string(state)? + "\n")?;
    let done = out.join("resume");
    if done.exists() {
        fs::remove_dir_all(&done)?;
    }
    fs::rename(&tmp, &done)?;

    let mut file = fs::File::create(out.join("log.jsonl"))?;
    for line in log {
        writeln!(file, "{}", serde_json::to_string(line)?)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::spec::{ArchSpec, default_preset};
    use burn::backend::{Autodiff, Flex};

    type B = Autodiff<Flex>;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("xtask-train-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    fn tiny_spec() -> TrainSpec {
        let mut spec = default_preset();
        spec.arch = ArchSpec {
            name: "test".into(),
            model_type: "llama".into(),
            d_model: 16,
            n_layers: 1,
            n_heads: 2,
            n_kv_heads: 2,
            d_mlp: 32,
            activation: "silu".into(),
            tied_embeddings: false,
        };
        spec.seq_len = 8;
        spec.batch_size = 2;
        spec.n_steps = 6;
        spec.warmup_steps = 2;
        spec.checkpoint_every = 3;
        spec
    }

    fn identity(spec: &TrainSpec) -> RunIdentity {
        RunIdentity {
            spec: spec.clone(),
            corpus_tokens: 100,
            corpus_hash: "0".into(),
            tokenizer_hash: "0".into(),
        }
    }

    /// A fake tokenizer file: the run only copies it into each checkpoint.
    fn tokenizer_file(dir: &Path) -> PathBuf {
        let path = dir.join("tokenizer-for-test.json");
        fs::write(&path, "{}").unwrap();
        path
    }

    fn run(out: &Path, spec: &TrainSpec, stop_at: Option<usize>) -> TrainReport {
        let cfg = spec.model_config(32, 0).unwrap();
        let blocks = Blocks::new(
            (0..400).map(|i| (i * 7 % 32) as u32).collect(),
            spec.seq_len,
            spec.seed,
        )
        .unwrap();
        let resume = prepare_run_dir(out, &identity(spec), false).unwrap();
        let tok = tokenizer_file(&std::env::temp_dir());
        train::<B>(
            spec,
            &cfg,
            &blocks,
            out,
            &tok,
            resume,
            stop_at,
            &Default::default(),
        )
        .unwrap()
    }

    #[test]
    fn an_interrupted_run_resumes_to_the_same_weights() {
        let spec = tiny_spec();
        let whole = scratch("whole");
        let report = run(&whole, &spec, None);
        assert_eq!(report.n_steps, 6);
        assert_eq!(report.checkpoints, vec![0, 1, 2, 3, 6]);
        for step in &report.checkpoints {
            assert!(
                whole
                    .join(format!("step{step}/model.safetensors"))
                    .is_file()
            );
        }

        let split = scratch("split");
        let first = run(&split, &spec, Some(3));
        assert_eq!(first.n_steps, 3);
        assert!(!split.join("step6").exists());
        let second = run(&split, &spec, None);
        assert_eq!(second.resumed_from, Some(3));
        assert_eq!(second.n_tokens_seen, 6 * spec.tokens_per_step());

        let a = fs::read(whole.join("step6/model.safetensors")).unwrap();
        let b = fs::read(split.join("step6/model.safetensors")).unwrap();
        assert!(
            a == b,
            "resumed weights differ from the uninterrupted run's"
        );
        let log = fs::read_to_string(split.join("log.jsonl")).unwrap();
        assert_eq!(log.lines().count(), 6);
        fs::remove_dir_all(&whole).unwrap();
        fs::remove_dir_all(&split).unwrap();
    }

    #[test]
    fn a_folder_holding_another_run_is_refused_unless_overwrite() {
        let out = scratch("guard");
        let spec = tiny_spec();
        assert!(!prepare_run_dir(&out, &identity(&spec), false).unwrap());
        fs::create_dir_all(out.join("step0")).unwrap();
        fs::write(out.join("notes.txt"), "kept").unwrap();
        let mut other = spec.clone();
        other.lr = 1e-4;
        let err = prepare_run_dir(&out, &identity(&other), false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("different training run"), "{err}");
        assert!(err.contains("spec.lr"), "{err}");
        assert!(err.contains("--overwrite"), "{err}");
        prepare_run_dir(&out, &identity(&other), true).unwrap();
        assert!(!out.join("step0").exists());
        assert!(
            out.join("notes.txt").is_file(),
            "files a run did not write are kept"
        );
        fs::remove_dir_all(&out).unwrap();
    }

    #[test]
    fn a_non_empty_folder_without_a_run_is_refused() {
        let out = scratch("foreign");
        fs::create_dir_all(&out).unwrap();
        fs::write(out.join("data.bin"), "x").unwrap();
        let err = prepare_run_dir(&out, &identity(&tiny_spec()), false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("holds no training run"), "{err}");
        fs::remove_dir_all(&out).unwrap();
    }
}

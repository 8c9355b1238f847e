//! `cargo xtask reproduce all` (`book/src/reproduce.md`): every reproduction in turn, then
//! one table that sets the headline numbers of the original papers, as the method notes in
//! `methods/` beside `DESIGN.md` quote them, beside what strata measured at tiny scale, and
//! says whether the two can be compared.
//!
//! Each run writes into `OUT/<experiment>` exactly what `cargo xtask reproduce <experiment>`
//! writes. `OUT/summary.md` and `OUT/summary.csv` (with `summary.parquet`) are rewritten after
//! every run, so a stopped command keeps the rows of the runs that finished. A reproduction
//! that fails (an error or a panic) leaves its error in its rows, the others still run, and
//! the command exits non-zero at the end.
//!
//! [`summary_rows`] is a pure function from the runs' typed results to the rows; the values
//! strata measured are read off those results, never written here by hand.

use std::fmt::Write as _;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

use anyhow::{Context, Result, bail};
use serde::Serialize;
use strata_massive::{ParamPrediction, Statistic};

use super::{Args, kappatune, massive, sparsity, steer, void};

/// How one reproduction ended.
#[derive(Debug, Clone)]
pub enum Outcome<T> {
    /// It ran and returned these results.
    Measured(T),
    /// It failed with this error (or panicked with this message).
    Failed(String),
    /// It has not run (yet).
    NotRun,
}

/// What the kappatune run returned, with the model it fine-tuned.
#[derive(Debug, Clone)]
pub struct KappatuneMeasured {
    /// The model fine-tuned (the settings' `model`).
    pub model: String,
    /// One row per (method, seed), as `kappatune::run` returned them.
    pub rows: Vec<kappatune::RunRow>,
}

/// What the summary reads of the massive run: its `series.csv`, `fits.csv` and
/// `predictor.csv`.
#[derive(Debug, Clone, PartialEq)]
pub struct MassiveMeasured {
    /// The top-1/median of every layer of every suite model at its last checkpoint.
    pub final_ratios: Vec<FinalRatio>,
    /// R^2 of the fitted top-1/median series of every (model, layer) that was fitted.
    pub ratio_r2: Vec<f64>,
    /// The architecture predictor's regressions (empty when it had too few layers).
    pub predictions: Vec<ParamPrediction>,
}

/// One layer's top-1/median at its model's last checkpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct FinalRatio {
    /// The suite model (its series folder's name).
    pub model: String,
    /// The block.
    pub layer: usize,
    /// The last checkpoint's training step.
    pub step: u64,
    /// Mean top-1 |h| over mean median |h| (the dynamics paper's Eq. 8).
    pub ratio: f64,
}

/// Every reproduction's outcome, in the order they run.
#[derive(Debug, Clone)]
pub struct Measured {
    /// KappaTune forgetting.
    pub kappatune: Outcome<KappatuneMeasured>,
    /// Massive activations over training.
    pub massive: Outcome<MassiveMeasured>,
    /// PPL-p% activation sparsity (the Sparsing Law).
    pub sparsity: Outcome<sparsity::Results>,
    /// Voids.
    pub void: Outcome<void::Results>,
    /// Steering vectors.
    pub steer: Outcome<steer::Results>,
}

/// Whether a paper's number and strata's can be set side by side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Comparable {
    /// The same quantity, measured the same way, at a very different scale.
    Partly,
    /// A different quantity, or one that cannot carry over to tiny models: an analogue only.
    No,
}

/// A headline number of a paper, as a method note quotes it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Headline {
    /// The `cargo xtask reproduce` experiment that measures it.
    pub experiment: &'static str,
    /// The quantity, with the paper's model and setting.
    pub quantity: &'static str,
    /// The paper's value, as the note gives it.
    pub paper: &'static str,
    /// The note and section it is quoted from.
    pub spec: &'static str,
    /// The unit of strata's value: `%`, `points`, `x`, `PPL`, `ratio`, `R^2` or `NIF`.
    pub unit: &'static str,
    /// Whether strata's value is comparable.
    pub comparable: Comparable,
    /// Why (or why not).
    pub why: &'static str,
}

/// One row of `summary.md` and `summary.csv`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SummaryRow {
    /// The `cargo xtask reproduce` experiment.
    pub experiment: String,
    /// The paper's quantity, with its model and setting.
    pub quantity: String,
    /// The paper's value, quoted from the method note.
    pub paper: String,
    /// The method note and section quoted.
    pub spec: String,
    /// The unit of `measured`.
    pub unit: String,
    /// strata's value at tiny scale; `None` when the run failed, has not run or could not
    /// measure it.
    pub measured: Option<f64>,
    /// What strata measured it on, or why there is no value.
    pub measured_on: String,
    /// Whether the two values are comparable.
    pub comparable: Comparable,
    /// Why (or why not).
    pub why: String,
    /// The reproduction's error, when it failed.
    pub error: Option<String>,
}

/// The experiments in the order `reproduce all` runs them (the folders under `OUT`).
pub const EXPERIMENTS: [&str; 5] = ["kappatune", "massive", "sparsity", "void", "steer"];

const MASSIVE_SPEC: &str = "methods/massive.md, Numbers to reproduce";
const SPARSITY_SPEC: &str = "methods/sparsity.md, Numbers to reproduce";
const VOID_SPEC: &str = "methods/void.md, Numbers to reproduce";

/// The v2 claim of the KappaTune paper (the author's post [RED], on the E1 setup).
pub const KAPPA_LORA_OVER_KAPPATUNE: Headline = Headline {
    experiment: "kappatune",
    quantity: "forgetting of LoRA over forgetting of full-weight KappaTune \
               (v2 claim; E1: OLMoE-1B-7B, tweet_eval irony, WikiText-2 PPL after - before)",
    paper: "about 6x less forgetting than LoRA",
    spec: "methods/kappa.md, Numbers to reproduce, E1",
    unit: "x",
    comparable: Comparable::No,
    why: "the claim comes without a table; a 7B MoE with thousands of expert tensors vs a tiny \
          dense model, where the note expects the gain to shrink; sarcasm vs arithmetic, \
          WikiText vs KJV",
};

/// E3's KappaTune-LoRA row: WikiText-2 perplexity before and after.
pub const KAPPA_E3_KAPPATUNE: Headline = Headline {
    experiment: "kappatune",
    quantity: "WikiText-2 PPL after - before, KappaTune-LoRA \
               (E3: Mixtral-8x7B-Instruct 4-bit, gsm8k, 40 epochs)",
    paper: "13.9841 -> 13.7780 (-0.2061)",
    spec: "methods/kappa.md, Numbers to reproduce, E3",
    unit: "PPL",
    comparable: Comparable::Partly,
    why: "the same measure of forgetting (PPL after - before on a text the task lacks); LoRA on \
          the lowest-kappa modules of a 47B MoE vs training the lowest-kappa tensors of a \
          small dense model at a LoRA-matched budget, on KJV",
};

/// E3's LoRA_Global row: WikiText-2 perplexity before and after.
pub const KAPPA_E3_LORA: Headline = Headline {
    experiment: "kappatune",
    quantity: "WikiText-2 PPL after - before, LoRA_Global \
               (E3: Mixtral-8x7B-Instruct 4-bit, gsm8k, 40 epochs)",
    paper: "13.9841 -> 26.6836 (+12.6995)",
    spec: "methods/kappa.md, Numbers to reproduce, E3",
    unit: "PPL",
    comparable: Comparable::Partly,
    why: "the same measure of forgetting; LoRA r = 256 on every projection of a 47B MoE vs LoRA \
          on every candidate tensor of a small dense model, on KJV",
};

/// HD Fig. 3: the final-checkpoint top-1/median of the smallest Pythia.
pub const MASSIVE_FINAL_RATIO: Headline = Headline {
    experiment: "massive",
    quantity: "top-1/median |h| at the final checkpoint, largest over layers, Pythia-14M \
               (HD Fig. 3)",
    paper: "about 83 (1.4B about 2350, 12B about 3200)",
    spec: MASSIVE_SPEC,
    unit: "ratio",
    comparable: Comparable::Partly,
    why: "the same statistic (Eq. 8: mean top-1 over mean median); Pythia-14M after 143k steps \
          on the Pile vs suite models of d_model 64-128 after a few hundred steps on KJV",
};

/// HD Table 1: the mean best R^2 of the five-parameter fit.
pub const MASSIVE_FIT_R2: Headline = Headline {
    experiment: "massive",
    quantity: "mean R^2 of the five-parameter fit of each layer's top-1/median series \
               (HD Table 1)",
    paper: "0.984 over 188 layers (Pythia-14M: 0.9307)",
    spec: MASSIVE_SPEC,
    unit: "R^2",
    comparable: Comparable::Partly,
    why: "the same curve (Eq. 9, best of Eq. 9 and 14) and R^2; a dozen checkpoints per tiny \
          series (fewer in the smoke run) vs at least 27 per Pythia series",
};

/// HD Table 3: the held-out R^2 of K predicted from the architecture.
pub const MASSIVE_PREDICT_K: Headline = Headline {
    experiment: "massive",
    quantity: "held-out R^2 of the fitted K predicted from the architecture \
               (HD Table 3, XGB, Yeo-Johnson)",
    paper: "0.847 (lambda: 0.664)",
    spec: MASSIVE_SPEC,
    unit: "R^2",
    comparable: Comparable::No,
    why: "188 layers of 9 Pythia sizes and gradient boosting vs a few dozen tiny layers and \
          ridge regression: a held-out R^2 on a handful of rows",
};

/// SL-data: the last point of the 0.1B ReLU model.
pub const SPARSITY_RELU: Headline = Headline {
    experiment: "sparsity",
    quantity: "activation ratio at CETT-PPL-1%, 0.1B ReLU model, last checkpoint \
               (41.6B tokens, SL-data)",
    paper: "7.09%",
    spec: SPARSITY_SPEC,
    unit: "%",
    comparable: Comparable::Partly,
    why: "the same definition (per-layer CETT thresholds at +1% PPL, mean over layers); a gated \
          0.1B MiniCPM-style model after 41.6B tokens vs tiny models after a few million \
          tokens of KJV",
};

/// SL-data: the last point of the 0.1B SiLU model.
pub const SPARSITY_SILU: Headline = Headline {
    experiment: "sparsity",
    quantity: "activation ratio at CETT-PPL-1%, 0.1B SiLU model, last checkpoint \
               (41.6B tokens, SL-data)",
    paper: "39.20%",
    spec: SPARSITY_SPEC,
    unit: "%",
    comparable: Comparable::Partly,
    why: "the same definition; a gated 0.1B MiniCPM-style model after 41.6B tokens vs tiny \
          gated SiLU models after a few million tokens of KJV",
};

/// SL §4: CETT-PPL-1% against counting exact zeros, on the 0.8B ReLU model.
pub const SPARSITY_CETT_VS_ZEROS: Headline = Headline {
    experiment: "sparsity",
    quantity: "cut in the activation ratio by CETT-PPL-1% relative to straightforward ReLU \
               (exact zeros), 0.8B ReLU model",
    paper: "61% relative",
    spec: SPARSITY_SPEC,
    unit: "%",
    comparable: Comparable::Partly,
    why: "the same two measures on one ReLU model; 0.8B after 272B tokens vs a tiny model",
};

/// SL Table 2: the limit of the ReLU law of the 0.1B model.
pub const SPARSITY_RELU_LIMIT: Headline = Headline {
    experiment: "sparsity",
    quantity: "limit A0 of the ReLU activation ratio over training, 0.1B model \
               (SL Table 2, v4 fit)",
    paper: "6.14%",
    spec: SPARSITY_SPEC,
    unit: "%",
    comparable: Comparable::No,
    why: "the law's limit extrapolated from a few hundred tiny training steps vs a fit over \
          tens of billions of tokens",
};

/// The void paper's MMLU result on Qwen2.5-7B-Instruct.
pub const VOID_GAIN: Headline = Headline {
    experiment: "void",
    quantity: "accuracy with voids skipped minus the full model's, Qwen2.5-7B-Instruct, \
               MMLU zero-shot",
    paper: "69.24 -> 71.29 (+2.05 points)",
    spec: VOID_SPEC,
    unit: "points",
    comparable: Comparable::Partly,
    why: "the same rule and skipping (variant A, the deepest active layer decodes); the \
          paper's alpha is not given; a 7B chat model's sampled answers vs a tiny model's \
          log-likelihood choice on strata's tasks",
};

/// The layer usage behind the MMLU result.
pub const VOID_USAGE: Headline = Headline {
    experiment: "void",
    quantity: "layer usage at that setting, Qwen2.5-7B-Instruct, MMLU",
    paper: "about 30% of layers",
    spec: VOID_SPEC,
    unit: "%",
    comparable: Comparable::Partly,
    why: "the same share of active (token, layer) pairs; 28 layers of a 7B model vs a few \
          blocks of a tiny one, at strata's default alpha 0.8",
};

/// The prompt-phase usage of the GPQA result on Mistral-7B-Instruct-v0.3.
pub const VOID_USAGE_PROMPT: Headline = Headline {
    experiment: "void",
    quantity: "layer usage in prompt processing (PP), Mistral-7B-Instruct-v0.3, GPQA Diamond",
    paper: "about 70% of layers in both PP and RG",
    spec: VOID_SPEC,
    unit: "%",
    comparable: Comparable::Partly,
    why: "the same rule and usage; 198 questions to a 32-layer chat model at an alpha not \
          given vs one prompt to a tiny model at alpha 0.8",
};

/// The generation-phase usage of the GPQA result on Mistral-7B-Instruct-v0.3.
pub const VOID_USAGE_GENERATION: Headline = Headline {
    experiment: "void",
    quantity: "layer usage in response generation (RG), Mistral-7B-Instruct-v0.3, GPQA Diamond",
    paper: "about 70% of layers in both PP and RG",
    spec: VOID_SPEC,
    unit: "%",
    comparable: Comparable::Partly,
    why: "the same rule and usage; sampled answers of a 32-layer chat model vs one greedy \
          generation of a tiny model at alpha 0.8",
};

/// The post-training paper's truthfulness intervention, base direction on the base model.
pub const STEER_NIF: Headline = Headline {
    experiment: "steer",
    quantity: "normalised intervention effect of a direction on its own model, average of \
               true->false and false->true, Llama-3.1-8B base, truthfulness [PT]",
    paper: "0.829 (0.952 / 0.707)",
    spec: "methods/steer.md, Numbers to reproduce, 2",
    unit: "NIF",
    comparable: Comparable::No,
    why: "an analogue: NIF of P(' TRUE') - P(' FALSE') with 5 layers of an 8B model steered vs \
          NIF of 2 sigmoid(mean log-odds) - 1 between paired texts, one layer of a tiny model \
          at the grid's strongest alphas",
};

/// candle-mi's steering-convergence example on Llama-3.2-1B.
pub const STEER_CRITICAL_STRENGTH: Headline = Headline {
    experiment: "steer",
    quantity: "critical steering strength in units of the contrastive distance, Llama-3.2-1B \
               (candle-mi steering_convergence)",
    paper: "about 1.2x the contrastive distance",
    spec: "methods/steer.md, Numbers to reproduce, 5",
    unit: "x",
    comparable: Comparable::Partly,
    why: "both add a multiple of the raw mean difference; one France - Germany pair and the \
          flip of a next token vs many pairs and the sign change of the mean log-odds of whole \
          texts, on a coarse alpha grid",
};

/// The void rule's default alpha (`methods/void.md`, Defaults): the setting the summary reads.
pub const VOID_ALPHA: f64 = 0.8;

/// The least room (`|end - delta at alpha 0|`, out of 2) a side of the NIF analogue needs.
pub const NIF_MIN_ROOM: f64 = 0.01;

/// The CETT-PPL-p% target of the Sparsing Law's numbers, percent.
pub const SPARSITY_P: f64 = 1.0;

/// Runs every reproduction into `OUT/<experiment>`, writes `OUT/summary.md` and
/// `OUT/summary.csv` after each, prints the summary; fails at the end when any run failed.
pub fn run(args: &Args) -> Result<()> {
    if args.replot || args.model.is_some() {
        bail!(
            "reproduce all: --replot and --model apply to one experiment; \
             `all` runs each at its preset (with or without --smoke)"
        );
    }
    let root = crate::workspace_root();
    let name = if args.smoke { "all-smoke" } else { "all" };
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| root.join("out/reproduce").join(name));
    std::fs::create_dir_all(&out).with_context(|| format!("{}: cannot create", out.display()))?;
    let smoke = args.smoke;
    let mut measured = Measured {
        kappatune: Outcome::NotRun,
        massive: Outcome::NotRun,
        sparsity: Outcome::NotRun,
        void: Outcome::NotRun,
        steer: Outcome::NotRun,
    };
    let dir = |experiment: &str| out.join(experiment);

    measured.kappatune = attempt("kappatune", &dir("kappatune"), || {
        let cfg = if smoke {
            kappatune::Settings::smoke()
        } else {
            kappatune::Settings::full()
        };
        let rows = kappatune::run(&cfg, &root, &dir("kappatune"))?;
        Ok(KappatuneMeasured {
            model: cfg.model.clone(),
            rows,
        })
    });
    write_summary(&out, smoke, &measured)?;

    measured.massive = attempt("massive", &dir("massive"), || {
        let out = dir("massive");
        let cfg = if smoke {
            massive::Settings::smoke(&out)
        } else {
            massive::Settings::full(&root)
        };
        massive::run(&cfg, &root, &out)?;
        MassiveMeasured::read(&out)
    });
    write_summary(&out, smoke, &measured)?;

    measured.sparsity = attempt("sparsity", &dir("sparsity"), || {
        let cfg = if smoke {
            sparsity::Settings::smoke()
        } else {
            sparsity::Settings::full()
        };
        sparsity::run(&cfg, &root, &dir("sparsity"))
    });
    write_summary(&out, smoke, &measured)?;

    measured.void = attempt("void", &dir("void"), || {
        let cfg = if smoke {
            void::Settings::smoke()
        } else {
            void::Settings::full()
        };
        void::run(&cfg, &root, &dir("void"))
    });
    write_summary(&out, smoke, &measured)?;

    measured.steer = attempt("steer", &dir("steer"), || {
        let cfg = if smoke {
            steer::Settings::smoke()
        } else {
            steer::Settings::full()
        };
        steer::run(&cfg, &root, &dir("steer"))
    });
    let rows = write_summary(&out, smoke, &measured)?;

    println!("{}", markdown(&rows, smoke));
    eprintln!("wrote {}", out.display());
    let failed = measured.failed();
    if !failed.is_empty() {
        bail!(
            "reproduce all: {} of {} reproductions failed ({}); their errors are in {}",
            failed.len(),
            EXPERIMENTS.len(),
            failed.join(", "),
            out.join("summary.md").display()
        );
    }
    Ok(())
}

impl Measured {
    /// The experiments that failed, in run order.
    pub fn failed(&self) -> Vec<&'static str> {
        let failed = [
            matches!(self.kappatune, Outcome::Failed(_)),
            matches!(self.massive, Outcome::Failed(_)),
            matches!(self.sparsity, Outcome::Failed(_)),
            matches!(self.void, Outcome::Failed(_)),
            matches!(self.steer, Outcome::Failed(_)),
        ];
        EXPERIMENTS
            .iter()
            .zip(failed)
            .filter(|(_, f)| *f)
            .map(|(name, _)| *name)
            .collect()
    }
}

impl MassiveMeasured {
    /// Reads the tables the massive run wrote into `out`: `series.csv` (the last
    /// checkpoint's top-1/median of every layer), `fits.csv` (the R^2 of the ratio fits) and
    /// `predictor.csv` (absent when the predictor had too few layers). The tables, not
    /// `results.json`: JSON holds a non-finite value (an R^2 of `-inf`) as `null`.
    pub fn read(out: &Path) -> Result<Self> {
        let read = |name: &str| -> Result<Option<String>> {
            let path = out.join(name);
            match std::fs::read_to_string(&path) {
                Ok(text) => Ok(Some(text)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e).with_context(|| format!("{}: cannot read", path.display())),
            }
        };
        let table = |name: &str, text: &str| {
            CsvTable::parse(text).with_context(|| out.join(name).display().to_string())
        };
        let required = |name: &str| -> Result<CsvTable> {
            let text =
                read(name)?.with_context(|| format!("{}: missing", out.join(name).display()))?;
            table(name, &text)
        };
        let predictions = match read("predictor.csv")? {
            Some(text) => predictions_of(&table("predictor.csv", &text)?),
            None => Ok(Vec::new()),
        };
        Ok(Self {
            final_ratios: final_ratios_of(&required("series.csv")?)
                .with_context(|| out.join("series.csv").display().to_string())?,
            ratio_r2: ratio_r2_of(&required("fits.csv")?)
                .with_context(|| out.join("fits.csv").display().to_string())?,
            predictions: predictions
                .with_context(|| out.join("predictor.csv").display().to_string())?,
        })
    }
}

/// A CSV table as `strata_report::write_table` writes the massive run's: a header and rows
/// of unquoted cells.
#[derive(Debug, Clone, PartialEq)]
pub struct CsvTable {
    /// The column names.
    pub header: Vec<String>,
    /// The rows, one cell per column.
    pub rows: Vec<Vec<String>>,
}

impl CsvTable {
    /// Parses `text`; refuses quoted cells and rows whose length is not the header's.
    pub fn parse(text: &str) -> Result<Self> {
        let mut lines = text.lines().filter(|l| !l.is_empty());
        let split = |line: &str| -> Result<Vec<String>> {
            if line.contains('"') {
                bail!("a quoted cell in `{line}`: not a table this reader knows");
            }
            Ok(line.split(',').map(String::from).collect())
        };
        let header = lines.next().map(split).transpose()?.unwrap_or_default();
        let rows = lines
            .map(|line| {
                let cells = split(line)?;
                if cells.len() != header.len() {
                    bail!(
                        "`{line}` has {} cells, the header {}",
                        cells.len(),
                        header.len()
                    );
                }
                Ok(cells)
            })
            .collect::<Result<_>>()?;
        Ok(Self { header, rows })
    }

    /// The index of column `name`.
    pub fn column(&self, name: &str) -> Result<usize> {
        self.header
            .iter()
            .position(|c| c == name)
            .with_context(|| format!("no `{name}` column in `{}`", self.header.join(",")))
    }

    /// Column `name` of every row parsed as `T`.
    pub fn parsed<T: std::str::FromStr>(&self, name: &str) -> Result<Vec<T>> {
        let idx = self.column(name)?;
        self.rows
            .iter()
            .map(|row| {
                row[idx]
                    .parse::<T>()
                    .ok()
                    .with_context(|| format!("`{name}` of `{}` is not a number", row.join(",")))
            })
            .collect()
    }
}

/// The last checkpoint's top-1/median of every layer of every model of `series.csv`, in
/// the table's model order.
pub fn final_ratios_of(series: &CsvTable) -> Result<Vec<FinalRatio>> {
    let model = series.column("model")?;
    let steps: Vec<u64> = series.parsed("step")?;
    let layers: Vec<usize> = series.parsed("layer")?;
    let ratios: Vec<f64> = series.parsed(Statistic::Ratio.name())?;
    let mut models: Vec<&str> = Vec::new();
    for row in &series.rows {
        if !models.contains(&row[model].as_str()) {
            models.push(&row[model]);
        }
    }
    let mut out = Vec::new();
    for name in models {
        let of_model = || (0..series.rows.len()).filter(|&i| series.rows[i][model] == name);
        let last = of_model().map(|i| steps[i]).max().unwrap_or(0);
        let mut at_last: Vec<usize> = of_model().filter(|&i| steps[i] == last).collect();
        at_last.sort_by_key(|&i| layers[i]);
        out.extend(at_last.into_iter().map(|i| FinalRatio {
            model: name.to_string(),
            layer: layers[i],
            step: last,
            ratio: ratios[i],
        }));
    }
    Ok(out)
}

/// The R^2 of every `ratio` row of `fits.csv`.
pub fn ratio_r2_of(fits: &CsvTable) -> Result<Vec<f64>> {
    let statistic = fits.column("statistic")?;
    let r2: Vec<f64> = fits.parsed("r2")?;
    Ok(fits
        .rows
        .iter()
        .zip(r2)
        .filter(|(row, _)| row[statistic] == Statistic::Ratio.name())
        .map(|(_, r2)| r2)
        .collect())
}

/// The regressions of `predictor.csv`.
pub fn predictions_of(predictor: &CsvTable) -> Result<Vec<ParamPrediction>> {
    let (param, transform) = (predictor.column("param")?, predictor.column("transform")?);
    let alpha: Vec<f64> = predictor.parsed("alpha")?;
    let cv_r2: Vec<f64> = predictor.parsed("cv_r2")?;
    let test_r2: Vec<f64> = predictor.parsed("test_r2")?;
    let n_train: Vec<usize> = predictor.parsed("n_train")?;
    let n_test: Vec<usize> = predictor.parsed("n_test")?;
    let n_dropped: Vec<usize> = predictor.parsed("n_dropped")?;
    Ok(predictor
        .rows
        .iter()
        .enumerate()
        .map(|(i, row)| ParamPrediction {
            param: row[param].clone(),
            transform: row[transform].clone(),
            alpha: alpha[i],
            cv_r2: cv_r2[i],
            test_r2: test_r2[i],
            n_train: n_train[i],
            n_test: n_test[i],
            n_dropped: n_dropped[i],
        })
        .collect())
}

/// The summary: one row per headline number, in run order; an experiment that failed or has
/// not run keeps its rows, with the paper's values, no measured value and the error.
pub fn summary_rows(measured: &Measured) -> Vec<SummaryRow> {
    let mut rows = Vec::new();
    rows.extend(rows_of(&measured.kappatune, kappatune_values));
    rows.extend(rows_of(&measured.massive, massive_values));
    rows.extend(rows_of(&measured.sparsity, sparsity_values));
    rows.extend(rows_of(&measured.void, void_values));
    rows.extend(rows_of(&measured.steer, steer_values));
    rows
}

/// The summary as markdown: a heading, the table and, when some runs failed, their list.
pub fn markdown(rows: &[SummaryRow], smoke: bool) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# Reproductions at tiny scale against the papers\n");
    let _ = writeln!(
        s,
        "Preset: {}. The paper's values are quoted from the method notes named in the third \
         column; strata's come from each run's results in `<experiment>/`.\n",
        if smoke {
            "smoke (a few steps per run: checks the pipeline, not the numbers)"
        } else {
            "full"
        }
    );
    let _ = writeln!(
        s,
        "| experiment | the paper's quantity | paper (quoted from) | strata, tiny scale | \
         measured on | comparable? |"
    );
    let _ = writeln!(s, "|---|---|---|---:|---|---|");
    for r in rows {
        let value = match (&r.error, r.measured) {
            (Some(_), _) => "failed".to_string(),
            (None, Some(v)) => format_value(v, &r.unit),
            (None, None) => "-".to_string(),
        };
        let on = match &r.error {
            Some(e) => format!("error: {e}"),
            None => r.measured_on.clone(),
        };
        let comparable = match r.comparable {
            Comparable::Partly => "partly",
            Comparable::No => "no",
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} (`{}`) | {} | {} | {comparable}: {} |",
            cell(&r.experiment),
            cell(&r.quantity),
            cell(&r.paper),
            cell(&r.spec),
            value,
            cell(&on),
            cell(&r.why)
        );
    }
    let failed: Vec<&str> = rows
        .iter()
        .filter(|r| r.error.is_some())
        .map(|r| r.experiment.as_str())
        .fold(Vec::new(), |mut v, e| {
            if v.last() != Some(&e) {
                v.push(e);
            }
            v
        });
    if !failed.is_empty() {
        let _ = writeln!(s, "\nFailed: {}.", failed.join(", "));
    }
    s
}

/// Runs `f`, turning an error or a panic into [`Outcome::Failed`].
fn attempt<T>(name: &str, dir: &Path, f: impl FnOnce() -> Result<T>) -> Outcome<T> {
    eprintln!("reproduce all: {name} -> {}", dir.display());
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(value)) => Outcome::Measured(value),
        Ok(Err(e)) => {
            eprintln!("reproduce all: {name} failed: {e:#}");
            Outcome::Failed(format!("{e:#}"))
        }
        Err(panic) => {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "a panic without a message".into());
            eprintln!("reproduce all: {name} panicked: {message}");
            Outcome::Failed(format!("panicked: {message}"))
        }
    }
}

/// Writes `summary.md` and `summary.csv` (+ `.parquet`) of `measured` into `out`; returns
/// the rows.
fn write_summary(out: &Path, smoke: bool, measured: &Measured) -> Result<Vec<SummaryRow>> {
    let rows = summary_rows(measured);
    strata_core::io::write_bytes_atomic(
        &out.join("summary.md"),
        markdown(&rows, smoke).as_bytes(),
    )?;
    strata_report::write_table(&out.join("summary.csv"), &rows)?;
    Ok(rows)
}

/// A measured value and what it was measured on.
type Value = (Option<f64>, String);

/// The rows of one experiment from its headlines and its outcome.
fn rows_of<T>(
    outcome: &Outcome<T>,
    values: fn(Option<&T>) -> Vec<(Headline, Value)>,
) -> Vec<SummaryRow> {
    let (measured, error) = match outcome {
        Outcome::Measured(t) => (Some(t), None),
        Outcome::Failed(e) => (None, Some(e.clone())),
        Outcome::NotRun => (None, None),
    };
    values(measured)
        .into_iter()
        .map(|(h, (value, on))| SummaryRow {
            experiment: h.experiment.into(),
            quantity: h.quantity.into(),
            paper: h.paper.into(),
            spec: h.spec.into(),
            unit: h.unit.into(),
            measured: value,
            measured_on: match (measured, &error) {
                (Some(_), _) => on,
                (None, Some(_)) => "the run failed".into(),
                (None, None) => "not run".into(),
            },
            comparable: h.comparable,
            why: h.why.into(),
            error: error.clone(),
        })
        .collect()
}

/// Pairs each headline with the value `f` reads off the results, or none without results.
fn each(
    headlines: &[Headline],
    results: Option<&dyn Fn(&Headline) -> Value>,
) -> Vec<(Headline, Value)> {
    headlines
        .iter()
        .map(|h| (*h, results.map_or((None, String::new()), |f| f(h))))
        .collect()
}

fn kappatune_values(m: Option<&KappatuneMeasured>) -> Vec<(Headline, Value)> {
    let headlines = [KAPPA_LORA_OVER_KAPPATUNE, KAPPA_E3_KAPPATUNE, KAPPA_E3_LORA];
    let Some(m) = m else {
        return each(&headlines, None);
    };
    let means = kappatune::method_means(&m.rows);
    let mean_of = |method| means.iter().find(|x| x.method == method);
    let lowest = mean_of(kappatune::Method::LowestKappa);
    let lora = mean_of(kappatune::Method::Lora);
    let seeds = |n: usize| if n == 1 { "seed" } else { "seeds" };
    let forgetting = |mean: Option<&kappatune::MethodMean>, label: &str| match mean {
        Some(x) => (
            Some(x.forgetting),
            format!(
                "{}: {label}, KJV valid PPL after - before, mean of {} {}; held-out text {:+.3}",
                m.model,
                x.n_runs,
                seeds(x.n_runs),
                x.heldout_forgetting
            ),
        ),
        None => (None, format!("no {label} run in the results")),
    };
    let f = |h: &Headline| -> Value {
        if *h == KAPPA_LORA_OVER_KAPPATUNE {
            match (lowest, lora) {
                (Some(k), Some(l)) if k.forgetting > 0.0 => (
                    Some(l.forgetting / k.forgetting),
                    format!(
                        "{}: KJV valid PPL after - before, LoRA {:+.3} over lowest-kappa {:+.3}",
                        m.model, l.forgetting, k.forgetting
                    ),
                ),
                (Some(k), Some(l)) => (
                    None,
                    format!(
                        "{}: lowest-kappa did not forget ({:+.3}; LoRA {:+.3}): no ratio",
                        m.model, k.forgetting, l.forgetting
                    ),
                ),
                _ => (None, "no lowest-kappa or no LoRA run in the results".into()),
            }
        } else if *h == KAPPA_E3_KAPPATUNE {
            forgetting(lowest, "lowest-kappa tensors (KappaTune, full weight)")
        } else {
            forgetting(lora, "LoRA")
        }
    };
    each(&headlines, Some(&f))
}

fn massive_values(m: Option<&MassiveMeasured>) -> Vec<(Headline, Value)> {
    let headlines = [MASSIVE_FINAL_RATIO, MASSIVE_FIT_R2, MASSIVE_PREDICT_K];
    let Some(m) = m else {
        return each(&headlines, None);
    };
    let f = |h: &Headline| -> Value {
        if *h == MASSIVE_FINAL_RATIO {
            let Some(top) = m
                .final_ratios
                .iter()
                .max_by(|a, b| a.ratio.total_cmp(&b.ratio))
            else {
                return (None, "no suite model measured".into());
            };
            let mut models: Vec<&str> = m.final_ratios.iter().map(|r| r.model.as_str()).collect();
            models.dedup();
            let per_model: Vec<String> = models
                .iter()
                .map(|name| {
                    let best = m
                        .final_ratios
                        .iter()
                        .filter(|r| r.model == *name)
                        .map(|r| r.ratio)
                        .fold(f64::NEG_INFINITY, f64::max);
                    format!("{name} {best:.1}")
                })
                .collect();
            (
                Some(top.ratio),
                format!(
                    "{} layer {} at step {}; largest per model: {}",
                    top.model,
                    top.layer,
                    top.step,
                    per_model.join(", ")
                ),
            )
        } else if *h == MASSIVE_FIT_R2 {
            if m.ratio_r2.is_empty() {
                return (None, "no layer's series was fitted".into());
            }
            let n = m.ratio_r2.len();
            let min = m.ratio_r2.iter().copied().fold(f64::INFINITY, f64::min);
            let mut models: Vec<&str> = m.final_ratios.iter().map(|r| r.model.as_str()).collect();
            models.dedup();
            (
                Some(m.ratio_r2.iter().sum::<f64>() / n as f64),
                format!(
                    "{n} fitted layers of {} suite models, lowest {min:.3}",
                    models.len()
                ),
            )
        } else {
            match m.predictions.iter().find(|p| p.param == "K") {
                Some(p) => (
                    Some(p.test_r2),
                    format!(
                        "ridge on {} of K, {} training / {} held-out layers (CV R^2 {:.3})",
                        p.transform, p.n_train, p.n_test, p.cv_r2
                    ),
                ),
                None => (
                    None,
                    "no prediction: too few fitted layers for the split".into(),
                ),
            }
        }
    };
    each(&headlines, Some(&f))
}

fn sparsity_values(r: Option<&sparsity::Results>) -> Vec<(Headline, Value)> {
    let headlines = [
        SPARSITY_RELU,
        SPARSITY_SILU,
        SPARSITY_CETT_VS_ZEROS,
        SPARSITY_RELU_LIMIT,
    ];
    let Some(r) = r else {
        return each(&headlines, None);
    };
    // The paper's models have gated FFNs: a gated model of the activation comes first.
    let at_p = |activation: &str| {
        let mut rows: Vec<&sparsity::ModelRow> = r
            .models
            .iter()
            .filter(|m| m.p == SPARSITY_P && m.activation.starts_with(activation))
            .collect();
        rows.sort_by_key(|m| !m.activation.contains("gated"));
        rows
    };
    let relu = at_p("relu");
    let silu = at_p("silu");
    let no_relu = "no ReLU model measured: the suite is not trained \
                   (`cargo xtask train-tiny suite`) or the run is the smoke one";
    let ratio_of = |rows: &[&sparsity::ModelRow], missing: &str| -> Value {
        let Some(first) = rows.first() else {
            return (None, missing.into());
        };
        let others: Vec<String> = rows[1..]
            .iter()
            .map(|m| format!("{} {:.2}%", m.model, 100.0 * m.mean_activation_ratio))
            .collect();
        (
            Some(100.0 * first.mean_activation_ratio),
            format!(
                "{} ({}), KJV valid, PPL ratio {:.3}{}{}",
                first.model,
                first.activation,
                first.ppl_ratio,
                if first.reached { "" } else { " (not reached)" },
                if others.is_empty() {
                    String::new()
                } else {
                    format!("; also {}", others.join(", "))
                }
            ),
        )
    };
    let f = |h: &Headline| -> Value {
        if *h == SPARSITY_RELU {
            ratio_of(&relu, no_relu)
        } else if *h == SPARSITY_SILU {
            ratio_of(&silu, "no SiLU model measured")
        } else if *h == SPARSITY_CETT_VS_ZEROS {
            let Some(m) = relu.first() else {
                return (None, no_relu.into());
            };
            let zeros_ratio = 1.0 - m.mean_zero_fraction;
            if zeros_ratio <= 0.0 {
                return (None, format!("{}: every activation is zero", m.model));
            }
            (
                Some(100.0 * (1.0 - m.mean_activation_ratio / zeros_ratio)),
                format!(
                    "{} ({}): {:.2}% active at CETT-PPL-1% vs {:.2}% non-zero",
                    m.model,
                    m.activation,
                    100.0 * m.mean_activation_ratio,
                    100.0 * zeros_ratio
                ),
            )
        } else {
            let fits: Vec<&sparsity::FitRow> = relu
                .iter()
                .filter_map(|m| r.fits.iter().find(|f| f.model == m.model))
                .collect();
            let Some(fit) = fits.first() else {
                return (None, no_relu.into());
            };
            let tokens = r
                .series
                .iter()
                .filter(|s| s.model == fit.model)
                .map(|s| s.tokens_seen)
                .max()
                .unwrap_or(0);
            let on = format!(
                "{}: {} law over {} checkpoints up to {tokens} tokens{}",
                fit.model,
                fit.law.name(),
                fit.n_points,
                fit.r2
                    .map_or_else(String::new, |r2| format!(", R^2 {r2:.3}"))
            );
            match fit.a0 {
                Some(a0) => (Some(a0), on),
                None => (
                    None,
                    format!(
                        "{on}: the fit failed ({})",
                        fit.note.as_deref().unwrap_or("no reason given")
                    ),
                ),
            }
        }
    };
    each(&headlines, Some(&f))
}

fn void_values(r: Option<&void::Results>) -> Vec<(Headline, Value)> {
    let headlines = [
        VOID_GAIN,
        VOID_USAGE,
        VOID_USAGE_PROMPT,
        VOID_USAGE_GENERATION,
    ];
    let Some(r) = r else {
        return each(&headlines, None);
    };
    // Variant A at the alpha of the grid closest to the default, on every task scored by
    // log-likelihood that also has the full model's row.
    let variant_a = "deepest-active";
    let alpha = r
        .accuracy
        .iter()
        .filter(|a| a.variant == variant_a)
        .filter_map(|a| a.alpha)
        .min_by(|a, b| (a - VOID_ALPHA).abs().total_cmp(&(b - VOID_ALPHA).abs()));
    let pairs: Vec<(&void::AccuracyRow, &void::AccuracyRow)> = r
        .accuracy
        .iter()
        .filter(|a| a.variant == variant_a && a.alpha == alpha && !a.task.contains('/'))
        .filter_map(|a| {
            r.accuracy
                .iter()
                .find(|f| f.variant == "full" && f.task == a.task)
                .map(|f| (f, a))
        })
        .collect();
    let model = r.settings.model.display().to_string();
    let f = |h: &Headline| -> Value {
        if *h == VOID_GAIN || *h == VOID_USAGE {
            let Some(alpha) = alpha.filter(|_| !pairs.is_empty()) else {
                return (None, "no variant A rows with a full-model row".into());
            };
            let n = pairs.len() as f64;
            if *h == VOID_GAIN {
                let gain = pairs
                    .iter()
                    .map(|(f, a)| 100.0 * (a.accuracy - f.accuracy))
                    .sum::<f64>()
                    / n;
                let tasks: Vec<String> = pairs
                    .iter()
                    .map(|(f, a)| {
                        format!(
                            "{} {:.1} -> {:.1}",
                            a.task,
                            100.0 * f.accuracy,
                            100.0 * a.accuracy
                        )
                    })
                    .collect();
                (
                    Some(gain),
                    format!(
                        "{model}, variant A at alpha {alpha}, log-likelihood choice, mean over \
                         tasks: {}",
                        tasks.join(", ")
                    ),
                )
            } else {
                let usage = pairs.iter().map(|(_, a)| 100.0 * a.usage).sum::<f64>() / n;
                (
                    Some(usage),
                    format!(
                        "{model}, {} blocks, alpha {alpha}, mean over the task tokens of {} tasks",
                        r.n_layers,
                        pairs.len()
                    ),
                )
            }
        } else if *h == VOID_USAGE_PROMPT {
            (
                Some(100.0 * r.map_usage_prompt),
                format!(
                    "{model}, {} blocks, the mapped prompt at alpha 0.8",
                    r.n_layers
                ),
            )
        } else {
            (
                Some(100.0 * r.map_usage_generation),
                format!(
                    "{model}, {} blocks, its greedy generation at alpha 0.8",
                    r.n_layers
                ),
            )
        }
    };
    each(&headlines, Some(&f))
}

fn steer_values(r: Option<&steer::Results>) -> Vec<(Headline, Value)> {
    let headlines = [STEER_NIF, STEER_CRITICAL_STRENGTH];
    let Some(r) = r else {
        return each(&headlines, None);
    };
    let model = r.settings.model.display().to_string();
    let f = |h: &Headline| -> Value {
        let per_concept: Vec<(String, Option<f64>, String)> = r
            .concepts
            .iter()
            .map(|c| {
                let (value, on) = if *h == STEER_NIF {
                    nif_of_dose(&c.dose)
                } else {
                    critical_strength_of_dose(&c.dose)
                };
                (c.concept.clone(), value, on)
            })
            .collect();
        let values: Vec<f64> = per_concept.iter().filter_map(|c| c.1).collect();
        let detail: Vec<String> = per_concept
            .iter()
            .zip(&r.concepts)
            .map(|((name, _, on), c)| format!("{name} (layer {}): {on}", c.best_layer))
            .collect();
        let value = (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64);
        (
            value,
            format!("{model}, mean over concepts; {}", detail.join("; ")),
        )
    };
    each(&headlines, Some(&f))
}

/// The NIF analogue of one dose-response: with `delta = 2 sigmoid(log-odds) - 1`, the
/// effect of the largest alpha towards +1 and of the smallest towards -1, each as a share
/// of the way left from alpha 0 (`methods/steer.md`, Definitions), and their mean. A side
/// with less than [`NIF_MIN_ROOM`] left is left out: the mean log-odds of whole texts often
/// saturates `delta`, and a share of a vanishing room means nothing.
fn nif_of_dose(dose: &[strata_steer::DosePoint]) -> Value {
    let delta = |log_odds: f64| (log_odds / 2.0).tanh();
    let Some(base) = dose.iter().find(|p| p.alpha == 0.0) else {
        return (None, "no alpha 0 in the grid".into());
    };
    let d0 = delta(base.log_odds);
    let strongest = |sign: f64| {
        dose.iter()
            .filter(|p| p.alpha * sign > 0.0)
            .max_by(|a, b| (a.alpha * sign).total_cmp(&(b.alpha * sign)))
    };
    let mut effects = Vec::new();
    let mut parts = Vec::new();
    for (sign, end) in [(1.0, 1.0), (-1.0, -1.0)] {
        let Some(p) = strongest(sign) else { continue };
        let room = end - d0;
        if room.abs() < NIF_MIN_ROOM {
            parts.push(format!(
                "alpha {}: left out, log-odds {:+.2} at alpha 0 leaves no room",
                p.alpha, base.log_odds
            ));
            continue;
        }
        let nif = (delta(p.log_odds) - d0) / room;
        effects.push(nif);
        parts.push(format!("alpha {}: {nif:.3}", p.alpha));
    }
    if effects.is_empty() {
        return (None, format!("no side to steer ({})", parts.join(", ")));
    }
    let mean = effects.iter().sum::<f64>() / effects.len() as f64;
    (Some(mean), format!("{mean:.3} ({})", parts.join(", ")))
}

/// The smallest |alpha| at which the mean log-odds changes sign from its value at alpha 0,
/// interpolated linearly between grid points: alpha multiplies the raw mean difference, so
/// it is in units of the contrastive distance.
fn critical_strength_of_dose(dose: &[strata_steer::DosePoint]) -> Value {
    let mut points: Vec<(f64, f64)> = dose.iter().map(|p| (p.alpha, p.log_odds)).collect();
    points.sort_by(|a, b| a.0.total_cmp(&b.0));
    let Some(&(_, base)) = points.iter().find(|p| p.0 == 0.0) else {
        return (None, "no alpha 0 in the grid".into());
    };
    let mut crossings = Vec::new();
    if let Some(&(a, _)) = points.first().filter(|p| p.1 == 0.0) {
        crossings.push(a);
    }
    for w in points.windows(2) {
        let ((a0, y0), (a1, y1)) = (w[0], w[1]);
        if y1 == 0.0 {
            crossings.push(a1);
        } else if y0 != 0.0 && (y0 < 0.0) != (y1 < 0.0) {
            crossings.push(a0 + (a1 - a0) * y0 / (y0 - y1));
        }
    }
    let critical = crossings
        .into_iter()
        .filter(|a| *a != 0.0)
        .map(f64::abs)
        .min_by(f64::total_cmp);
    let (lo, hi) = (points[0].0, points[points.len() - 1].0);
    match critical {
        Some(c) => (
            Some(c),
            format!("log-odds {base:+.2} at alpha 0 changes sign at |alpha| {c:.2}"),
        ),
        None => (
            None,
            format!("log-odds {base:+.2} at alpha 0 keeps its sign over alpha {lo} to {hi}"),
        ),
    }
}

/// A value in its unit, for the markdown table.
fn format_value(v: f64, unit: &str) -> String {
    match unit {
        "%" => format!("{v:.2}%"),
        "points" => format!("{v:+.2} points"),
        "PPL" => format!("{v:+.4}"),
        "x" => format!("{v:.2}x"),
        "ratio" => format!("{v:.1}"),
        _ => format!("{v:.3}"),
    }
}

/// Text made safe for one markdown table cell.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace(['\n', '\r'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    use strata_steer::{DosePoint, LayerScore};

    fn run_row(method: kappatune::Method, seed: u64, forgetting: f64) -> kappatune::RunRow {
        kappatune::RunRow {
            method,
            seed,
            n_tensors: 3,
            n_trainable: 1000,
            tensors: Vec::new(),
            steps: 10,
            reached_target: true,
            final_train_loss: 1.0,
            task_accuracy: 0.5,
            ppl_before: 20.0,
            ppl_after: 20.0 + forgetting,
            forgetting,
            heldout_ppl_before: 30.0,
            heldout_ppl_after: 31.0,
            heldout_forgetting: 1.0,
            train_seconds: 1.0,
        }
    }

    fn model_row(
        model: &str,
        activation: &str,
        activation_ratio: f64,
        zeros: f64,
    ) -> sparsity::ModelRow {
        sparsity::ModelRow {
            model: model.into(),
            activation: activation.into(),
            p: 1.0,
            cett: 0.1,
            reached: true,
            dense_ppl: 10.0,
            sparse_ppl: 10.1,
            ppl_ratio: 1.01,
            mean_activation_ratio: activation_ratio,
            mean_zero_fraction: zeros,
            layer_activation_ratios: String::new(),
            n_sparse_passes: 5,
            wall_s: 1.0,
        }
    }

    fn accuracy_row(task: &str, variant: &str, alpha: Option<f64>, acc: f64) -> void::AccuracyRow {
        void::AccuracyRow {
            task: task.into(),
            variant: variant.into(),
            alpha,
            n_items: 40,
            accuracy: acc,
            parse_failure_rate: None,
            usage: 0.6,
            skipped_share: 0.0,
            last_void_share: 0.1,
            layers_skipped: String::new(),
        }
    }

    fn dose(points: &[(f64, f64)]) -> Vec<DosePoint> {
        points
            .iter()
            .map(|&(alpha, log_odds)| DosePoint {
                alpha,
                log_odds,
                ppl: 10.0,
            })
            .collect()
    }

    /// Hand-made results of every experiment but void, which failed.
    fn measured() -> Measured {
        use kappatune::Method;
        let kappatune = KappatuneMeasured {
            model: "tiny".into(),
            rows: vec![
                run_row(Method::LowestKappa, 0, 0.4),
                run_row(Method::LowestKappa, 1, 0.6),
                run_row(Method::Lora, 0, 3.0),
                run_row(Method::Lora, 1, 3.0),
                run_row(Method::All, 0, 9.0),
            ],
        };
        let ratio = |model: &str, layer, ratio| FinalRatio {
            model: model.into(),
            layer,
            step: 400,
            ratio,
        };
        let massive = MassiveMeasured {
            final_ratios: vec![ratio("a", 0, 10.0), ratio("a", 1, 42.0), ratio("b", 0, 7.0)],
            ratio_r2: vec![0.9, 0.95, 1.0],
            predictions: vec![ParamPrediction {
                param: "K".into(),
                transform: "yeo-johnson".into(),
                alpha: 1.0,
                cv_r2: 0.4,
                test_r2: 0.5,
                n_train: 12,
                n_test: 4,
                n_dropped: 0,
            }],
        };
        let sparsity = sparsity::Results {
            settings: sparsity::Settings::smoke(),
            models: vec![
                model_row("tiny-default", "silu (gated)", 0.40, 0.0),
                model_row("neox-relu", "relu", 0.30, 0.5),
                model_row("llama-relu", "relu (gated)", 0.10, 0.75),
            ],
            series: Vec::new(),
            fits: vec![sparsity::FitRow {
                model: "llama-relu".into(),
                law: strata_sparsity::Law::Relu,
                params: None,
                a0: Some(8.0),
                r2: Some(0.9),
                n_points: 7,
                note: None,
            }],
        };
        let layer = |layer| LayerScore {
            layer,
            separation: 1.0,
            probe_accuracy: Some(0.9),
            js: 0.1,
            legacy_ta2: -0.04,
            mean_diff_norm: 2.0,
        };
        let steer = steer::Results {
            settings: steer::Settings::smoke(),
            n_layers: 2,
            concepts: vec![steer::ConceptResult {
                concept: "archaic".into(),
                n_pairs: 10,
                layers: vec![layer(0), layer(1)],
                best_layer: 1,
                dose: dose(&[(-8.0, -1.0), (0.0, 1.0), (8.0, 3.0)]),
                generations: Vec::new(),
            }],
            cross_concept_cosine: Vec::new(),
        };
        Measured {
            kappatune: Outcome::Measured(kappatune),
            massive: Outcome::Measured(massive),
            sparsity: Outcome::Measured(sparsity),
            void: Outcome::Failed("void: the model is missing".into()),
            steer: Outcome::Measured(steer),
        }
    }

    fn row<'a>(rows: &'a [SummaryRow], headline: &Headline) -> &'a SummaryRow {
        rows.iter()
            .find(|r| r.quantity == headline.quantity)
            .unwrap_or_else(|| panic!("no row for `{}`", headline.quantity))
    }

    fn check(rows: &[SummaryRow], headline: &Headline, paper: &str, measured: Option<f64>) {
        let r = row(rows, headline);
        assert!(r.paper.contains(paper), "{}: {}", r.quantity, r.paper);
        assert!(r.spec.starts_with("methods/"), "{}", r.spec);
        match (r.measured, measured) {
            (Some(got), Some(want)) => {
                assert!((got - want).abs() < 1e-9, "{}: {got} vs {want}", r.quantity)
            }
            (got, want) => assert_eq!(got, want, "{}", r.quantity),
        }
    }

    #[test]
    fn every_experiment_has_two_to_four_headline_rows() {
        let rows = summary_rows(&measured());
        for experiment in EXPERIMENTS {
            let n = rows.iter().filter(|r| r.experiment == experiment).count();
            assert!((2..=4).contains(&n), "{experiment}: {n} rows");
        }
    }

    #[test]
    fn kappatune_rows_carry_the_measured_forgetting_and_the_spec_numbers() {
        let rows = summary_rows(&measured());
        check(&rows, &KAPPA_LORA_OVER_KAPPATUNE, "6x", Some(6.0));
        check(&rows, &KAPPA_E3_KAPPATUNE, "13.7780", Some(0.5));
        check(&rows, &KAPPA_E3_KAPPATUNE, "13.9841", Some(0.5));
        check(&rows, &KAPPA_E3_LORA, "26.6836", Some(3.0));
        assert!(
            row(&rows, &KAPPA_E3_LORA)
                .measured_on
                .contains("mean of 2 seeds")
        );
        assert_eq!(
            row(&rows, &KAPPA_E3_LORA).spec,
            "methods/kappa.md, Numbers to reproduce, E3"
        );
    }

    #[test]
    fn massive_rows_carry_the_measured_ratio_fit_and_prediction() {
        let rows = summary_rows(&measured());
        check(&rows, &MASSIVE_FINAL_RATIO, "83", Some(42.0));
        assert!(
            row(&rows, &MASSIVE_FINAL_RATIO)
                .measured_on
                .contains("a layer 1 at step 400")
        );
        check(&rows, &MASSIVE_FIT_R2, "0.984", Some(0.95));
        check(&rows, &MASSIVE_PREDICT_K, "0.847", Some(0.5));
    }

    #[test]
    fn sparsity_rows_prefer_a_gated_relu_model_as_the_paper_uses() {
        let rows = summary_rows(&measured());
        check(&rows, &SPARSITY_RELU, "7.09%", Some(10.0));
        assert!(
            row(&rows, &SPARSITY_RELU)
                .measured_on
                .contains("also neox-relu 30.00%")
        );
        check(&rows, &SPARSITY_SILU, "39.20%", Some(40.0));
        // 10% active at the CETT against 25% non-zero: a cut of 60%.
        check(&rows, &SPARSITY_CETT_VS_ZEROS, "61%", Some(60.0));
        check(&rows, &SPARSITY_RELU_LIMIT, "6.14%", Some(8.0));
    }

    #[test]
    fn a_failed_run_keeps_its_rows_with_the_paper_numbers_and_the_error() {
        let rows = summary_rows(&measured());
        for h in [
            VOID_GAIN,
            VOID_USAGE,
            VOID_USAGE_PROMPT,
            VOID_USAGE_GENERATION,
        ] {
            let r = row(&rows, &h);
            assert_eq!(r.measured, None);
            assert_eq!(r.error.as_deref(), Some("void: the model is missing"));
        }
        assert!(row(&rows, &VOID_GAIN).paper.contains("69.24 -> 71.29"));
        assert!(row(&rows, &VOID_USAGE).paper.contains("30%"));
        let other = row(&rows, &KAPPA_E3_LORA);
        assert_eq!(other.error, None);
        assert_eq!(measured().failed(), ["void"]);
        let md = markdown(&rows, true);
        assert!(md.contains("error: void: the model is missing"), "{md}");
        assert!(md.contains("Failed: void."), "{md}");
    }

    #[test]
    fn a_run_not_yet_done_has_rows_without_values() {
        let mut m = measured();
        m.steer = Outcome::NotRun;
        let rows = summary_rows(&m);
        let r = row(&rows, &STEER_NIF);
        assert_eq!((r.measured, r.error.as_deref()), (None, None));
        assert_eq!(r.measured_on, "not run");
    }

    #[test]
    fn void_rows_read_variant_a_at_the_default_alpha_against_the_full_model() {
        let mut m = measured();
        let mut settings = void::Settings::smoke();
        settings.alphas = vec![0.4, 0.8];
        m.void = Outcome::Measured(void::Results {
            settings,
            n_layers: 4,
            map_usage_prompt: 0.7,
            map_usage_generation: 0.55,
            generated: String::new(),
            accuracy: vec![
                accuracy_row("cloze", "full", None, 0.30),
                accuracy_row("cloze", "deepest-active", Some(0.4), 0.90),
                accuracy_row("cloze", "deepest-active", Some(0.8), 0.33),
                accuracy_row("cloze", "pass-through", Some(0.8), 0.90),
                accuracy_row("sums", "full", None, 0.50),
                accuracy_row("sums", "deepest-active", Some(0.8), 0.51),
                accuracy_row("sums/letter", "deepest-active", Some(0.8), 0.99),
            ],
            ppl: Vec::new(),
            speed: void::SpeedRow {
                layers_skipped: String::new(),
                n_new_tokens: 8,
                full_tokens_per_s: 100.0,
                skipped_tokens_per_s: 100.0,
                speedup: 1.0,
                skipped_share: 0.0,
            },
        });
        let rows = summary_rows(&m);
        // (+3 + +1) / 2 points.
        check(&rows, &VOID_GAIN, "+2.05 points", Some(2.0));
        check(&rows, &VOID_USAGE, "30%", Some(60.0));
        check(&rows, &VOID_USAGE_PROMPT, "70%", Some(70.0));
        check(&rows, &VOID_USAGE_GENERATION, "70%", Some(55.0));
        assert!(m.failed().is_empty());
    }

    #[test]
    fn steer_rows_read_the_dose_response() {
        let rows = summary_rows(&measured());
        // Log-odds -1, +1, +3 at alpha -8, 0, 8: the sign changes at alpha -4.
        check(&rows, &STEER_CRITICAL_STRENGTH, "1.2x", Some(4.0));
        // delta = tanh(log-odds / 2): towards +1 (0.905 - 0.462) / (1 - 0.462) = 0.824,
        // towards -1 (-0.462 - 0.462) / (-1 - 0.462) = 0.632; mean 0.728.
        let r = row(&rows, &STEER_NIF);
        assert!(r.paper.contains("0.829"));
        let nif = r.measured.unwrap();
        assert!((nif - 0.7279).abs() < 1e-3, "{nif}");
        assert!(
            r.measured_on.contains("archaic (layer 1)"),
            "{}",
            r.measured_on
        );
    }

    #[test]
    fn a_dose_response_that_keeps_its_sign_has_no_critical_strength() {
        let (value, on) = critical_strength_of_dose(&dose(&[(-4.0, 2.0), (0.0, 3.0), (4.0, 5.0)]));
        assert_eq!(value, None);
        assert!(on.contains("keeps its sign over alpha -4 to 4"), "{on}");
        let (value, _) = nif_of_dose(&dose(&[(-4.0, 2.0), (4.0, 5.0)]));
        assert_eq!(value, None);
        // Log-odds +12 at alpha 0: delta = tanh(6) leaves no room towards +1, so only the
        // side towards -1 counts: (tanh(-1) - tanh(6)) / (-1 - tanh(6)) = 0.881.
        let (value, on) = nif_of_dose(&dose(&[(-8.0, -2.0), (0.0, 12.0), (8.0, 14.0)]));
        assert!((value.unwrap() - 0.8808).abs() < 1e-3, "{value:?}");
        assert!(on.contains("alpha 8: left out"), "{on}");
    }

    #[test]
    fn the_massive_tables_are_read() {
        let table = |text: &str| CsvTable::parse(text).unwrap();
        let fits = table(
            "model,layer,statistic,a,r2,peak_step\n\
             m,0,ratio,1.0,0.97,\n\
             m,0,top1,1.0,0.5,\n\
             m,1,ratio,1.0,-inf,12.5\n",
        );
        assert_eq!(ratio_r2_of(&fits).unwrap(), [0.97, f64::NEG_INFINITY]);
        let series = table(
            "model,step,layer,top1,median,ratio\n\
             b,0,0,1,1,1.5\n\
             b,8,1,1,1,9.0\n\
             b,8,0,1,1,4.0\n\
             a,16,0,1,1,2.0\n",
        );
        let got: Vec<(String, usize, u64, f64)> = final_ratios_of(&series)
            .unwrap()
            .into_iter()
            .map(|r| (r.model, r.layer, r.step, r.ratio))
            .collect();
        let want = [("b", 0, 8, 4.0), ("b", 1, 8, 9.0), ("a", 0, 16, 2.0)]
            .map(|(m, l, s, r)| (m.to_string(), l, s, r));
        assert_eq!(got, want);
        let predictor = table(
            "param,transform,alpha,cv_r2,test_r2,n_train,n_test,n_dropped\n\
             K,yeo-johnson,0.1,NaN,0.25,17,4,0\n",
        );
        let p = &predictions_of(&predictor).unwrap()[0];
        assert_eq!((p.param.as_str(), p.test_r2, p.n_test), ("K", 0.25, 4));
        assert!(p.cv_r2.is_nan());
        assert_eq!(
            ratio_r2_of(&table("")).unwrap_err().to_string(),
            "no `statistic` column in ``"
        );
        let err = CsvTable::parse("model,layer\nm\n").unwrap_err();
        assert!(
            err.to_string().contains("has 1 cells, the header 2"),
            "{err}"
        );
        let err = CsvTable::parse("model\n\"a,b\"\n").unwrap_err();
        assert!(err.to_string().contains("a quoted cell"), "{err}");
    }

    #[test]
    fn the_markdown_names_the_spec_files_and_the_columns() {
        let rows = summary_rows(&measured());
        let md = markdown(&rows, false);
        for spec in ["kappa", "massive", "sparsity", "void", "steer"] {
            assert!(md.contains(&format!("`methods/{spec}.md")), "{spec}");
        }
        assert!(md.contains("| comparable? |"));
        assert!(md.contains("| 6.00x |"), "{md}");
        assert!(md.contains("partly: the same definition"), "{md}");
        assert_eq!(
            md.lines().filter(|l| l.starts_with("| ")).count(),
            rows.len() + 1
        );
    }
}

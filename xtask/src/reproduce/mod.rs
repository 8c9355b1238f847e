//! `cargo xtask reproduce EXPERIMENT`: experiments from the book, end to end, with their
//! tables and figures.

pub mod all;
pub mod kappatune;
pub mod massive;
pub mod sparsity;
pub mod steer;
pub mod void;

use std::path::PathBuf;

use anyhow::Result;

/// The experiments that can be reproduced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Experiment {
    /// KappaTune forgetting: lowest-, highest-, random-kappa, LoRA and all-parameter
    /// fine-tuning on arithmetic at one trainable-parameter budget, forgetting measured on KJV
    /// and a held-out text (the tiny default model, or `--model` for a pretrained one).
    Kappatune,
    /// Massive activations over training: every checkpoint of the tiny suite, the
    /// five-parameter fit of each layer's series with its R^2, and the parameters predicted
    /// from the architecture.
    Massive,
    /// PPL-p% activation sparsity with CETT thresholds of the tiny models (and, when trained,
    /// the ReLU/SiLU suite and its checkpoint series); also called `sparsing-law`.
    #[value(alias = "sparsing-law")]
    Sparsity,
    /// Steering vectors: per-layer directions of the contrastive sets with separation and
    /// probe accuracy, a dose-response over alpha and steered generations (`--model` for a
    /// real model).
    Steer,
    /// Voids (LAC): per-token layer maps, and accuracy, perplexity and speed with the voids
    /// skipped over an alpha grid (`--model` for a real model).
    Void,
    /// Every experiment above in turn (into `OUT/<experiment>`), then `OUT/summary.md` and
    /// `OUT/summary.csv`: each headline number of the papers beside strata's at tiny scale.
    All,
}

#[derive(clap::Args)]
pub struct Args {
    /// The experiment.
    #[arg(value_enum)]
    experiment: Experiment,
    /// A few steps per run and a tiny evaluation, to check the pipeline.
    #[arg(long)]
    smoke: bool,
    /// Output folder [default: out/reproduce/EXPERIMENT, or out/reproduce/EXPERIMENT-smoke].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Only redraw the figure and tables from the output folder's `results.json`.
    #[arg(long)]
    replot: bool,
    /// Maximum optimiser steps per run (overrides the preset).
    #[arg(long)]
    max_steps: Option<usize>,
    /// Stop a run once its training loss (mean of the last steps) reaches this (nats/token).
    #[arg(long)]
    target_loss: Option<f64>,
    /// Learning rate, constant after the warmup (overrides the preset).
    #[arg(long)]
    lr: Option<f64>,
    /// LoRA rank of `kappatune`'s LoRA arm; its parameter count is every selective arm's
    /// budget.
    #[arg(long)]
    lora_rank: Option<usize>,
    /// Seeds (data order, random order, LoRA initialisation), comma-separated: every arm runs
    /// once per seed.
    #[arg(long, value_delimiter = ',')]
    seeds: Vec<u64>,
    /// Model folder or `.gguf` file for experiments that take one (`void`, `steer`; `kappatune`
    /// takes an HF folder with a `tokenizer.json`).
    #[arg(long)]
    model: Option<PathBuf>,
}

pub fn run(args: &Args) -> Result<()> {
    match args.experiment {
        Experiment::All => all::run(args),
        Experiment::Massive => {
            let name = if args.smoke {
                "massive-smoke"
            } else {
                "massive"
            };
            let root = crate::workspace_root();
            let out = args
                .out
                .clone()
                .unwrap_or_else(|| root.join("out/reproduce").join(name));
            let cfg = if args.smoke {
                massive::Settings::smoke(&out)
            } else {
                massive::Settings::full(&root)
            };
            let summary = massive::run(&cfg, &root, &out)?;
            println!("{summary}");
            eprintln!("wrote {}", out.display());
            Ok(())
        }
        Experiment::Void => {
            let mut cfg = if args.smoke {
                void::Settings::smoke()
            } else {
                void::Settings::full()
            };
            if let Some(model) = &args.model {
                cfg.model = model.clone();
            }
            let name = if args.smoke { "void-smoke" } else { "void" };
            let out = args
                .out
                .clone()
                .unwrap_or_else(|| crate::workspace_root().join("out/reproduce").join(name));
            let results = void::run(&cfg, &crate::workspace_root(), &out)?;
            println!("{}", void::markdown_table(&results));
            eprintln!("wrote {}", out.display());
            Ok(())
        }
        Experiment::Steer => {
            let mut cfg = if args.smoke {
                steer::Settings::smoke()
            } else {
                steer::Settings::full()
            };
            if let Some(model) = &args.model {
                cfg.model = model.clone();
            }
            let name = if args.smoke { "steer-smoke" } else { "steer" };
            let out = args
                .out
                .clone()
                .unwrap_or_else(|| crate::workspace_root().join("out/reproduce").join(name));
            let results = steer::run(&cfg, &crate::workspace_root(), &out)?;
            println!("{}", steer::markdown_table(&results));
            eprintln!("wrote {}", out.display());
            Ok(())
        }
        Experiment::Sparsity => {
            let cfg = if args.smoke {
                sparsity::Settings::smoke()
            } else {
                sparsity::Settings::full()
            };
            let name = if args.smoke {
                "sparsity-smoke"
            } else {
                "sparsity"
            };
            let out = args
                .out
                .clone()
                .unwrap_or_else(|| crate::workspace_root().join("out/reproduce").join(name));
            let results = sparsity::run(&cfg, &crate::workspace_root(), &out)?;
            println!("{}", sparsity::markdown_table(&results));
            eprintln!("wrote {}", out.display());
            Ok(())
        }
        Experiment::Kappatune => {
            let mut cfg = match (&args.model, args.smoke) {
                (_, true) => kappatune::Settings::smoke(),
                (Some(model), false) => kappatune::Settings::pretrained(model),
                (None, false) => kappatune::Settings::full(),
            };
            if let Some(model) = &args.model {
                cfg.model = model.display().to_string();
            }
            if let Some(v) = args.max_steps {
                cfg.max_steps = v;
            }
            if let Some(v) = args.target_loss {
                cfg.target_loss = v;
            }
            if let Some(v) = args.lr {
                cfg.lr = v;
            }
            if let Some(v) = args.lora_rank {
                cfg.lora_rank = v;
            }
            if !args.seeds.is_empty() {
                cfg.seeds = args.seeds.clone();
            }
            let name = if args.smoke {
                "kappatune-smoke"
            } else {
                "kappatune"
            };
            let out = args
                .out
                .clone()
                .unwrap_or_else(|| crate::workspace_root().join("out/reproduce").join(name));
            if args.replot {
                kappatune::replot(&out)?;
                eprintln!("redrew {}", out.display());
                return Ok(());
            }
            let rows = kappatune::run(&cfg, &crate::workspace_root(), &out)?;
            println!("{}", kappatune::markdown_table(&cfg, &rows));
            eprintln!("wrote {}", out.display());
            Ok(())
        }
    }
}

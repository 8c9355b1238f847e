//! Evaluation with probes attached: perplexity, multiple-choice and exact-match scoring.
//!
//! Every function takes a [`ProbeSet`](crate::ProbeSet), so the same evaluation runs on the
//! plain model and with any intervention attached (a steering vector, zeroed neurons, skipped
//! layers): that is how the analyses measure what an intervention costs.
//!
//! - [`corpus`]: how a text becomes one token stream (one leading end-of-text token, then
//!   each line followed by one), so `strata ppl`, the training tools and the analyses report
//!   the same number for the same text.
//! - [`perplexity()`]: sliding-window perplexity, as transformers' perplexity guide;
//!   [`perplexity_of_windows()`] runs a range of its windows (one shard of a corpus).
//! - [`tasks`]: the multiple-choice task files of `datasets/tasks/*.jsonl` and their scoring
//!   by log-likelihood (`acc` and `acc_norm`).
//! - [`exact_match()`]: greedy generation scored by the answer it starts with.
//!
//! Each result implements [`Merge`](crate::probe::Merge): shards of a corpus or of a task
//! scored apart combine into the result of the whole.
//!
//! ```no_run
//! use burn::backend::Flex;
//! use strata_core::{Model, ProbeSet};
//! use strata_core::eval::{PerplexityConfig, corpus, perplexity};
//! # fn main() -> strata_core::Result<()> {
//! let model = Model::<Flex>::load("datasets/models/tiny-default".as_ref(), &Default::default())?;
//! let text = std::fs::read_to_string("datasets/kjv/valid.txt").unwrap();
//! let stream = corpus::frame_lines(model.tokenizer()?, text.lines())?;
//! let config = PerplexityConfig::for_model(model.config())?;
//! let result = perplexity(&model, &stream, &config, &mut ProbeSet::none(), &mut |_, _| {})?;
//! println!("PPL {:.2}", result.ppl());
//! # Ok(()) }
//! ```

pub mod corpus;
mod exact_match;
pub(crate) mod log_likelihood;
mod perplexity;
pub mod tasks;

pub use exact_match::{ExactMatch, ExactMatchItem, exact_match, leading_number};
pub use perplexity::{Perplexity, PerplexityConfig, perplexity, perplexity_of_windows};
pub use tasks::{
    MultipleChoiceAccuracy, TaskItem, continuation_log_probs, item_tokens, read_task_dir,
    read_task_file, score_item, score_task,
};

//! Entry points: maps of a prompt and its generation, and the model's scores with voids
//! skipped (multiple choice by log-likelihood and by generated letter, perplexity).

use burn::tensor::backend::Backend;
use serde::{Deserialize, Serialize};
use strata_core::eval::{
    MultipleChoiceAccuracy, Perplexity, PerplexityConfig, TaskItem, perplexity, score_task,
};
use strata_core::generate::{GenerateConfig, generate};
use strata_core::probe::{Merge, ProbeSet};
use strata_core::{Model, TokenBatch, Tokenizer};

use crate::error::{Error, Result};
use crate::probe::{VoidConfig, VoidProbe};
use crate::result::{PhaseUsage, VoidResult};

fn probe_for<B: Backend>(model: &Model<B>, config: &VoidConfig) -> Result<VoidProbe<B>> {
    VoidProbe::new(model.config().n_layers, config.clone())
}

/// The void map of one prompt: one forward pass, every token measured (prompt phase).
pub fn map_prompt<B: Backend>(
    model: &Model<B>,
    token_ids: &[u32],
    config: &VoidConfig,
) -> Result<VoidResult> {
    if token_ids.is_empty() {
        return Err(Error::EmptyInput {
            what: "an empty prompt".into(),
        });
    }
    let mut probe = probe_for(model, config)?;
    let batch = TokenBatch::single(token_ids)?;
    model.forward_with(&batch, None, &mut ProbeSet::one(&mut probe))?;
    Ok(probe.into_result())
}

/// Generates a continuation of `prompt` with the probe attached to every step: the prompt
/// pass is the prompt phase, each new token one generation-phase call. Returns the new
/// tokens (the first one, chosen from the prompt pass's logits, included) and the maps.
pub fn generate_with_voids<B: Backend>(
    model: &Model<B>,
    prompt: &[u32],
    generate_config: &GenerateConfig,
    config: &VoidConfig,
) -> Result<(Vec<u32>, VoidResult)> {
    if prompt.is_empty() {
        return Err(Error::EmptyInput {
            what: "an empty prompt".into(),
        });
    }
    let mut probe = probe_for(model, config)?;
    let tokens = generate(
        model,
        prompt,
        generate_config,
        &mut ProbeSet::one(&mut probe),
    )?;
    Ok((tokens, probe.into_result()))
}

/// Multiple-choice accuracy by log-likelihood (core's `score_task`) with the probe
/// attached, and the layer usage over every scored token. `progress` gets (items done, total).
pub fn score_task_with_voids<B: Backend>(
    model: &Model<B>,
    tokenizer: &Tokenizer,
    eot: u32,
    items: &[TaskItem],
    config: &VoidConfig,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<(MultipleChoiceAccuracy, VoidResult)> {
    if items.is_empty() {
        return Err(Error::EmptyInput {
            what: "a task with no items".into(),
        });
    }
    let mut probe = probe_for(model, config)?;
    let accuracy = score_task(
        model,
        tokenizer,
        eot,
        items,
        &mut ProbeSet::one(&mut probe),
        progress,
    )?;
    Ok((accuracy, probe.into_result()))
}

/// Sliding-window perplexity of `tokens` with the probe attached, and the layer usage.
pub fn perplexity_with_voids<B: Backend>(
    model: &Model<B>,
    tokens: &[u32],
    ppl_config: &PerplexityConfig,
    config: &VoidConfig,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<(Perplexity, VoidResult)> {
    let mut probe = probe_for(model, config)?;
    let ppl = perplexity(
        model,
        tokens,
        ppl_config,
        &mut ProbeSet::one(&mut probe),
        progress,
    )?;
    Ok((ppl, probe.into_result()))
}

/// The layers active for fewer than `max_usage` of the tokens of `usage`: candidates for
/// [`VoidConfig::compute_skip`]. Refuses `max_usage` outside `[0, 1]` and empty counts.
pub fn rarely_active_layers(usage: &PhaseUsage, max_usage: f64) -> Result<Vec<usize>> {
    if !(max_usage.is_finite() && (0.0..=1.0).contains(&max_usage)) {
        return Err(Error::InvalidArgument {
            what: "usage threshold".into(),
            reason: format!("{max_usage} is outside [0, 1]"),
        });
    }
    if usage.n_tokens == 0 {
        return Err(Error::EmptyInput {
            what: "no tokens measured to choose layers from".into(),
        });
    }
    Ok(usage
        .layer_usage()
        .iter()
        .enumerate()
        .filter(|(_, u)| **u < max_usage)
        .map(|(layer, _)| layer)
        .collect())
}

/// How a multiple-choice item becomes a prompt for answering by letter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LetterPrompt {
    /// The text around the question, with `{message}` where the question goes (for a
    /// chat model, its chat template with the generation prompt; `{message}` alone for none).
    pub template: String,
}

impl LetterPrompt {
    /// No template: the message alone.
    pub fn plain() -> Self {
        Self {
            template: "{message}".into(),
        }
    }

    /// ChatML (`<|im_start|>user ... <|im_end|>` then the assistant's turn), as SmolLM2
    /// and Qwen2.5 instruct models use.
    pub fn chatml() -> Self {
        Self {
            template: "<|im_start|>user\n{message}<|im_end|>\n<|im_start|>assistant\n".into(),
        }
    }

    /// The reference's zero-shot message for an item (`Question:`, `Options:` with lettered
    /// choices, `Output format: [Option]`), inside the template.
    pub fn render(&self, item: &TaskItem) -> String {
        let mut message = format!("Question: {}\n\nOptions:\n", item.context.trim());
        for (idx, choice) in item.choices.iter().enumerate() {
            message.push_str(&format!("{}. {}\n", letter(idx), choice.trim()));
        }
        message.push_str("\nOutput format: [Option]");
        self.template.replace("{message}", &message)
    }
}

/// `A`, `B`, ... for choice `idx`.
fn letter(idx: usize) -> char {
    char::from(b'A' + (idx % 26) as u8)
}

/// The first standalone option letter (`A`..) among the first `n_choices` in `text`: a
/// letter with no letter or digit on either side (`B`, `[B]`, `B.` count; `Bread` does
/// not). `None` when there is none (a parse failure, scored wrong).
pub fn answer_letter(text: &str, n_choices: usize) -> Option<usize> {
    let chars: Vec<char> = text.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        let idx = (c as usize).wrapping_sub('A' as usize);
        if !c.is_ascii_uppercase() || idx >= n_choices {
            continue;
        }
        let alnum = |j: Option<usize>| {
            j.and_then(|j| chars.get(j))
                .is_some_and(|c| c.is_alphanumeric())
        };
        if !alnum(i.checked_sub(1)) && !alnum(Some(i + 1)) {
            return Some(idx);
        }
    }
    None
}

/// Multiple-choice accuracy by generation: items answered right, and those whose
/// continuation held no option letter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct LetterAccuracy {
    /// Items scored.
    pub n_items: usize,
    /// Items whose first option letter is the right one.
    pub n_right: usize,
    /// Items with no option letter in the continuation (scored wrong).
    pub n_unparsed: usize,
}

impl LetterAccuracy {
    /// Share of items answered right.
    pub fn accuracy(&self) -> f64 {
        self.n_right as f64 / self.n_items as f64
    }

    /// Share of items with no parseable answer.
    pub fn parse_failure_rate(&self) -> f64 {
        self.n_unparsed as f64 / self.n_items as f64
    }
}

impl Merge for LetterAccuracy {
    fn merge(self, other: Self) -> Self {
        Self {
            n_items: self.n_items + other.n_items,
            n_right: self.n_right + other.n_right,
            n_unparsed: self.n_unparsed + other.n_unparsed,
        }
    }
}

/// Scores items by generation: each item rendered by `prompt`, continued with
/// `generate_config` (its seed reseeded per item as `seed + item index`, so items are
/// independent of their order), the first generated token included, and scored by
/// [`answer_letter`]. Returns the accuracy and the usage of both phases.
pub fn score_by_letter<B: Backend>(
    model: &Model<B>,
    tokenizer: &Tokenizer,
    items: &[TaskItem],
    prompt: &LetterPrompt,
    generate_config: &GenerateConfig,
    config: &VoidConfig,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<(LetterAccuracy, VoidResult)> {
    if items.is_empty() {
        return Err(Error::EmptyInput {
            what: "a task with no items".into(),
        });
    }
    let mut probe = probe_for(model, config)?;
    let mut accuracy = LetterAccuracy::default();
    for (idx, item) in items.iter().enumerate() {
        let ids = tokenizer.encode_plain(&prompt.render(item))?;
        let step_config = GenerateConfig {
            seed: generate_config.seed.wrapping_add(idx as u64),
            ..generate_config.clone()
        };
        let new = generate(model, &ids, &step_config, &mut ProbeSet::one(&mut probe))?;
        let text = tokenizer.decode(&new)?;
        let answer = answer_letter(&text, item.choices.len());
        accuracy.n_items += 1;
        accuracy.n_right += usize::from(answer == Some(item.answer));
        accuracy.n_unparsed += usize::from(answer.is_none());
        progress(idx + 1, items.len());
    }
    Ok((accuracy, probe.into_result()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_standalone_letter_is_the_answer() {
        assert_eq!(answer_letter("[B]", 4), Some(1));
        assert_eq!(answer_letter("The answer is C.", 4), Some(2));
        assert_eq!(answer_letter("Bread. D", 4), Some(3));
        assert_eq!(answer_letter("E", 4), None);
        assert_eq!(answer_letter("no letter here", 4), None);
        assert_eq!(answer_letter("A1 then B", 4), Some(1));
    }

    #[test]
    fn a_prompt_lists_lettered_options_inside_the_template() {
        let item = TaskItem {
            id: "x".into(),
            context: "58+59=".into(),
            choices: vec!["117".into(), " 127".into()],
            answer: 0,
        };
        let text = LetterPrompt::chatml().render(&item);
        assert!(
            text.starts_with("<|im_start|>user\nQuestion: 58+59=\n\nOptions:\nA. 117\nB. 127\n")
        );
        assert!(text.ends_with("Output format: [Option]<|im_end|>\n<|im_start|>assistant\n"));
    }
}

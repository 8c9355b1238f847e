//! `strata_core::eval` against independent references: one unpadded forward pass per
//! continuation with the log-softmax summed by hand, hand-derived accuracies, and the
//! framing convention of `datasets/kjv/baselines.json`.

mod common;

use std::path::PathBuf;

use burn::backend::Flex;
use burn::tensor::activation::log_softmax;
use strata_core::eval::corpus::{self, Framing};
use strata_core::eval::tasks::{
    MultipleChoiceAccuracy, TaskItem, continuation_log_probs, read_task_file, score_item,
};
use strata_core::eval::{ExactMatchItem, leading_number};
use strata_core::probe::{FnProbe, Merge, ProbeSet, Site};
use strata_core::weights::HostTensor;
use strata_core::{Model, TokenBatch};

type B = Flex;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The Llama parity fixture (vocabulary 96, no tokenizer).
fn fixture_model() -> Model<B> {
    Model::<B>::load(&common::fixture("llama-tiny"), &Default::default()).unwrap()
}

fn tiny_default() -> Model<B> {
    Model::<B>::load(
        &root().join("datasets/models/tiny-default"),
        &Default::default(),
    )
    .unwrap()
}

/// One unpadded forward pass of `context + continuation`, the log-softmax read back to the
/// host, and the entries of the continuation's tokens summed by hand.
fn reference_log_prob(model: &Model<B>, context: &[u32], continuation: &[u32]) -> f64 {
    let ids = [context, continuation].concat();
    let logits = model.forward(&TokenBatch::single(&ids).unwrap()).unwrap();
    let log_probs = HostTensor::from_tensor(log_softmax(logits, 2));
    let d_vocab = log_probs.shape[2];
    (context.len()..ids.len())
        .map(|pos| f64::from(log_probs.data[(pos - 1) * d_vocab + ids[pos] as usize]))
        .sum()
}

#[test]
fn batched_continuation_log_probs_match_one_forward_pass_each() {
    let model = fixture_model();
    let context = [1, 17, 42, 5, 88, 23];
    // Lengths 1, 4, 2 and 7, so three of the four rows are padded.
    let continuations = vec![
        vec![9],
        vec![60, 3, 3, 71],
        vec![95, 0],
        vec![12, 34, 56, 78, 90, 11, 2],
    ];
    let scored =
        continuation_log_probs(&model, &context, &continuations, &mut ProbeSet::none()).unwrap();
    assert_eq!(scored.len(), continuations.len());
    for (continuation, &log_prob) in continuations.iter().zip(&scored) {
        let expected = reference_log_prob(&model, &context, continuation);
        assert!(
            log_prob < 0.0,
            "a log-probability sum is negative: {log_prob}"
        );
        assert!(
            (log_prob - expected).abs() <= 1e-4 * expected.abs().max(1.0),
            "continuation {continuation:?}: batched {log_prob}, one pass {expected}"
        );
    }
}

#[test]
fn scoring_runs_with_the_probes_attached() {
    // Zeroing every MLP output changes the scores: the probes are in the forward pass.
    let model = fixture_model();
    let context = [1, 17, 42];
    let continuations = vec![vec![9, 4]];
    let plain =
        continuation_log_probs(&model, &context, &continuations, &mut ProbeSet::none()).unwrap();
    let mut zero = FnProbe::<B, _>::new(
        |site| matches!(site, Site::MlpOut { .. }),
        |_, x, _| Ok(x.zeros_like()),
    );
    let zeroed = continuation_log_probs(
        &model,
        &context,
        &continuations,
        &mut ProbeSet::one(&mut zero),
    )
    .unwrap();
    assert!(
        (plain[0] - zeroed[0]).abs() > 1e-3,
        "{plain:?} vs {zeroed:?}"
    );
}

#[test]
fn a_cloze_item_is_scored_on_the_tokens_after_its_context() {
    let model = tiny_default();
    let tokenizer = model.tokenizer().unwrap();
    let raw = tokenizer.inner();
    let item = TaskItem {
        id: "t".into(),
        context: "And the LORD spake unto Moses, saying, Speak unto the".into(),
        choices: vec![" children".into(), " wilderness".into()],
        answer: 0,
    };
    let scores = score_item(&model, tokenizer, 0, &item, &mut ProbeSet::none()).unwrap();
    let encode = |t: &str| raw.encode(t, false).unwrap().get_ids().to_vec();
    let context = [vec![0], encode(&item.context)].concat();
    for (choice, &(log_prob, n_bytes)) in item.choices.iter().zip(&scores) {
        let full = [vec![0], encode(&format!("{}{choice}", item.context))].concat();
        let expected = reference_log_prob(&model, &context, &full[context.len()..]);
        assert_eq!(n_bytes, choice.len());
        assert!(
            (log_prob - expected).abs() <= 1e-4 * expected.abs().max(1.0),
            "choice {choice:?}: scored {log_prob}, one pass {expected}"
        );
    }
}

#[test]
fn empty_context_or_continuation_is_an_error() {
    let model = fixture_model();
    let empty_context = continuation_log_probs(&model, &[], &[vec![3]], &mut ProbeSet::none());
    assert!(empty_context.unwrap_err().to_string().contains("context"));
    let empty_choice =
        continuation_log_probs(&model, &[1, 2], &[vec![3], vec![]], &mut ProbeSet::none());
    assert!(
        empty_choice
            .unwrap_err()
            .to_string()
            .contains("continuation")
    );
}

#[test]
fn acc_and_acc_norm_follow_the_sum_and_the_sum_per_byte() {
    // Sums -2.0 and -3.0 favour choice 0; per byte, -2.0 and -1.5 favour choice 1.
    let mut acc = MultipleChoiceAccuracy::default();
    acc.add(&[(-2.0, 1), (-3.0, 2)], 1);
    assert_eq!((acc.acc(), acc.acc_norm()), (0.0, 1.0));
    // A second shard where both pick the right choice; merged: 1/2 and 2/2.
    let mut other = MultipleChoiceAccuracy::default();
    other.add(&[(-1.0, 1), (-5.0, 1)], 0);
    let merged = acc.merge(other);
    assert_eq!((merged.acc(), merged.acc_norm()), (0.5, 1.0));
}

#[test]
fn the_task_files_parse_and_bad_lines_name_file_and_line() {
    let items = read_task_file(&root().join("datasets/tasks/arithmetic.jsonl")).unwrap();
    assert_eq!(items.len(), 200);
    assert_eq!(items[1].context, "58+59=");
    assert_eq!(items[1].choices[items[1].answer], "117");

    let dir = std::env::temp_dir().join(format!("strata-eval-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.jsonl");
    std::fs::write(
        &bad,
        "{\"context\": \"a\", \"choices\": [\"b\", \"c\"], \"answer\": 0}\n\
         {\"context\": \"a\", \"choices\": [\"b\", \"c\"], \"answer\": 2}\n",
    )
    .unwrap();
    let err = read_task_file(&bad).unwrap_err().to_string();
    assert!(err.contains("bad.jsonl") && err.contains("line 2"), "{err}");
    assert!(err.contains("out of range"), "{err}");
}

#[test]
fn lines_framing_is_the_baselines_stream() {
    // datasets/kjv/baselines.json counts n_tokens = len(stream) - 1 for the valid split under
    // this framing: the same count comes out of `corpus::frame`.
    let model = tiny_default();
    let text = std::fs::read_to_string(root().join("datasets/kjv/valid.txt")).unwrap();
    let stream = corpus::frame(model.tokenizer().unwrap(), &text, Framing::Lines).unwrap();
    let baselines: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("datasets/kjv/baselines.json")).unwrap(),
    )
    .unwrap();
    let valid = baselines["splits"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["split"] == "valid")
        .unwrap();
    assert_eq!(
        stream.len() - 1,
        valid["n_tokens"].as_u64().unwrap() as usize
    );
    let eot = model
        .tokenizer()
        .unwrap()
        .token_id("<|endoftext|>")
        .unwrap();
    assert_eq!(stream[0], eot);
    assert_eq!(*stream.last().unwrap(), eot);
}

#[test]
fn exact_match_items_and_answers_parse() {
    let item = ExactMatchItem::from_equation("17+25=42").unwrap();
    assert_eq!(
        (item.prompt.as_str(), item.answer.as_str()),
        ("17+25=", "42")
    );
    assert!(ExactMatchItem::from_equation("17+25").is_err());
    assert_eq!(leading_number(" 42 and"), "42");
    assert_eq!(leading_number("-7x"), "-7");
    assert_eq!(leading_number("x42"), "");
    assert_eq!(leading_number("12-3"), "12");
}

#[test]
fn task_and_exact_match_results_of_two_shards_merge_to_the_whole() {
    use strata_core::eval::tasks::score_task;
    use strata_core::eval::{ExactMatch, exact_match};
    use strata_core::generate::GenerateConfig;
    let model = tiny_default();
    let tokenizer = model.tokenizer().unwrap();
    let eot = tokenizer.token_id("<|endoftext|>").unwrap();

    let items = read_task_file(&root().join("datasets/tasks/arithmetic.jsonl")).unwrap();
    let items = &items[..12];
    let score = |items: &[TaskItem]| {
        score_task(
            &model,
            tokenizer,
            eot,
            items,
            &mut ProbeSet::none(),
            &mut |_, _| {},
        )
        .unwrap()
    };
    let whole = score(items);
    assert_eq!(score(&items[..5]).merge(score(&items[5..])), whole);
    assert_eq!(whole.n_items, 12);

    let lines = std::fs::read_to_string(root().join("datasets/arithmetic/test.txt")).unwrap();
    let em_items: Vec<ExactMatchItem> = lines
        .lines()
        .take(8)
        .map(|l| ExactMatchItem::from_equation(l).unwrap())
        .collect();
    let config = GenerateConfig {
        max_new_tokens: 4,
        eos_token_id: Some(eot),
        ..Default::default()
    };
    let run = |items: &[ExactMatchItem]| -> ExactMatch {
        exact_match(
            &model,
            tokenizer,
            eot,
            items,
            &config,
            &leading_number,
            &mut ProbeSet::none(),
        )
        .unwrap()
    };
    let whole = run(&em_items);
    assert_eq!(run(&em_items[..3]).merge(run(&em_items[3..])), whole);
    assert_eq!(whole.n_items, 8);
}

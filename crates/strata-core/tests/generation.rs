//! Generation, interventions and perplexity against HF transformers references, plus the
//! invariants of caching, padding and probes.

mod common;

use burn::backend::Flex;
use strata_core::eval::{PerplexityConfig, perplexity};
use strata_core::generate::{GenerateConfig, Sampling, generate, generate_batch};
use strata_core::probe::Merge;
use strata_core::probe::{FnProbe, ProbeSet, Site};
use strata_core::weights::HostTensor;
use strata_core::{Model, TokenBatch};

use common::{assert_close, reference, reference_ids};

type B = Flex;

const DECODERS: &[&str] = &[
    "gpt2-tiny",
    "gpt-neox-tiny",
    "gpt-neox-serial-tiny",
    "gpt-neox-odd-rotary-tiny",
    "llama-tiny",
    "mistral-tiny",
    "qwen2-tiny",
];

fn load(fixture: &str) -> Model<B> {
    Model::<B>::load(&common::fixture(fixture), &Default::default()).expect("fixture loads")
}

fn greedy(n: usize) -> GenerateConfig {
    GenerateConfig {
        max_new_tokens: n,
        sampling: Sampling::Greedy,
        seed: 0,
        eos_token_id: None,
    }
}

#[test]
fn greedy_generation_matches_hf_generate() {
    for fixture in DECODERS {
        let model = load(fixture);
        let (_, prompt) = reference_ids(fixture, "generate.prompt");
        let (_, expected) = reference_ids(fixture, "generate.greedy");
        let got = generate(
            &model,
            &prompt,
            &greedy(expected.len()),
            &mut ProbeSet::none(),
        )
        .unwrap();
        assert_eq!(got, expected, "{fixture}: greedy continuation");
    }
}

#[test]
fn zeroing_an_mlp_output_matches_the_same_hf_intervention() {
    for fixture in DECODERS {
        let model = load(fixture);
        let (_, ids) = reference_ids(fixture, "intervene.input_ids");
        let mut zero = FnProbe::<B, _>::new(
            |site| site == Site::MlpOut { layer: 0 },
            |_, x, _| Ok(x.zeros_like()),
        );
        let logits = model
            .forward_with(
                &TokenBatch::single(&ids).unwrap(),
                None,
                &mut ProbeSet::one(&mut zero),
            )
            .unwrap();
        let (shape, expected) = reference(fixture, "intervene.logits");
        assert_close(
            &format!("{fixture} intervened logits"),
            &HostTensor::from_tensor(logits),
            &shape,
            &expected,
        );
    }
}

#[test]
fn sliding_window_perplexity_matches_hf() {
    for fixture in DECODERS {
        let model = load(fixture);
        let (_, stream) = reference_ids(fixture, "ppl.stream");
        let (_, nll) = reference(fixture, "ppl.nll_sum");
        let (_, n) = reference(fixture, "ppl.n_predicted");
        let got = perplexity(
            &model,
            &stream,
            &PerplexityConfig::new(16, 6).unwrap(),
            &mut ProbeSet::none(),
            &mut |_, _| {},
        )
        .unwrap();
        assert_eq!(
            got.n_predicted, n[0] as usize,
            "{fixture}: predicted tokens"
        );
        let rel = (got.nll_sum - nll[0]).abs() / nll[0].abs();
        assert!(
            rel < 1e-5,
            "{fixture}: nll {} vs HF {} (rel {rel:e})",
            got.nll_sum,
            nll[0]
        );
    }
}

#[test]
fn perplexity_of_two_shards_merges_to_the_whole() {
    let model = load("llama-tiny");
    let (_, stream) = reference_ids("llama-tiny", "ppl.stream");
    // Windows that do not overlap (stride = window) cut the stream into independent shards:
    // the run over the whole stream equals the merge of the runs over its two halves.
    let config = PerplexityConfig::new(20, 20).unwrap();
    let run = |tokens: &[u32]| {
        perplexity(
            &model,
            tokens,
            &config,
            &mut ProbeSet::none(),
            &mut |_, _| {},
        )
        .unwrap()
    };
    let (a, b) = stream.split_at(20);
    let whole = run(&stream);
    let merged = run(a).merge(run(b));
    assert_eq!(merged.n_predicted, whole.n_predicted);
    assert!(
        (merged.nll_sum - whole.nll_sum).abs() <= 1e-6 * whole.nll_sum.abs(),
        "merged {} vs whole {}",
        merged.nll_sum,
        whole.nll_sum
    );
}

#[test]
fn left_padded_batch_generation_equals_one_prompt_at_a_time() {
    for fixture in ["gpt2-tiny", "llama-tiny", "mistral-tiny"] {
        let model = load(fixture);
        let prompts = vec![
            vec![3, 14, 15, 9, 2, 6, 5],
            vec![35, 8],
            vec![97 % 96, 93, 23, 84],
        ];
        let batch = generate_batch(&model, &prompts, &greedy(6), &mut ProbeSet::none()).unwrap();
        for (prompt, got) in prompts.iter().zip(&batch) {
            let alone = generate(&model, prompt, &greedy(6), &mut ProbeSet::none()).unwrap();
            assert_eq!(got, &alone, "{fixture}: prompt {prompt:?}");
        }
    }
}

#[test]
fn seeded_sampling_is_reproducible_and_seed_dependent() {
    let model = load("qwen2-tiny");
    let cfg = |seed| GenerateConfig {
        max_new_tokens: 24,
        sampling: Sampling::TopP {
            temperature: 50.0,
            top_p: 1.0,
        },
        seed,
        eos_token_id: None,
    };
    let a = generate(&model, &[1, 2, 3], &cfg(7), &mut ProbeSet::none()).unwrap();
    let b = generate(&model, &[1, 2, 3], &cfg(7), &mut ProbeSet::none()).unwrap();
    let c = generate(&model, &[1, 2, 3], &cfg(8), &mut ProbeSet::none()).unwrap();
    assert_eq!(a, b);
    assert_ne!(a, c);
}

#[test]
fn an_observing_probe_leaves_the_forward_pass_unchanged() {
    let model = load("gpt-neox-tiny");
    let (_, ids) = reference_ids("gpt-neox-tiny", "input_ids");
    let batch = TokenBatch::single(&ids).unwrap();
    let plain = HostTensor::from_tensor(model.forward(&batch).unwrap());
    let mut n_calls = 0usize;
    let mut observe = FnProbe::<B, _>::new(
        |_| true,
        |_, x, _| {
            n_calls += 1;
            Ok(x)
        },
    );
    let probed = HostTensor::from_tensor(
        model
            .forward_with(&batch, None, &mut ProbeSet::one(&mut observe))
            .unwrap(),
    );
    drop(observe);
    // A probe at `attn.hook_pattern` needs the pattern, so attention takes the generic path
    // instead of the fused CPU kernel: the logits agree to rounding, not bit for bit.
    assert_eq!(plain.shape, probed.shape);
    let diff = plain
        .data
        .iter()
        .zip(&probed.data)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(diff < 1e-5, "the observed pass differs by {diff}");
    // Every rank-3 site (the pattern is seen through `hook_pattern`, not a closure).
    let rank3 = Site::all(model.config())
        .iter()
        .filter(|s| s.rank() == 3)
        .count();
    assert_eq!(n_calls, rank3);
}

#[test]
fn steering_at_one_position_during_cached_generation_sees_absolute_positions() {
    let model = load("llama-tiny");
    let mut positions_seen = Vec::new();
    let mut record = FnProbe::<B, _>::new(
        |site| site == Site::ResidPost { layer: 1 },
        |_, x, ctx| {
            positions_seen.push((ctx.n_cached, x.dims()[1], ctx.generation_step));
            Ok(x)
        },
    );
    generate(
        &model,
        &[5, 6, 7, 8],
        &greedy(3),
        &mut ProbeSet::one(&mut record),
    )
    .unwrap();
    drop(record);
    assert_eq!(
        positions_seen,
        vec![(0, 4, Some(0)), (4, 1, Some(1)), (5, 1, Some(2))]
    );
}

#[test]
fn sampler_frequencies_follow_the_tempered_nucleus() {
    use rand::SeedableRng;
    use strata_core::generate::choose;
    // Logits ln(1), ln(2), ln(3), ln(4): probabilities 0.1, 0.2, 0.3, 0.4 at temperature 1.
    let logits: Vec<f32> = (1..=4).map(|k| (k as f32).ln()).collect();
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    let n = 20_000;
    let mut counts = [0usize; 4];
    for _ in 0..n {
        counts[choose(
            &logits,
            Sampling::TopP {
                temperature: 1.0,
                top_p: 1.0,
            },
            &mut rng,
        ) as usize] += 1;
    }
    for (k, &c) in counts.iter().enumerate() {
        let expected = (k + 1) as f64 / 10.0;
        assert!(
            (c as f64 / n as f64 - expected).abs() < 0.015,
            "token {k}: {c} of {n}"
        );
    }
    // top_p = 0.6 keeps the smallest set reaching 0.6: tokens 3 (0.4) and 2 (0.3), renormalised 4:3.
    let mut counts = [0usize; 4];
    for _ in 0..n {
        counts[choose(
            &logits,
            Sampling::TopP {
                temperature: 1.0,
                top_p: 0.6,
            },
            &mut rng,
        ) as usize] += 1;
    }
    assert_eq!(
        counts[0] + counts[1],
        0,
        "tokens outside the nucleus are never drawn"
    );
    assert!((counts[3] as f64 / n as f64 - 4.0 / 7.0).abs() < 0.015);
    // Temperature 2 flattens: p_k proportional to sqrt(k).
    let mut counts = [0usize; 4];
    for _ in 0..n {
        counts[choose(
            &logits,
            Sampling::TopP {
                temperature: 2.0,
                top_p: 1.0,
            },
            &mut rng,
        ) as usize] += 1;
    }
    let z: f64 = (1..=4).map(|k| (k as f64).sqrt()).sum();
    for (k, &c) in counts.iter().enumerate() {
        let expected = ((k + 1) as f64).sqrt() / z;
        assert!(
            (c as f64 / n as f64 - expected).abs() < 0.015,
            "T=2 token {k}: {c} of {n}"
        );
    }
}

#[test]
fn a_skipped_layer_passes_its_input_through_for_the_chosen_tokens() {
    use strata_core::probe::{BlockSkip, Capture, LayerSkip};
    let model = load("gpt-neox-serial-tiny");
    let (_, ids) = reference_ids("gpt-neox-serial-tiny", "input_ids");
    let batch = TokenBatch::single(&ids).unwrap();
    // Skip block 1 for even positions only.
    let mut skip = LayerSkip::<B>::new(|layer, ctx| {
        Ok(if layer == 1 {
            BlockSkip::Tokens((0..ctx.n_pos).map(|p| p % 2 == 0).collect())
        } else {
            BlockSkip::Run
        })
    });
    let sites = [Site::ResidPost { layer: 0 }, Site::ResidPost { layer: 1 }];
    let mut capture = Capture::new(sites);
    model
        .forward_with(
            &batch,
            None,
            &mut ProbeSet::one(&mut skip).with(&mut capture),
        )
        .unwrap();
    let before = &capture.captured[&sites[0]];
    let after = &capture.captured[&sites[1]];
    // HF's own resid_post of block 1 (no skipping) for the odd positions.
    let (_, hf_after) = reference("gpt-neox-serial-tiny", "blocks.1.hook_resid_post");
    let d = model.config().d_model;
    for p in 0..ids.len() {
        let row = |t: &HostTensor| t.data[p * d..(p + 1) * d].to_vec();
        if p % 2 == 0 {
            assert_eq!(row(after), row(before), "position {p} is skipped");
        } else {
            assert_ne!(row(after), row(before), "position {p} runs block 1");
        }
    }
    // Position 0 attends only to itself, so odd-position outputs differ from HF's only via
    // skipped earlier tokens; position 1 sees position 0, which block 1 skipped but whose
    // keys come from block 1's unchanged input: block 1 at position 1 is exactly HF's.
    let got: Vec<f64> = after.data[d..2 * d].iter().map(|&x| x as f64).collect();
    let want = &hf_after[d..2 * d];
    let err = got
        .iter()
        .zip(want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(
        err <= common::tolerance(want),
        "position 1 after block 1: {err:e}"
    );
}

/// Position ids of a left-padded batch during cached generation: the count of real tokens
/// before each one, as transformers' `generate` computes them.
#[test]
fn hook_context_carries_true_positions_under_left_padding() {
    let model = load("llama-tiny");
    // (positions, padding mask, token ids) of each call.
    type Seen = (Vec<usize>, Option<Vec<bool>>, Vec<u32>);
    let mut seen: Vec<Seen> = Vec::new();
    let mut record = FnProbe::<B, _>::new(
        |site| site == Site::Embed,
        |_, x, ctx| {
            seen.push((
                ctx.positions.clone(),
                ctx.padding_mask.clone(),
                ctx.token_ids.clone(),
            ));
            Ok(x)
        },
    );
    let out = generate_batch(
        &model,
        &[vec![5, 6, 7], vec![9]],
        &greedy(2),
        &mut ProbeSet::one(&mut record),
    )
    .unwrap();
    drop(record);
    // Prompt pass: row 1 is left-padded by two slots.
    assert_eq!(seen[0].0, vec![0, 1, 2, 0, 0, 0]);
    assert_eq!(seen[0].1, Some(vec![true, true, true, false, false, true]));
    // Padding slots hold the pad id (the model's end-of-sequence token).
    let pad = model.config().eos_token_id.unwrap_or(0);
    assert_eq!(seen[0].2, vec![5, 6, 7, pad, pad, 9]);
    // Step 1: one new token per row, at positions 3 and 1.
    assert_eq!(seen[1].0, vec![3, 1]);
    assert_eq!(seen[1].1, None);
    assert_eq!(seen[1].2, vec![out[0][0], out[1][0]]);
}

/// A per-token skip rule evaluated at every generation step: no panic at any step, and a rule
/// that skips nothing gives exactly the plain model's tokens and logits.
#[test]
fn a_per_step_skip_rule_runs_through_generation() {
    use strata_core::probe::{BlockSkip, LayerSkip};
    let model = load("gpt-neox-serial-tiny");
    let prompt = [3u32, 1, 4, 1, 5];
    let plain = generate(&model, &prompt, &greedy(6), &mut ProbeSet::none()).unwrap();

    // A rule that answers with a per-token mask (all false) at every step.
    let mut n_asked = 0usize;
    let mut nothing = LayerSkip::<B>::new(|_layer, ctx| {
        n_asked += 1;
        Ok(BlockSkip::Tokens(vec![false; ctx.batch * ctx.n_pos]))
    });
    let same = generate(
        &model,
        &prompt,
        &greedy(6),
        &mut ProbeSet::one(&mut nothing),
    )
    .unwrap();
    drop(nothing);
    assert_eq!(same, plain);
    assert_eq!(
        n_asked,
        6 * model.config().n_layers,
        "asked per block per step"
    );

    // Logits are bit-identical with the no-op rule.
    let batch = TokenBatch::single(&prompt).unwrap();
    let mut nothing = LayerSkip::<B>::new(|_, ctx| Ok(BlockSkip::Tokens(vec![false; ctx.n_pos])));
    let a = HostTensor::from_tensor(model.forward(&batch).unwrap());
    let b = HostTensor::from_tensor(
        model
            .forward_with(&batch, None, &mut ProbeSet::one(&mut nothing))
            .unwrap(),
    );
    assert_eq!(a, b);

    // Skipping block 1 for every generated token (not the prompt) changes the continuation
    // but runs every step, and the prompt's own next token is unchanged.
    let mut skip_generated = LayerSkip::<B>::new(|layer, ctx| {
        Ok(
            if layer == 1 && ctx.generation_step.is_some_and(|s| s > 0) {
                BlockSkip::All
            } else {
                BlockSkip::Run
            },
        )
    });
    let skipped = generate(
        &model,
        &prompt,
        &greedy(6),
        &mut ProbeSet::one(&mut skip_generated),
    )
    .unwrap();
    assert_eq!(skipped.len(), 6);
    assert_eq!(skipped[0], plain[0]);
}

/// Skipping every block for every token makes the logits those of the embeddings alone:
/// `unembed(hook_embed)`, the same computation through `Model::unembed`.
#[test]
fn skipping_every_block_leaves_the_logit_lens_of_the_embedding() {
    use strata_core::probe::{Capture, LayerSkip};
    let model = load("llama-tiny");
    let (_, ids) = reference_ids("llama-tiny", "input_ids");
    let batch = TokenBatch::single(&ids).unwrap();
    let mut skip = LayerSkip::<B>::layers(0..model.config().n_layers);
    let mut capture = Capture::new([Site::Embed]);
    let logits = model
        .forward_with(
            &batch,
            None,
            &mut ProbeSet::one(&mut skip).with(&mut capture),
        )
        .unwrap();
    let embed = capture.captured[&Site::Embed].clone();
    let lens = model
        .unembed(embed.into_device::<B, 3>(&Default::default()))
        .unwrap();
    assert_eq!(
        HostTensor::from_tensor(logits),
        HostTensor::from_tensor(lens)
    );
}

/// The logit lens at the last block equals the model's own logits (HF's reference logits).
#[test]
fn unembedding_the_last_residual_gives_the_hf_logits() {
    use strata_core::probe::Capture;
    for fixture in DECODERS {
        let model = load(fixture);
        let (_, ids) = reference_ids(fixture, "input_ids");
        let last = Site::ResidPost {
            layer: model.config().n_layers - 1,
        };
        let mut capture = Capture::new([last]);
        model
            .forward_with(
                &TokenBatch::single(&ids).unwrap(),
                None,
                &mut ProbeSet::one(&mut capture),
            )
            .unwrap();
        let resid = capture.captured[&last].clone();
        let lens = model
            .unembed(resid.into_device::<B, 3>(&Default::default()))
            .unwrap();
        let (shape, expected) = reference(fixture, "logits");
        assert_close(
            &format!("{fixture} unembed(resid_post)"),
            &HostTensor::from_tensor(lens),
            &shape,
            &expected,
        );
    }
}

/// A probe that returns the wrong shape ends the forward pass with an error naming the site.
#[test]
fn a_probe_returning_the_wrong_shape_is_an_error_not_a_panic() {
    let model = load("gpt2-tiny");
    let mut bad = FnProbe::<B, _>::new(
        |site| site == Site::MlpOut { layer: 1 },
        |_, x, _| {
            let [b, p, d] = x.dims();
            Ok(x.slice([0..b, 0..p, 0..d / 2]))
        },
    );
    let err = model
        .forward_with(
            &TokenBatch::single(&[1, 2, 3]).unwrap(),
            None,
            &mut ProbeSet::one(&mut bad),
        )
        .unwrap_err()
        .to_string();
    assert!(err.contains("blocks.1.hook_mlp_out"), "{err}");
}

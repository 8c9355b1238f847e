//! strata-void against its references: the numpy maps of HF-captured residual streams
//! (`tests/fixtures/void/make_reference.py`), a synthetic deep stack where alpha matters,
//! the method note's worked example (unit test in `rule.rs`), the skipping variants'
//! invariants, and bad input.

use std::collections::BTreeMap;
use std::path::PathBuf;

use burn::backend::Flex;
use burn::tensor::{Tensor, TensorData};
use serde_json::Value;
use strata_core::generate::GenerateConfig;
use strata_core::probe::{Capture, FnProbe, HookContext, Probe, ProbeSet, Site};
use strata_core::weights::HostTensor;
use strata_core::{Model, PadSide, TokenBatch};
use strata_void::{
    Error, Phase, Skip, VoidConfig, VoidProbe, generate_with_voids, map_prompt,
    rarely_active_layers,
};

type B = Flex;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn reference() -> Value {
    let text = std::fs::read_to_string(root().join("tests/fixtures/void/reference.json"))
        .expect("tests/fixtures/void/reference.json");
    serde_json::from_str(&text).expect("valid reference json")
}

fn matrix_f64(v: &Value) -> Vec<Vec<f64>> {
    v.as_array()
        .expect("rows")
        .iter()
        .map(|row| {
            row.as_array()
                .expect("row")
                .iter()
                .map(|x| x.as_f64().expect("number"))
                .collect()
        })
        .collect()
}

/// The tolerance of every parity check (DESIGN.md): `1e-4 * max(1, max |ref|)`.
fn tolerance(reference: &[f64]) -> f64 {
    1e-4 * reference.iter().fold(1.0f64, |m, v| m.max(v.abs()))
}

fn config(alpha: f32, skip: Skip) -> VoidConfig {
    VoidConfig {
        alpha,
        skip,
        ..VoidConfig::default()
    }
}

fn tiny_default() -> Model<B> {
    Model::<B>::load(
        &root().join("datasets/models/tiny-default"),
        &Default::default(),
    )
    .expect("tiny default model loads")
}

fn prompt(model: &Model<B>) -> Vec<u32> {
    model
        .tokenizer()
        .expect("tokenizer")
        .encode("And God said, Let there be light: and there was light. And God saw the light")
        .expect("encodes")
}

/// Checks strata's maps of one family fixture against the numpy reference at every alpha.
fn check_family(family: &str) {
    let reference = reference();
    let fam = &reference["families"][family];
    let ids: Vec<u32> = fam["input_ids"]
        .as_array()
        .expect("ids")
        .iter()
        .map(|x| x.as_u64().expect("id") as u32)
        .collect();
    let model = Model::<B>::load(
        &root().join("tests/fixtures").join(family),
        &Default::default(),
    )
    .expect("fixture loads");
    let want_deltas = matrix_f64(&fam["deltas"]);
    let flat: Vec<f64> = want_deltas.iter().flatten().copied().collect();
    let tol = tolerance(&flat);
    for (alpha, maps) in fam["maps"].as_object().expect("maps") {
        let alpha: f32 = alpha.parse().expect("alpha");
        let result = map_prompt(&model, &ids, &config(alpha, Skip::Off)).expect("maps");
        assert_eq!(result.tokens.len(), ids.len(), "{family}");
        let want_active = matrix_f64(&maps["active"]);
        let want_thresholds = matrix_f64(&maps["thresholds"]);
        for (pos, token) in result.tokens.iter().enumerate() {
            assert_eq!(token.token_pos, pos);
            assert_eq!(token.phase, Phase::Prompt);
            for layer in 0..token.deltas.len() {
                let (got, want) = (f64::from(token.deltas[layer]), want_deltas[pos][layer]);
                assert!(
                    (got - want).abs() <= tol,
                    "{family} pos {pos} layer {layer}: delta {got} vs {want}"
                );
                let (got, want) = (
                    f64::from(token.thresholds[layer]),
                    want_thresholds[pos][layer],
                );
                assert!(
                    (got - want).abs() <= tol,
                    "{family} pos {pos} layer {layer}: threshold {got} vs {want}"
                );
                assert_eq!(
                    token.active[layer],
                    want_active[pos][layer] == 1.0,
                    "{family} alpha {alpha} pos {pos} layer {layer}"
                );
            }
        }
    }
}

#[test]
fn gpt2_maps_match_numpy() {
    check_family("gpt2-tiny");
}

#[test]
fn gpt_neox_maps_match_numpy() {
    check_family("gpt-neox-tiny");
}

#[test]
fn gpt_neox_serial_maps_match_numpy() {
    check_family("gpt-neox-serial-tiny");
}

#[test]
fn llama_maps_match_numpy() {
    check_family("llama-tiny");
}

#[test]
fn mistral_maps_match_numpy() {
    check_family("mistral-tiny");
}

#[test]
fn qwen2_maps_match_numpy() {
    check_family("qwen2-tiny");
}

/// The synthetic stack of `synthetic.safetensors`, as `[1, pos, d]` host tensors by site.
fn synthetic() -> BTreeMap<String, HostTensor> {
    let bytes = std::fs::read(root().join("tests/fixtures/void/synthetic.safetensors"))
        .expect("synthetic.safetensors");
    let st = safetensors::SafeTensors::deserialize(&bytes).expect("valid safetensors");
    st.tensors()
        .into_iter()
        .map(|(name, view)| {
            let data = view
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            (name, HostTensor::new(view.shape().to_vec(), data))
        })
        .collect()
}

/// Feeds the synthetic stack to a probe site by site, as a forward pass would, and returns
/// the tensor the probe hands on at the last block.
fn feed(
    probe: &mut VoidProbe<B>,
    stack: &BTreeMap<String, HostTensor>,
    n_layers: usize,
) -> HostTensor {
    let device = Default::default();
    let pre0 = &stack["blocks.0.hook_resid_pre"];
    let n_pos = pre0.shape[1];
    let ctx = HookContext::<B>::new(
        vec![0; n_pos],
        1,
        n_pos,
        (0..n_pos).collect(),
        None,
        &device,
    );
    let mut last = None;
    for layer in 0..n_layers {
        let get = |name: String| stack[&name].clone().into_device::<B, 3>(&device);
        probe
            .hook(
                Site::ResidPre { layer },
                get(format!("blocks.{layer}.hook_resid_pre")),
                &ctx,
            )
            .expect("resid_pre");
        let out = probe
            .hook(
                Site::ResidPost { layer },
                get(format!("blocks.{layer}.hook_resid_post")),
                &ctx,
            )
            .expect("resid_post");
        last = Some(HostTensor::from_tensor(out));
    }
    last.expect("at least one layer")
}

#[test]
fn a_deep_synthetic_stack_matches_numpy_at_every_alpha() {
    let reference = reference();
    let syn = &reference["synthetic"];
    let n_layers = syn["n_layers"].as_u64().expect("n_layers") as usize;
    let stack = synthetic();
    let mut n_active_by_alpha = Vec::new();
    for (alpha_name, maps) in syn["maps"].as_object().expect("maps") {
        let alpha: f32 = alpha_name.parse().expect("alpha");
        let want_active = matrix_f64(&maps["active"]);
        let want_thresholds = matrix_f64(&maps["thresholds"]);
        let tol = tolerance(
            &want_thresholds
                .iter()
                .flatten()
                .copied()
                .collect::<Vec<_>>(),
        );
        // Measure only.
        let mut probe = VoidProbe::<B>::new(n_layers, config(alpha, Skip::Off)).expect("probe");
        feed(&mut probe, &stack, n_layers);
        let result = probe.into_result();
        let mut n_active = 0;
        for (pos, token) in result.tokens.iter().enumerate() {
            for layer in 0..n_layers {
                assert_eq!(
                    token.active[layer],
                    want_active[pos][layer] == 1.0,
                    "alpha {alpha} pos {pos} layer {layer}"
                );
                let got = f64::from(token.thresholds[layer]);
                assert!((got - want_thresholds[pos][layer]).abs() <= tol);
                n_active += usize::from(token.active[layer]);
            }
        }
        assert_eq!(
            result.prompt.n_active.iter().sum::<u64>() as usize,
            n_active
        );
        n_active_by_alpha.push(n_active);
        // Variant A: the state handed on at the last block is each token's output of its
        // deepest active layer (the embedding if none).
        let mut probe =
            VoidProbe::<B>::new(n_layers, config(alpha, Skip::DeepestActive)).expect("probe");
        let out = feed(&mut probe, &stack, n_layers);
        let d = out.shape[2];
        for (pos, deepest) in maps["deepest_active"]
            .as_array()
            .expect("deepest")
            .iter()
            .enumerate()
        {
            let deepest = deepest.as_i64().expect("index");
            let source = if deepest < 0 {
                "blocks.0.hook_resid_pre".to_string()
            } else {
                format!("blocks.{deepest}.hook_resid_post")
            };
            let want = &stack[&source].data[pos * d..(pos + 1) * d];
            assert_eq!(
                &out.data[pos * d..(pos + 1) * d],
                want,
                "alpha {alpha} pos {pos}"
            );
        }
    }
    // Usage falls as alpha rises, and alpha matters on this stack.
    assert!(
        n_active_by_alpha.windows(2).all(|w| w[0] >= w[1]),
        "{n_active_by_alpha:?}"
    );
    assert!(n_active_by_alpha[0] > n_active_by_alpha[n_active_by_alpha.len() - 1]);
}

fn logits(model: &Model<B>, ids: &[u32], probes: &mut ProbeSet<'_, B>) -> HostTensor {
    let batch = TokenBatch::single(ids).expect("batch");
    HostTensor::from_tensor(model.forward_with(&batch, None, probes).expect("forward"))
}

#[test]
fn measuring_and_a_skip_rule_that_skips_nothing_leave_the_logits_unchanged() {
    let model = tiny_default();
    let ids = prompt(&model);
    let plain = logits(&model, &ids, &mut ProbeSet::none());
    for skip in [Skip::Off, Skip::DeepestActive, Skip::PassThrough] {
        // alpha 0 with every layer active would be the full model too; here nothing is
        // compute-skipped and voids are only measured or, for A and B, applied where found.
        let mut probe =
            VoidProbe::<B>::new(model.config().n_layers, config(0.8, skip)).expect("probe");
        let got = logits(&model, &ids, &mut ProbeSet::one(&mut probe));
        let result = probe.into_result();
        let all_active = result.tokens.iter().all(|t| t.active.iter().all(|&a| a));
        if skip == Skip::Off || all_active {
            assert_eq!(got.data, plain.data, "{skip:?}");
        }
    }
    // An empty compute-skip list is a rule that skips nothing.
    let mut probe =
        VoidProbe::<B>::new(model.config().n_layers, VoidConfig::default()).expect("probe");
    let got = logits(&model, &ids, &mut ProbeSet::one(&mut probe));
    assert_eq!(got.data, plain.data);
}

#[test]
fn variant_a_changes_exactly_the_tokens_whose_last_layer_is_a_void() {
    let model = tiny_default();
    let ids = prompt(&model);
    let plain = logits(&model, &ids, &mut ProbeSet::none());
    let vocab = plain.shape[2];
    let mut n_changed = 0;
    for alpha in [0.0f32, 0.4, 0.8, 1.0] {
        let mut probe =
            VoidProbe::<B>::new(model.config().n_layers, config(alpha, Skip::DeepestActive))
                .expect("probe");
        let got = logits(&model, &ids, &mut ProbeSet::one(&mut probe));
        let result = probe.into_result();
        for token in &result.tokens {
            let p = token.token_pos;
            let row = |t: &HostTensor| t.data[p * vocab..(p + 1) * vocab].to_vec();
            if token.active.last() == Some(&true) {
                assert_eq!(
                    row(&got),
                    row(&plain),
                    "alpha {alpha} pos {p}: last layer active"
                );
            } else {
                assert_ne!(
                    row(&got),
                    row(&plain),
                    "alpha {alpha} pos {p}: last layer void"
                );
                n_changed += 1;
            }
        }
    }
    assert!(
        n_changed > 0,
        "no token of the prompt ends in a void at any alpha"
    );
}

#[test]
fn variant_b_passes_a_void_layers_input_on() {
    let model = tiny_default();
    let ids = prompt(&model);
    let n_layers = model.config().n_layers;
    let mut probe = VoidProbe::<B>::new(n_layers, config(0.8, Skip::PassThrough)).expect("probe");
    let sites: Vec<Site> = (0..n_layers)
        .flat_map(|layer| [Site::ResidPre { layer }, Site::ResidPost { layer }])
        .collect();
    let mut capture = Capture::new(sites);
    let batch = TokenBatch::single(&ids).expect("batch");
    let plain = logits(&model, &ids, &mut ProbeSet::none());
    let out = model
        .forward_with(
            &batch,
            None,
            &mut ProbeSet::one(&mut probe).with(&mut capture),
        )
        .expect("forward");
    let result = probe.into_result();
    let d = model.config().d_model;
    let mut n_void = 0;
    for token in &result.tokens {
        let p = token.token_pos;
        for layer in 0..n_layers {
            let pre = &capture.captured[&Site::ResidPre { layer }].data[p * d..(p + 1) * d];
            let post = &capture.captured[&Site::ResidPost { layer }].data[p * d..(p + 1) * d];
            if !token.active[layer] {
                assert_eq!(
                    pre, post,
                    "pos {p} layer {layer}: a void passes its input on"
                );
                n_void += 1;
            }
        }
    }
    assert!(n_void > 0, "alpha 0.8 finds no void in the prompt");
    assert_ne!(HostTensor::from_tensor(out).data, plain.data);
}

#[test]
fn compute_skipping_runs_fewer_blocks_and_only_after_the_prompt() {
    let model = tiny_default();
    let ids = prompt(&model);
    let n_layers = model.config().n_layers;
    let generate = GenerateConfig {
        max_new_tokens: 6,
        ..GenerateConfig::default()
    };
    // Blocks that ran: their attention output is computed only when the block runs.
    let count = |compute_skip: Vec<usize>| {
        let mut runs: BTreeMap<(usize, usize), usize> = BTreeMap::new();
        let mut step = 0usize;
        let mut counter = FnProbe::new(
            |site| matches!(site, Site::AttnOut { .. }),
            |site, x: Tensor<B, 3>, ctx: &HookContext<B>| {
                if let Site::AttnOut { layer } = site {
                    step = ctx.generation_step.unwrap_or(0);
                    *runs.entry((step, layer)).or_default() += 1;
                }
                Ok(x)
            },
        );
        let cfg = VoidConfig {
            compute_skip,
            ..VoidConfig::default()
        };
        let mut probe = VoidProbe::<B>::new(n_layers, cfg).expect("probe");
        let new = strata_core::generate::generate(
            &model,
            &ids,
            &generate,
            &mut ProbeSet::one(&mut probe).with(&mut counter),
        )
        .expect("generates");
        drop(counter);
        (runs, new, probe.into_result())
    };
    let (full, full_tokens, _) = count(Vec::new());
    let (skipped, _, result) = count(vec![1, 2]);
    let n_steps = full_tokens.len();
    assert_eq!(full.len(), n_steps * n_layers);
    for step in 0..n_steps {
        for layer in 0..n_layers {
            let ran = skipped.contains_key(&(step, layer));
            assert_eq!(
                ran,
                step == 0 || !(layer == 1 || layer == 2),
                "step {step} layer {layer}"
            );
        }
    }
    // The skipped blocks are recorded as skipped voids of the generated tokens.
    assert_eq!(
        result.generation.n_skipped,
        vec![0, result.generation.n_tokens, result.generation.n_tokens, 0]
    );
    assert_eq!(result.prompt.n_skipped.iter().sum::<u64>(), 0);
    for token in result
        .tokens
        .iter()
        .filter(|t| t.phase == Phase::Generation)
    {
        assert!(token.skipped[1] && token.skipped[2] && !token.active[1] && !token.active[2]);
    }
}

#[test]
fn generation_maps_hold_both_phases() {
    let model = tiny_default();
    let ids = prompt(&model);
    let generate = GenerateConfig {
        max_new_tokens: 5,
        ..GenerateConfig::default()
    };
    let (new, result) =
        generate_with_voids(&model, &ids, &generate, &VoidConfig::default()).expect("generates");
    assert_eq!(result.prompt.n_tokens as usize, ids.len());
    // The last new token is chosen from the last pass and never fed back.
    assert_eq!(result.generation.n_tokens as usize, new.len() - 1);
    let gen_pos: Vec<usize> = result
        .tokens
        .iter()
        .filter(|t| t.phase == Phase::Generation)
        .map(|t| t.token_pos)
        .collect();
    assert_eq!(
        gen_pos,
        (ids.len()..ids.len() + new.len() - 1).collect::<Vec<_>>()
    );
    let fed: Vec<u32> = result
        .tokens
        .iter()
        .filter(|t| t.phase == Phase::Generation)
        .map(|t| t.token_id)
        .collect();
    assert_eq!(fed, new[..new.len() - 1]);
    let usage = result.prompt.usage();
    assert!((0.0..=1.0).contains(&usage));
    let rare = rarely_active_layers(&result.prompt, 1.0).expect("layers");
    assert_eq!(
        rare.len(),
        result
            .prompt
            .layer_usage()
            .iter()
            .filter(|&&u| u < 1.0)
            .count()
    );
}

#[test]
fn padded_batch_rows_are_measured_as_if_alone() {
    let model = tiny_default();
    let long = prompt(&model);
    let short = long[..5].to_vec();
    let rows = vec![long.clone(), short.clone()];
    let n_layers = model.config().n_layers;
    for side in [PadSide::Right, PadSide::Left] {
        let batch = TokenBatch::padded(&rows, 0, side).expect("batch");
        let mut probe = VoidProbe::<B>::new(n_layers, config(0.6, Skip::Off)).expect("probe");
        model
            .forward_with(&batch, None, &mut ProbeSet::one(&mut probe))
            .expect("forward");
        let together = probe.into_result();
        assert_eq!(together.prompt.n_tokens as usize, long.len() + short.len());
        for (row, ids) in rows.iter().enumerate() {
            let alone = map_prompt(&model, ids, &config(0.6, Skip::Off)).expect("alone");
            let got: Vec<_> = together.tokens.iter().filter(|t| t.row == row).collect();
            assert_eq!(got.len(), alone.tokens.len());
            for (a, b) in got.iter().zip(&alone.tokens) {
                assert_eq!(a.token_pos, b.token_pos);
                assert_eq!(a.active, b.active, "{side:?} row {row} pos {}", a.token_pos);
                for (x, y) in a.deltas.iter().zip(&b.deltas) {
                    assert!((x - y).abs() <= 1e-4 * y.abs().max(1.0), "{x} vs {y}");
                }
            }
        }
    }
}

#[test]
fn bad_input_is_refused_with_a_clear_error() {
    let model = tiny_default();
    let ids = prompt(&model);
    for alpha in [-0.5f32, 1.2, f32::NAN] {
        let err = map_prompt(&model, &ids, &config(alpha, Skip::Off)).unwrap_err();
        assert!(matches!(err, Error::Alpha { .. }), "{err}");
        assert!(err.to_string().contains("outside [0, 1]"), "{err}");
    }
    let err = map_prompt(&model, &[], &VoidConfig::default()).unwrap_err();
    assert!(err.to_string().contains("empty prompt"), "{err}");
    let err = VoidProbe::<B>::new(1, VoidConfig::default()).unwrap_err();
    assert!(
        matches!(
            err,
            Error::TooShallow {
                n_layers: 1,
                min: 2
            }
        ),
        "{err}"
    );
    let cfg = VoidConfig {
        compute_skip: vec![9],
        ..VoidConfig::default()
    };
    let err = VoidProbe::<B>::new(4, cfg).unwrap_err();
    assert!(err.to_string().contains("layer 9 does not exist"), "{err}");
    let err = map_prompt(&model, &[5000], &VoidConfig::default()).unwrap_err();
    assert!(err.to_string().contains("5000"), "{err}");
    // A task file with a malformed item names the file and line.
    let path = std::env::temp_dir().join(format!("strata-void-bad-{}.jsonl", std::process::id()));
    std::fs::write(
        &path,
        "{\"context\": \"a\", \"choices\": [\" b\", \" c\"], \"answer\": 0}\n{\"context\": \"a\", \"choices\": [\" b\"], \"answer\": 0}\n",
    )
    .expect("write");
    let err = strata_core::eval::read_task_file(&path).unwrap_err();
    assert!(err.to_string().contains("line 2"), "{err}");
    std::fs::remove_file(&path).expect("remove");
    // Blocks out of order are an error, not a panic.
    let mut probe = VoidProbe::<B>::new(4, VoidConfig::default()).expect("probe");
    let device = Default::default();
    let ctx = HookContext::<B>::new(vec![0], 1, 1, vec![0], None, &device);
    let x = Tensor::<B, 3>::from_data(TensorData::new(vec![1.0f32, 2.0], [1, 1, 2]), &device);
    let err = probe
        .hook(Site::ResidPost { layer: 2 }, x.clone(), &ctx)
        .unwrap_err();
    assert!(
        err.to_string().contains("blocks.2.hook_resid_post"),
        "{err}"
    );
    let nan = Tensor::<B, 3>::from_data(TensorData::new(vec![f32::NAN, 2.0], [1, 1, 2]), &device);
    let err = probe
        .hook(Site::ResidPre { layer: 0 }, nan, &ctx)
        .unwrap_err();
    assert!(err.to_string().contains("finite"), "{err}");
}

#[test]
fn merged_shards_equal_one_run_over_both() {
    use strata_core::probe::Merge;
    let model = tiny_default();
    let first = prompt(&model);
    let second: Vec<u32> = first.iter().rev().copied().collect();
    let cfg = config(0.6, Skip::Off);
    let mut probe = VoidProbe::<B>::new(model.config().n_layers, cfg.clone()).expect("probe");
    for ids in [&first, &second] {
        let batch = TokenBatch::single(ids).expect("batch");
        model
            .forward_with(&batch, None, &mut ProbeSet::one(&mut probe))
            .expect("forward");
    }
    let together = probe.into_result();
    let merged = map_prompt(&model, &first, &cfg)
        .expect("first")
        .merge(map_prompt(&model, &second, &cfg).expect("second"));
    assert_eq!(merged, together);
    assert_eq!(together.n_calls, 2);
    assert_eq!(
        together.prompt.n_tokens as usize,
        first.len() + second.len()
    );
}

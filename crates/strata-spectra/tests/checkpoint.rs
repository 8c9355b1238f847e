//! Whole-checkpoint runs on small safetensors files written by the test: streaming, the
//! candidate filter, bf16 upcast, bad tensors reported by name, and clear errors.

mod common;

use std::path::{Path, PathBuf};

use common::{gaussian, rel_err, rng};
use safetensors::{Dtype, tensor::TensorView};
use strata_spectra::{
    Error, SpectraConfig, SpectraResult, TensorStatus, UnitPart, analyze_matrix, analyze_path,
    analyze_tensors,
};

/// A fresh scratch folder for one test.
fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("strata-spectra-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir is writable");
    dir
}

/// Writes `tensors` (name, shape, dtype, little-endian bytes) as `dir/model.safetensors`.
fn write_model(dir: &Path, tensors: &[(&str, Vec<usize>, Dtype, Vec<u8>)]) {
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .map(|(name, shape, dtype, bytes)| {
            let view = TensorView::new(*dtype, shape.clone(), bytes).expect("consistent tensor");
            (name.to_string(), view)
        })
        .collect();
    safetensors::serialize_to_file(views, None, &dir.join("model.safetensors"))
        .expect("writes safetensors");
}

fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn bf16_bytes(values: &[f32]) -> Vec<u8> {
    values
        .iter()
        .flat_map(|v| half::bf16::from_f32(*v).to_le_bytes())
        .collect()
}

/// A GPT-2-like toy checkpoint: two layers, embeddings, biases, a NaN tensor.
fn toy_model(dir: &Path) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    let mut g = rng(21);
    let mut matrices = Vec::new();
    for layer in 0..2 {
        matrices.push((
            format!("h.{layer}.attn.c_attn.weight"),
            vec![8, 24],
            gaussian(&mut g, 8, 24),
        ));
        matrices.push((
            format!("h.{layer}.mlp.c_fc.weight"),
            vec![8, 32],
            gaussian(&mut g, 8, 32),
        ));
    }
    let mut nan = gaussian(&mut g, 32, 8);
    nan[5] = f32::NAN;
    matrices.push(("h.1.mlp.c_proj.weight".into(), vec![32, 8], nan));
    let wte = gaussian(&mut g, 50, 8);
    let bias = gaussian(&mut g, 1, 24);

    let mut tensors: Vec<(&str, Vec<usize>, Dtype, Vec<u8>)> = matrices
        .iter()
        .map(|(n, s, d)| (n.as_str(), s.clone(), Dtype::F32, f32_bytes(d)))
        .collect();
    tensors.push(("wte.weight", vec![50, 8], Dtype::F32, f32_bytes(&wte)));
    tensors.push((
        "h.0.attn.c_attn.bias",
        vec![24],
        Dtype::F32,
        f32_bytes(&bias),
    ));
    write_model(dir, &tensors);
    matrices
}

#[test]
fn checkpoint_is_analysed_tensor_by_tensor_with_bad_tensors_named() {
    let dir = scratch("toy");
    let matrices = toy_model(&dir);
    let config = SpectraConfig {
        n_threads: Some(2),
        ..SpectraConfig::default()
    };
    let result = analyze_path(&dir, &config, None).expect("toy model analyses");

    // Embedding and bias skipped with reasons; five matrices analysed, in name order.
    let skipped: Vec<&str> = result.skipped.iter().map(|s| s.tensor.as_str()).collect();
    assert_eq!(skipped, ["h.0.attn.c_attn.bias", "wte.weight"]);
    assert!(result.skipped[1].reason.contains("embedding"));
    let names: Vec<&str> = result.units.iter().map(|u| u.unit.as_str()).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
    assert_eq!(result.units.len(), 5);

    // The NaN tensor is marked by name; the others have the same metrics as in memory.
    let bad = result.unit("h.1.mlp.c_proj.weight").expect("listed");
    assert_eq!(bad.status, TensorStatus::NonFinite { n_nan: 1, n_inf: 0 });
    assert_eq!(result.failed_units().count(), 1);
    for (name, shape, data) in &matrices[..4] {
        let unit = result.unit(name).expect("analysed");
        let expected = analyze_matrix(name, shape[0], shape[1], data, &config).expect("ok");
        assert_eq!(unit.metrics, expected.metrics, "{name}");
        assert_eq!(unit.layer_idx, Some(name[2..3].parse().unwrap()));
    }
    assert_eq!(
        result.unit("h.0.mlp.c_fc.weight").unwrap().module_type,
        "mlp.c_fc"
    );

    // The JSON result round-trips.
    let path = dir.join("spectra.json");
    result.save_json(&path).expect("writes");
    assert_eq!(SpectraResult::load_json(&path).expect("reads"), result);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn progress_is_reported_once_per_tensor() {
    let dir = scratch("progress");
    toy_model(&dir);
    let seen = std::sync::Mutex::new(Vec::new());
    let callback = |p: strata_spectra::Progress<'_>| {
        seen.lock()
            .unwrap()
            .push((p.n_done, p.n_total, p.tensor.to_string()));
    };
    analyze_path(&dir, &SpectraConfig::default(), Some(&callback)).expect("analyses");
    let mut seen = seen.into_inner().unwrap();
    seen.sort();
    let done: Vec<usize> = seen.iter().map(|s| s.0).collect();
    assert_eq!(done, [1, 2, 3, 4, 5]);
    assert!(seen.iter().all(|s| s.1 == 5));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn bf16_weights_are_upcast_before_the_spectrum() {
    let dir = scratch("bf16");
    let mut g = rng(22);
    let w = gaussian(&mut g, 16, 40);
    write_model(
        &dir,
        &[(
            "layers.0.mlp.up_proj.weight",
            vec![16, 40],
            Dtype::BF16,
            bf16_bytes(&w),
        )],
    );
    let result = analyze_path(&dir, &SpectraConfig::default(), None).expect("analyses");
    let unit = &result.units[0];
    assert_eq!(unit.dtype, "BF16");
    // Reference: the same bf16-rounded values analysed in f32.
    let rounded: Vec<f32> = w
        .iter()
        .map(|v| half::bf16::from_f32(*v).to_f32())
        .collect();
    let expected = analyze_matrix("w", 16, 40, &rounded, &SpectraConfig::default()).unwrap();
    let (a, b) = (
        unit.metrics.as_ref().unwrap(),
        expected.metrics.as_ref().unwrap(),
    );
    assert!(rel_err(a.kappa, b.kappa) < 1e-12);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn non_safetensors_file_is_a_clear_error() {
    let dir = scratch("notweights");
    let path = dir.join("model.safetensors");
    std::fs::write(&path, b"this is not a safetensors file").unwrap();
    let err = analyze_path(&path, &SpectraConfig::default(), None).unwrap_err();
    assert!(matches!(err, Error::Open { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("model.safetensors"), "{message}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn missing_folder_is_a_clear_error() {
    let err = analyze_path(
        Path::new("/nonexistent/strata/model"),
        &SpectraConfig::default(),
        None,
    )
    .unwrap_err();
    assert!(matches!(err, Error::Open { .. }));
    assert!(
        err.to_string().contains("/nonexistent/strata/model"),
        "{err}"
    );
}

#[test]
fn folder_without_matrices_is_a_clear_error() {
    let dir = scratch("nomatrices");
    write_model(
        &dir,
        &[
            ("ln_f.weight", vec![8], Dtype::F32, f32_bytes(&[1.0; 8])),
            ("wte.weight", vec![10, 8], Dtype::F32, f32_bytes(&[0.5; 80])),
        ],
    );
    let err = analyze_path(&dir, &SpectraConfig::default(), None).unwrap_err();
    match &err {
        Error::NoMatrices {
            n_tensors,
            n_skipped,
            ..
        } => {
            assert_eq!((*n_tensors, *n_skipped), (2, 2));
        }
        other => panic!("expected NoMatrices, got {other:?}"),
    }
    assert!(err.to_string().contains("no 2-D weight tensors"), "{err}");
    // The kappatune convention ranks embeddings, so the same folder has one unit.
    let result = analyze_path(&dir, &SpectraConfig::kappatune(), None).expect("embedding analysed");
    assert_eq!(result.units.len(), 1);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn expert_tensors_are_scored_per_expert_or_as_their_mean() {
    let mut g = rng(23);
    let (n_experts, rows, cols) = (3, 6, 10);
    let data = gaussian(&mut g, n_experts * rows, cols);
    let tensors = vec![(
        "layers.0.mlp.experts.down_proj".to_string(),
        vec![n_experts, rows, cols],
        data.clone(),
    )];

    let per_expert = analyze_tensors(&tensors, &SpectraConfig::strata()).unwrap();
    assert_eq!(per_expert.units.len(), n_experts);
    let mut kappas = Vec::new();
    for (e, unit) in per_expert.units.iter().enumerate() {
        assert_eq!(unit.part, UnitPart::Expert { expert_idx: e });
        assert_eq!(
            unit.unit,
            format!("layers.0.mlp.experts.down_proj[expert={e}]")
        );
        let slice = &data[e * rows * cols..(e + 1) * rows * cols];
        let expected =
            analyze_matrix("slice", rows, cols, slice, &SpectraConfig::strata()).unwrap();
        assert_eq!(unit.kappa(), expected.kappa());
        kappas.push(expected.kappa().unwrap());
    }

    let fused = analyze_tensors(&tensors, &SpectraConfig::peft()).unwrap();
    assert_eq!(fused.units.len(), 1);
    assert_eq!(fused.units[0].part, UnitPart::ExpertMean { n_experts });
    let mean = kappas.iter().sum::<f64>() / n_experts as f64;
    // The peft floor is additive (1e-8): the same kappas up to that floor.
    assert!(rel_err(fused.units[0].kappa().unwrap(), mean) < 1e-6);

    let skipped = analyze_tensors(&tensors, &SpectraConfig::kappatune()).unwrap();
    assert!(skipped.units.is_empty());
    assert_eq!(skipped.skipped.len(), 1);
}

#[test]
fn fused_qkv_is_split_into_its_blocks_when_asked() {
    let mut g = rng(24);
    let d = 6;
    let data = gaussian(&mut g, d, 3 * d);
    let name = "h.0.attn.c_attn.weight".to_string();
    let config = SpectraConfig {
        split_fused_qkv: true,
        ..SpectraConfig::default()
    };
    let result = analyze_tensors(&[(name.clone(), vec![d, 3 * d], data.clone())], &config).unwrap();
    let parts: Vec<UnitPart> = result.units.iter().map(|u| u.part).collect();
    assert_eq!(
        parts,
        [
            UnitPart::Whole,
            UnitPart::Query,
            UnitPart::Key,
            UnitPart::Value
        ]
    );
    for (j, unit) in result.units[1..].iter().enumerate() {
        let block: Vec<f32> = (0..d)
            .flat_map(|r| data[r * 3 * d + j * d..r * 3 * d + (j + 1) * d].to_vec())
            .collect();
        let expected = analyze_matrix("block", d, d, &block, &config).unwrap();
        assert_eq!(unit.kappa(), expected.kappa(), "block {j}");
        assert_eq!((unit.rows, unit.cols), (d, d));
    }
}

#[test]
fn neox_query_key_value_is_deinterleaved_per_head() {
    let mut g = rng(25);
    let (n_heads, d_head, d_model) = (2, 3, 6);
    let rows = 3 * n_heads * d_head;
    let data = gaussian(&mut g, rows, d_model);
    let config = SpectraConfig {
        split_fused_qkv: true,
        n_heads: Some(n_heads),
        ..SpectraConfig::default()
    };
    let name = "gpt_neox.layers.0.attention.query_key_value.weight".to_string();
    let result = analyze_tensors(&[(name, vec![rows, d_model], data.clone())], &config).unwrap();
    assert_eq!(result.units.len(), 4);
    // Query rows: head h, block 0 -> rows h*9 .. h*9+3.
    let query: Vec<f32> = [0usize, 9]
        .iter()
        .flat_map(|&start| data[start * d_model..(start + d_head) * d_model].to_vec())
        .collect();
    let expected = analyze_matrix("q", n_heads * d_head, d_model, &query, &config).unwrap();
    assert_eq!(result.units[1].kappa(), expected.kappa());
}

#[test]
fn memory_bound_lowers_the_thread_count_not_the_results() {
    let dir = scratch("membound");
    toy_model(&dir);
    // 8 x 32 f32: 1 KiB of values, 2 KiB as f64, 8 x 8 f64 Gram: 3584 bytes.
    assert_eq!(
        SpectraConfig::working_set_bytes(&[8, 32]),
        1024 + 2048 + 512
    );
    assert_eq!(
        SpectraConfig::working_set_bytes(&[3, 8, 32]),
        3072 + 2048 + 512
    );
    let free = SpectraConfig {
        n_threads: Some(2),
        max_in_flight_bytes: None,
        ..SpectraConfig::default()
    };
    let bounded = SpectraConfig {
        max_in_flight_bytes: Some(1),
        ..free.clone()
    };
    let a = analyze_path(&dir, &free, None).unwrap();
    let b = analyze_path(&dir, &bounded, None).unwrap();
    assert_eq!(a.units, b.units);
    std::fs::remove_dir_all(&dir).ok();
}

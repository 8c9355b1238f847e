//! The driver: plan the units of a checkpoint, stream its tensors one at a time, and compute
//! every unit's spectrum on a pool of worker threads.

use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use strata_core::models::{GgufModel, is_gguf};
use strata_core::weights::{WeightSource, WeightStore};

use crate::config::{ExpertUnits, SpectraConfig};
use crate::error::{Error, Result};
use crate::metrics::SpectrumMetrics;
use crate::result::{SpectraResult, TensorSpectrum, TensorStatus, UnitPart};
use crate::spectrum::compute_spectrum;
use crate::units::{PlannedTensor, UnitMatrix, layer_and_module_type, plan, split_qkv};

/// Progress of a run, handed to the callback after each tensor.
#[derive(Debug, Clone, Copy)]
pub struct Progress<'a> {
    /// Tensors finished so far.
    pub n_done: usize,
    /// Tensors to analyse in total.
    pub n_total: usize,
    /// The tensor just finished.
    pub tensor: &'a str,
}

/// A progress callback; called from worker threads.
pub type ProgressFn<'a> = &'a (dyn Fn(Progress<'_>) + Sync);

/// Analyses every weight tensor of a model folder, a `.safetensors` file or a `.gguf` file.
///
/// Tensors are read one at a time per worker thread (memory-mapped, f16/bf16 widened to
/// f32), so peak memory is about `n_threads` times the working set of the largest tensor
/// ([`SpectraConfig::working_set_bytes`], about 3x its f32 size), never the model; the thread
/// count is lowered to keep that under [`SpectraConfig::max_in_flight_bytes`].
///
/// When `config.split_fused_qkv` is set and `config.n_heads` is not, the head count is read
/// from the folder's `config.json` (`num_attention_heads` or `n_head`) if there is one.
pub fn analyze_path(
    path: &Path,
    config: &SpectraConfig,
    progress: Option<ProgressFn<'_>>,
) -> Result<SpectraResult> {
    let open_error = |source| Error::Open {
        path: path.to_path_buf(),
        source: Box::new(source),
    };
    let mut config = config.clone();
    if is_gguf(path) && path.is_file() {
        // A GGUF's tensors, dequantized, under their Hugging Face names.
        let gguf = GgufModel::open(path).map_err(open_error)?;
        return analyze_store(&gguf.source, path, &config, progress);
    }
    let store = WeightStore::open(path).map_err(open_error)?;
    if config.split_fused_qkv && config.n_heads.is_none() {
        config.n_heads = read_n_heads(path);
    }
    analyze_store(&store, path, &config, progress)
}

/// Analyses open weights (safetensors, or a GGUF file's); `path` names them in errors and in
/// the result.
pub fn analyze_store(
    store: &dyn WeightSource,
    path: &Path,
    config: &SpectraConfig,
    progress: Option<ProgressFn<'_>>,
) -> Result<SpectraResult> {
    let names = store.names();
    let mut infos = Vec::with_capacity(names.len());
    for name in &names {
        let info = store.info(name).map_err(|source| Error::Read {
            path: path.to_path_buf(),
            tensor: name.clone(),
            source: Box::new(source),
        })?;
        infos.push((name.clone(), info.shape, info.dtype));
    }
    let plan = plan(infos, config);
    if plan.tensors.is_empty() {
        return Err(Error::NoMatrices {
            path: path.to_path_buf(),
            n_tensors: names.len(),
            n_skipped: plan.skipped.len(),
            first_skip: plan
                .skipped
                .first()
                .map(|s| format!("`{}`: {}", s.tensor, s.reason))
                .unwrap_or_else(|| "none".into()),
        });
    }
    tracing::info!(
        model = %path.display(),
        n_tensors = plan.tensors.len(),
        n_skipped = plan.skipped.len(),
        "computing spectra"
    );
    let units = run_parallel(&plan.tensors, config, progress, |tensor| {
        match store.read_f32(&tensor.name) {
            Ok(host) => analyze_tensor(tensor, &host.data, config),
            Err(e) => {
                tracing::warn!(tensor = %tensor.name, error = %e, "tensor unreadable");
                vec![failed_unit(
                    tensor,
                    UnitPart::Whole,
                    TensorStatus::Unreadable {
                        message: e.to_string(),
                    },
                )]
            }
        }
    });
    Ok(SpectraResult {
        model: Some(path.display().to_string()),
        config: config.clone(),
        n_tensors: names.len(),
        units,
        skipped: plan.skipped,
    })
}

/// Analyses named in-memory tensors (shape and row-major values), as [`analyze_path`] does
/// for a checkpoint.
pub fn analyze_tensors(
    tensors: &[(String, Vec<usize>, Vec<f32>)],
    config: &SpectraConfig,
) -> Result<SpectraResult> {
    for (name, shape, data) in tensors {
        let expected: usize = shape.iter().product();
        if expected != data.len() {
            return Err(Error::MatrixShape {
                name: name.clone(),
                rows: shape.first().copied().unwrap_or(0),
                cols: shape.iter().skip(1).product(),
                n_values: data.len(),
            });
        }
    }
    let plan = plan(
        tensors
            .iter()
            .map(|(n, s, _)| (n.clone(), s.clone(), "F32".to_string())),
        config,
    );
    let units = run_parallel(&plan.tensors, config, None, |tensor| {
        let (_, _, data) = tensors
            .iter()
            .find(|(n, _, _)| *n == tensor.name)
            .expect("planned tensors come from the input");
        analyze_tensor(tensor, data, config)
    });
    Ok(SpectraResult {
        model: None,
        config: config.clone(),
        n_tensors: tensors.len(),
        units,
        skipped: plan.skipped,
    })
}

/// Analyses one in-memory row-major `[rows, cols]` matrix as a single whole unit.
pub fn analyze_matrix(
    name: &str,
    rows: usize,
    cols: usize,
    data: &[f32],
    config: &SpectraConfig,
) -> Result<TensorSpectrum> {
    if rows * cols != data.len() {
        return Err(Error::MatrixShape {
            name: name.to_string(),
            rows,
            cols,
            n_values: data.len(),
        });
    }
    let tensor = PlannedTensor {
        name: name.to_string(),
        shape: vec![rows, cols],
        dtype: "F32".into(),
        qkv: None,
    };
    let unit = UnitMatrix {
        part: UnitPart::Whole,
        rows,
        cols,
        data: Vec::new(),
    };
    Ok(analyze_unit(&tensor, &unit, data, config))
}

/// Runs `work` over the tensors on `config.n_threads` workers, largest tensors first, and
/// returns the units in the tensors' order.
fn run_parallel<F>(
    tensors: &[PlannedTensor],
    config: &SpectraConfig,
    progress: Option<ProgressFn<'_>>,
    work: F,
) -> Vec<TensorSpectrum>
where
    F: Fn(&PlannedTensor) -> Vec<TensorSpectrum> + Sync,
{
    let mut order: Vec<usize> = (0..tensors.len()).collect();
    // Longest-processing-time-first keeps the workers busy until the end.
    order.sort_by(|&a, &b| {
        tensors[b]
            .cost()
            .total_cmp(&tensors[a].cost())
            .then(a.cmp(&b))
    });
    let slots: Mutex<Vec<Option<Vec<TensorSpectrum>>>> = Mutex::new(vec![None; tensors.len()]);
    let next = AtomicUsize::new(0);
    let n_done = AtomicUsize::new(0);
    let worker = || {
        loop {
            let position = next.fetch_add(1, Ordering::Relaxed);
            let Some(&tensor_idx) = order.get(position) else {
                break;
            };
            let tensor = &tensors[tensor_idx];
            let _span = tracing::debug_span!("tensor", name = %tensor.name).entered();
            let units = work(tensor);
            slots
                .lock()
                .expect("no worker panics while holding the lock")[tensor_idx] = Some(units);
            let done = n_done.fetch_add(1, Ordering::Relaxed) + 1;
            if let Some(progress) = progress {
                progress(Progress {
                    n_done: done,
                    n_total: tensors.len(),
                    tensor: &tensor.name,
                });
            }
        }
    };
    let mut n_threads = config
        .n_threads
        .unwrap_or_else(rayon::current_num_threads)
        .clamp(1, tensors.len().max(1));
    if let Some(budget) = config.max_in_flight_bytes {
        let largest = tensors
            .iter()
            .map(|t| SpectraConfig::working_set_bytes(&t.shape))
            .max()
            .unwrap_or(0)
            .max(1);
        let fitting = usize::try_from(budget / largest)
            .unwrap_or(usize::MAX)
            .max(1);
        if fitting < n_threads {
            tracing::info!(
                n_threads,
                fitting,
                "fewer threads to stay within max_in_flight_bytes"
            );
            n_threads = fitting;
        }
    }
    // A pool of exactly `n_threads` workers pulling tensors from the shared queue (the
    // memory budget above bounds how many tensors are in flight at once).
    match rayon::ThreadPoolBuilder::new()
        .num_threads(n_threads)
        .build()
    {
        Ok(pool) if n_threads > 1 => pool.scope(|scope| {
            for _ in 0..n_threads {
                scope.spawn(|_| worker());
            }
        }),
        _ => worker(),
    }
    slots
        .into_inner()
        .expect("workers finished")
        .into_iter()
        .flat_map(|units| units.expect("every tensor was processed"))
        .collect()
}

/// All units of one tensor whose row-major values are `data`.
pub(crate) fn analyze_tensor(
    tensor: &PlannedTensor,
    data: &[f32],
    config: &SpectraConfig,
) -> Vec<TensorSpectrum> {
    match tensor.shape[..] {
        [rows, cols] => {
            let whole = UnitMatrix {
                part: UnitPart::Whole,
                rows,
                cols,
                data: Vec::new(),
            };
            let mut units = vec![analyze_unit(tensor, &whole, data, config)];
            if let Some(layout) = tensor.qkv {
                for block in split_qkv(layout, rows, cols, data) {
                    units.push(analyze_unit(tensor, &block, &block.data, config));
                }
            }
            units
        }
        [n_experts, rows, cols] => {
            let per_expert: Vec<TensorSpectrum> = (0..n_experts)
                .map(|expert_idx| {
                    let slice = &data[expert_idx * rows * cols..(expert_idx + 1) * rows * cols];
                    let unit = UnitMatrix {
                        part: UnitPart::Expert { expert_idx },
                        rows,
                        cols,
                        data: Vec::new(),
                    };
                    analyze_unit(tensor, &unit, slice, config)
                })
                .collect();
            if config.experts == ExpertUnits::FusedMean {
                vec![fused_mean(tensor, n_experts, rows, cols, &per_expert)]
            } else {
                per_expert
            }
        }
        _ => Vec::new(),
    }
}

/// PEFT's fused unit: metrics averaged over experts; failed if any expert failed.
fn fused_mean(
    tensor: &PlannedTensor,
    n_experts: usize,
    rows: usize,
    cols: usize,
    per_expert: &[TensorSpectrum],
) -> TensorSpectrum {
    let part = UnitPart::ExpertMean { n_experts };
    if let Some(bad) = per_expert.iter().find(|u| u.status != TensorStatus::Ok) {
        let mut unit = failed_unit(tensor, part, bad.status.clone());
        unit.rows = rows;
        unit.cols = cols;
        unit.n_params = n_experts * rows * cols;
        return unit;
    }
    let metrics: Vec<SpectrumMetrics> = per_expert
        .iter()
        .filter_map(|u| u.metrics.clone())
        .collect();
    let (layer_idx, module_type) = layer_and_module_type(&tensor.name);
    TensorSpectrum {
        unit: tensor.name.clone(),
        tensor: tensor.name.clone(),
        part,
        layer_idx,
        module_type,
        rows,
        cols,
        dtype: tensor.dtype.clone(),
        n_params: n_experts * rows * cols,
        status: TensorStatus::Ok,
        path: per_expert.first().and_then(|u| u.path),
        gram_error_bound: per_expert
            .iter()
            .filter_map(|u| u.gram_error_bound)
            .reduce(f64::max),
        metrics: SpectrumMetrics::mean(&metrics),
        singular_values: None,
    }
}

fn failed_unit(tensor: &PlannedTensor, part: UnitPart, status: TensorStatus) -> TensorSpectrum {
    let (layer_idx, module_type) = layer_and_module_type(&tensor.name);
    let (rows, cols) = match tensor.shape[..] {
        [r, c] | [_, r, c] => (r, c),
        _ => (0, 0),
    };
    TensorSpectrum {
        unit: format!("{}{}", tensor.name, part.suffix()),
        tensor: tensor.name.clone(),
        part,
        layer_idx,
        module_type,
        rows,
        cols,
        dtype: tensor.dtype.clone(),
        n_params: rows * cols,
        status,
        path: None,
        gram_error_bound: None,
        metrics: None,
        singular_values: None,
    }
}

/// One unit: checks the values, computes the spectrum and the metrics.
fn analyze_unit(
    tensor: &PlannedTensor,
    unit: &UnitMatrix,
    data: &[f32],
    config: &SpectraConfig,
) -> TensorSpectrum {
    let (rows, cols) = (unit.rows, unit.cols);
    let mut row = failed_unit(tensor, unit.part, TensorStatus::Ok);
    row.rows = rows;
    row.cols = cols;
    row.n_params = rows * cols;

    let n_nan = data.iter().filter(|v| v.is_nan()).count();
    let n_inf = data.iter().filter(|v| v.is_infinite()).count();
    if n_nan + n_inf > 0 {
        tracing::warn!(unit = %row.unit, n_nan, n_inf, "non-finite values; unit skipped");
        row.status = TensorStatus::NonFinite { n_nan, n_inf };
        return row;
    }
    if data.iter().all(|&v| v == 0.0) {
        tracing::warn!(unit = %row.unit, "all-zero matrix; unit skipped");
        row.status = TensorStatus::ZeroMatrix;
        return row;
    }
    let Some(spectrum) = compute_spectrum(rows, cols, data, config) else {
        tracing::warn!(unit = %row.unit, "singular values did not converge");
        row.status = TensorStatus::NoConvergence;
        return row;
    };
    row.path = Some(spectrum.path);
    row.gram_error_bound = spectrum.gram_error_bound;
    match SpectrumMetrics::from_singular_values(&spectrum.singular_values, rows, cols, config) {
        Some(metrics) => {
            if metrics.kappa_floored {
                tracing::debug!(unit = %row.unit, s_min = metrics.s_min, "kappa floored");
            }
            row.metrics = Some(metrics);
        }
        None => row.status = TensorStatus::ZeroMatrix,
    }
    if config.keep_singular_values {
        row.singular_values = Some(spectrum.singular_values);
    }
    row
}

/// `num_attention_heads` (or `n_head`) from a model folder's `config.json`, if present, as
/// `strata-core` reads it (only the key is needed, so a partial config is enough).
fn read_n_heads(path: &Path) -> Option<usize> {
    let config_path = if path.is_dir() {
        path.join("config.json")
    } else {
        path.parent()?.join("config.json")
    };
    strata_core::config::hf::HfConfig::read(&config_path)
        .ok()?
        .num_attention_heads
        .filter(|&n| n > 0)
}

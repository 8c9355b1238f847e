//! Which checkpoint tensors become units, and how a tensor's data is cut into units (expert
//! slices, Q/K/V blocks). Works from names, shapes and dtypes only, so a plan costs no reads.

use crate::config::{ExpertUnits, SpectraConfig};
use crate::result::{SkippedTensor, UnitPart};

/// One tensor to read, with how to cut it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PlannedTensor {
    /// Checkpoint name.
    pub name: String,
    /// Stored shape (2-D or 3-D).
    pub shape: Vec<usize>,
    /// Stored dtype.
    pub dtype: String,
    /// How the Q/K/V blocks of a fused projection are laid out, when they are split.
    pub qkv: Option<QkvLayout>,
}

impl PlannedTensor {
    /// A rough cost, `n_matrices * k^2 * n`, used to schedule the largest tensors first.
    pub fn cost(&self) -> f64 {
        let (n_matrices, rows, cols) = match self.shape[..] {
            [r, c] => (1, r, c),
            [e, r, c] => (e, r, c),
            _ => (0, 0, 0),
        };
        let (k, n) = (rows.min(cols) as f64, rows.max(cols) as f64);
        n_matrices as f64 * k * k * n
    }
}

/// How a fused QKV projection stores its three blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum QkvLayout {
    /// GPT-2 `Conv1D` `c_attn`: `[d_model, 3 d_model]`, Q | K | V along columns.
    Columns,
    /// Q | K | V stacked along rows in equal thirds (`qkv_proj`, `Wqkv`, `in_proj_weight`).
    Rows,
    /// GPT-NeoX `query_key_value`: rows grouped per head as `[n_heads, 3, d_head]`.
    HeadInterleavedRows {
        /// Number of attention heads.
        n_heads: usize,
    },
}

/// The plan for a checkpoint: what to read, and what was skipped.
#[derive(Debug, Clone, Default)]
pub(crate) struct Plan {
    /// Tensors to analyse, in name order.
    pub tensors: Vec<PlannedTensor>,
    /// Tensors left out, with the reason.
    pub skipped: Vec<SkippedTensor>,
}

/// Whether a name is an embedding table (`wte`, `wpe`, `*embed*`, but not NeoX's `embed_out`,
/// which is the LM head).
pub(crate) fn is_embedding(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    if lower.contains("embed_out") {
        return false;
    }
    lower.contains("embed") || lower.split('.').any(|s| s == "wte" || s == "wpe")
}

/// The fused-QKV layout for this tensor, when it is one strata knows how to split.
pub(crate) fn qkv_layout(name: &str, shape: &[usize], n_heads: Option<usize>) -> Option<QkvLayout> {
    let [rows, cols] = shape[..] else {
        return None;
    };
    let lower = name.to_ascii_lowercase();
    if lower.ends_with("c_attn.weight") && cols == 3 * rows {
        return Some(QkvLayout::Columns);
    }
    if lower.ends_with("query_key_value.weight") && rows == 3 * cols {
        return match n_heads {
            Some(n_heads) if n_heads > 0 && cols % n_heads == 0 => {
                Some(QkvLayout::HeadInterleavedRows { n_heads })
            }
            _ => {
                tracing::warn!(
                    tensor = name,
                    "not splitting `query_key_value`: its head-interleaved layout needs n_heads"
                );
                None
            }
        };
    }
    let fused_rows = ["qkv_proj.weight", "wqkv.weight", "in_proj_weight"];
    if fused_rows.iter().any(|s| lower.ends_with(s)) && rows == 3 * cols {
        return Some(QkvLayout::Rows);
    }
    None
}

/// Decides, from names, shapes and dtypes alone, which tensors are analysed.
pub(crate) fn plan(
    tensors: impl IntoIterator<Item = (String, Vec<usize>, String)>,
    config: &SpectraConfig,
) -> Plan {
    let mut plan = Plan::default();
    for (name, shape, dtype) in tensors {
        match skip_reason(&name, &shape, &dtype, config) {
            Some(reason) => plan.skipped.push(SkippedTensor {
                tensor: name,
                shape,
                dtype,
                reason,
            }),
            None => {
                let qkv = if config.split_fused_qkv {
                    qkv_layout(&name, &shape, config.n_heads)
                } else {
                    None
                };
                plan.tensors.push(PlannedTensor {
                    name,
                    shape,
                    dtype,
                    qkv,
                });
            }
        }
    }
    plan
}

fn skip_reason(name: &str, shape: &[usize], dtype: &str, config: &SpectraConfig) -> Option<String> {
    // Float dtypes, and the GGUF block quantizations strata dequantizes on read (the spectrum
    // is then that of the dequantized matrix, the one the model computes with).
    let dequantized = strata_core::weights::gguf::GgmlType::SUPPORTED
        .iter()
        .any(|t| t.name() == dtype);
    if !matches!(dtype, "F32" | "F16" | "BF16" | "F64") && !dequantized {
        return Some(format!("dtype {dtype} is not a floating-point weight"));
    }
    match shape.len() {
        0 | 1 => return Some("fewer than 2 dimensions (bias or norm scale)".into()),
        2 => {}
        3 if config.experts == ExpertUnits::Skip => {
            return Some("3-D tensor (expert tensors are skipped in this convention)".into());
        }
        3 => {}
        n => {
            return Some(format!(
                "{n}-D tensor (only 2-D weights and 3-D experts are analysed)"
            ));
        }
    }
    if shape.contains(&0) {
        return Some("empty tensor".into());
    }
    if !config.include_embeddings && is_embedding(name) {
        return Some("embedding table (include_embeddings is off)".into());
    }
    if let Some(max_dim) = config.max_dim
        && let Some(&dim) = shape.iter().find(|&&d| d > max_dim)
    {
        return Some(format!("dimension {dim} is above the size cap {max_dim}"));
    }
    None
}

/// The layer index (first integer path segment) and the module type of a tensor name.
pub(crate) fn layer_and_module_type(name: &str) -> (Option<usize>, String) {
    let segments: Vec<&str> = name.split('.').collect();
    let layer_pos = segments.iter().position(|s| s.parse::<usize>().is_ok());
    let layer_idx = layer_pos.map(|p| segments[p].parse().expect("checked to parse"));
    let rest = match layer_pos {
        Some(p) => &segments[p + 1..],
        None => &segments[..],
    };
    let mut kept: Vec<&str> = rest
        .iter()
        .map(|s| if s.parse::<usize>().is_ok() { "*" } else { s })
        .collect();
    if kept.len() > 1 && kept.last() == Some(&"weight") {
        kept.pop();
    }
    (layer_idx, kept.join("."))
}

/// A unit's matrix, cut out of a tensor's row-major data.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct UnitMatrix {
    /// Which part of the tensor.
    pub part: UnitPart,
    /// Rows.
    pub rows: usize,
    /// Columns.
    pub cols: usize,
    /// Row-major values.
    pub data: Vec<f32>,
}

/// The Q, K and V blocks of a fused `[rows, cols]` projection.
pub(crate) fn split_qkv(
    layout: QkvLayout,
    rows: usize,
    cols: usize,
    data: &[f32],
) -> Vec<UnitMatrix> {
    let parts = [UnitPart::Query, UnitPart::Key, UnitPart::Value];
    match layout {
        QkvLayout::Columns => {
            let width = cols / 3;
            parts
                .iter()
                .enumerate()
                .map(|(j, &part)| {
                    let mut block = Vec::with_capacity(rows * width);
                    for r in 0..rows {
                        let start = r * cols + j * width;
                        block.extend_from_slice(&data[start..start + width]);
                    }
                    UnitMatrix {
                        part,
                        rows,
                        cols: width,
                        data: block,
                    }
                })
                .collect()
        }
        QkvLayout::Rows => {
            let height = rows / 3;
            parts
                .iter()
                .enumerate()
                .map(|(j, &part)| UnitMatrix {
                    part,
                    rows: height,
                    cols,
                    data: data[j * height * cols..(j + 1) * height * cols].to_vec(),
                })
                .collect()
        }
        QkvLayout::HeadInterleavedRows { n_heads } => {
            let d_head = rows / (3 * n_heads);
            parts
                .iter()
                .enumerate()
                .map(|(j, &part)| {
                    let mut block = Vec::with_capacity(n_heads * d_head * cols);
                    for head_idx in 0..n_heads {
                        let first_row = head_idx * 3 * d_head + j * d_head;
                        block.extend_from_slice(
                            &data[first_row * cols..(first_row + d_head) * cols],
                        );
                    }
                    UnitMatrix {
                        part,
                        rows: n_heads * d_head,
                        cols,
                        data: block,
                    }
                })
                .collect()
        }
    }
}

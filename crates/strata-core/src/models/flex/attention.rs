//! Attention in one fused, multi-threaded kernel on burn's Flex (CPU) backend.
//!
//! The generic path in [`super::attention`] is five tensor operations: a batched product for
//! the scores, a mask fill, a softmax, a product with the values and a transpose back. On
//! Flex the mask fill, the softmax's `exp` and the transpose run on one thread, grouped
//! key/value heads are copied once per query head, and every key past the causal diagonal
//! is multiplied and then thrown away. Here each (sequence, query head) pair is one task on
//! rayon's pool. A task takes 64 queries at a time, multiplies them only with the keys the
//! mask lets one of them see, softmaxes the rows in place with a vectorised `exp`, and writes
//! its output straight into `[batch, pos, heads * d_head]`, the layout the output projection
//! reads. Grouped heads read their shared key/value head where it lies.
//!
//! It is taken for inference on Flex when no probe reads or edits the attention pattern;
//! autodiff and GPU backends keep the generic path. The arithmetic is the generic path's up
//! to float rounding (checked by the tests below against it, masks and padding included).

use burn::backend::flex::FlexTensor;
use burn::tensor::{Bool, Tensor, backend::Backend};
use rayon::prelude::*;

use super::{exp, from_flex, to_flex, with_avx2};

/// Queries per block: one block's scores, 64 x `n_keys` floats, stay in cache.
const QUERY_BLOCK: usize = 64;

/// Causal attention of rotated, scaled queries over keys and values.
///
/// Returns `None` (and the generic path runs) when `B` is not Flex.
///
/// # Shapes
/// - `q`: `[batch, pos, n_heads * d_head]`, already rotated and scaled by `1/sqrt(d_head)`
/// - `k`, `v`: `[batch, n_kv_heads, n_keys, d_head]`
/// - `mask`: `[batch, n_heads or 1, pos, n_keys]`, true where attention is forbidden
/// - returns `[batch, pos, n_heads * d_head]`
pub(crate) fn attend<B: Backend>(
    q: &Tensor<B, 3>,
    k: &Tensor<B, 4>,
    v: &Tensor<B, 4>,
    mask: &Tensor<B, 4, Bool>,
    n_heads: usize,
) -> Option<Tensor<B, 3>> {
    let q = to_flex(q.clone()).ok()?.to_contiguous();
    let k = to_flex(k.clone()).ok()?.to_contiguous();
    let v = to_flex(v.clone()).ok()?.to_contiguous();
    let mask = super::same_type::<_, FlexTensor>(mask.clone().into_primitive())?.to_contiguous();
    let [batch, pos, width] = q.layout().shape().dims::<3>();
    let [_, n_kv_heads, n_keys, d_head] = k.layout().shape().dims::<4>();
    let mask_heads = mask.layout().shape()[1];
    let shape = Shapes {
        pos,
        n_heads,
        n_kv_heads,
        n_keys,
        d_head,
        mask_heads,
    };
    debug_assert_eq!(width, n_heads * d_head);
    let out = attention(
        q.storage::<f32>(),
        k.storage::<f32>(),
        v.storage::<f32>(),
        mask.bytes(),
        batch,
        &shape,
    );
    from_flex(out, [batch, pos, width])
}

/// The sizes the kernel works with.
struct Shapes {
    pos: usize,
    n_heads: usize,
    n_kv_heads: usize,
    n_keys: usize,
    d_head: usize,
    mask_heads: usize,
}

/// A pointer to the output that tasks write disjoint parts of.
#[derive(Clone, Copy)]
struct OutPtr(*mut f32);
// SAFETY: every task writes only the columns of its own head in the rows of its own
// sequence, so no two tasks touch the same element.
unsafe impl Send for OutPtr {}
unsafe impl Sync for OutPtr {}

impl OutPtr {
    /// The pointer (a method, so closures capture the `Send` wrapper, not the raw field).
    fn get(self) -> *mut f32 {
        self.0
    }
}

/// The kernel on contiguous host slices; returns `[batch, pos, n_heads * d_head]`.
fn attention(q: &[f32], k: &[f32], v: &[f32], mask: &[u8], batch: usize, s: &Shapes) -> Vec<f32> {
    let width = s.n_heads * s.d_head;
    let mut out = vec![0.0f32; batch * s.pos * width];
    let out_ptr = OutPtr(out.as_mut_ptr());
    (0..batch * s.n_heads).into_par_iter().for_each_init(
        || vec![0.0f32; QUERY_BLOCK * s.n_keys],
        |scores, task| {
            let (b, h) = (task / s.n_heads, task % s.n_heads);
            let kv = b * s.n_kv_heads + h / (s.n_heads / s.n_kv_heads);
            let kv_len = s.n_keys * s.d_head;
            let head = Head {
                q: &q[b * s.pos * width + h * s.d_head..],
                k: &k[kv * kv_len..(kv + 1) * kv_len],
                v: &v[kv * kv_len..(kv + 1) * kv_len],
                mask: {
                    let mh = if s.mask_heads == 1 { 0 } else { h };
                    let len = s.pos * s.n_keys;
                    let at = (b * s.mask_heads + mh) * len;
                    &mask[at..at + len]
                },
                // SAFETY: in bounds: row b, column h * d_head of the output.
                out: unsafe { out_ptr.get().add(b * s.pos * width + h * s.d_head) },
            };
            head.run(s, width, scores);
        },
    );
    out
}

/// One (sequence, query head) pair.
struct Head<'a> {
    /// Its first query, rows `width` apart.
    q: &'a [f32],
    /// `[n_keys, d_head]`.
    k: &'a [f32],
    /// `[n_keys, d_head]`.
    v: &'a [f32],
    /// `[pos, n_keys]`, nonzero where forbidden.
    mask: &'a [u8],
    /// Its first output element, rows `width` apart.
    out: *mut f32,
}

impl Head<'_> {
    fn run(&self, s: &Shapes, width: usize, scores: &mut [f32]) {
        let n_keys = s.n_keys;
        for first in (0..s.pos).step_by(QUERY_BLOCK) {
            let rows = QUERY_BLOCK.min(s.pos - first);
            // Keys past the last one any query of the block may see are never multiplied.
            let visible = |i: usize| {
                let row = &self.mask[i * n_keys..(i + 1) * n_keys];
                row.iter().rposition(|&m| m == 0).map_or(0, |j| j + 1)
            };
            let seen = (first..first + rows).map(visible).max().unwrap_or(0);
            let block = &mut scores[..rows * seen.max(1)];
            if seen > 0 {
                // SAFETY: `block` is rows x seen (row stride seen); the queries are rows x
                // d_head with row stride `width`; keys are read transposed, seen x d_head.
                unsafe {
                    gemm::gemm(
                        rows,
                        seen,
                        s.d_head,
                        block.as_mut_ptr(),
                        1,
                        seen as isize,
                        false,
                        self.q.as_ptr().add(first * width),
                        1,
                        width as isize,
                        self.k.as_ptr(),
                        s.d_head as isize,
                        1,
                        0.0,
                        1.0,
                        false,
                        false,
                        false,
                        gemm::Parallelism::None,
                    );
                }
            }
            let mut fully_masked = Vec::new();
            for r in 0..rows {
                let mask_row = &self.mask[(first + r) * n_keys..(first + r) * n_keys + seen];
                let row = &mut block[r * seen..(r + 1) * seen];
                if !softmax_masked(row, mask_row) {
                    fully_masked.push(r);
                }
            }
            if seen > 0 {
                // SAFETY: the output rows of this block, d_head columns of this head.
                unsafe {
                    gemm::gemm(
                        rows,
                        s.d_head,
                        seen,
                        self.out.add(first * width),
                        1,
                        width as isize,
                        false,
                        block.as_ptr(),
                        1,
                        seen as isize,
                        self.v.as_ptr(),
                        1,
                        s.d_head as isize,
                        0.0,
                        1.0,
                        false,
                        false,
                        false,
                        gemm::Parallelism::None,
                    );
                }
            }
            // A query that may see no key gets the generic path's answer: every score is
            // the same fill value, so the weights are uniform over all keys.
            for r in fully_masked {
                let mean = mean_rows(self.v, s.d_head);
                // SAFETY: row first + r of this head's output.
                let dst = unsafe {
                    std::slice::from_raw_parts_mut(self.out.add((first + r) * width), s.d_head)
                };
                dst.copy_from_slice(&mean);
            }
        }
    }
}

/// The mean of `[n, d]` rows.
fn mean_rows(rows: &[f32], d: usize) -> Vec<f32> {
    let n = rows.len() / d;
    let mut mean = vec![0.0f32; d];
    for row in rows.chunks_exact(d) {
        for (m, &x) in mean.iter_mut().zip(row) {
            *m += x;
        }
    }
    mean.iter_mut().for_each(|m| *m /= n as f32);
    mean
}

with_avx2! {
    /// Softmax of one row of scores in place, forbidden positions weighted zero; false (and
    /// the row zeroed) when every position is forbidden.
    fn softmax_masked(row: &mut [f32], mask: &[u8]) -> bool => softmax_masked_body
}

#[inline(always)]
fn softmax_masked_body(row: &mut [f32], mask: &[u8]) -> bool {
    const LANES: usize = 8;
    for (x, &m) in row.iter_mut().zip(mask) {
        if m != 0 {
            *x = f32::NEG_INFINITY;
        }
    }
    let mut max = [f32::NEG_INFINITY; LANES];
    let mut chunks = row.chunks_exact(LANES);
    for c in &mut chunks {
        for l in 0..LANES {
            max[l] = if c[l] > max[l] { c[l] } else { max[l] };
        }
    }
    let mut max = max.into_iter().fold(f32::NEG_INFINITY, f32::max);
    max = chunks.remainder().iter().copied().fold(max, f32::max);
    if max == f32::NEG_INFINITY {
        row.fill(0.0);
        return false;
    }
    let mut sum = [0.0f32; LANES];
    let mut chunks = row.chunks_exact_mut(LANES);
    for c in &mut chunks {
        for l in 0..LANES {
            c[l] = exp(c[l] - max);
            sum[l] += c[l];
        }
    }
    let mut sum: f32 = sum.iter().sum();
    for x in chunks.into_remainder() {
        *x = exp(*x - max);
        sum += *x;
    }
    let inv = 1.0 / sum;
    row.iter_mut().for_each(|x| *x *= inv);
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;
    use burn::tensor::activation::softmax;
    use burn::tensor::{Distribution, TensorData};

    type B = Flex;

    /// The generic path of `Attention::forward`, written out: repeat grouped heads, mask,
    /// softmax, weight the values, back to `[batch, pos, heads * d_head]`.
    fn reference(
        q: Tensor<B, 3>,
        k: Tensor<B, 4>,
        v: Tensor<B, 4>,
        mask: Tensor<B, 4, Bool>,
        h: usize,
    ) -> Tensor<B, 3> {
        let [batch, pos, width] = q.dims();
        let [_, kvh, n_keys, dh] = k.dims();
        let q = q.reshape([batch, pos, h, dh]).swap_dims(1, 2);
        let repeat = |t: Tensor<B, 4>| {
            t.unsqueeze_dim::<5>(2)
                .repeat_dim(2, h / kvh)
                .reshape([batch, h, n_keys, dh])
        };
        let scores = q
            .matmul(repeat(k).swap_dims(2, 3))
            .mask_fill(mask, f32::MIN);
        softmax(scores, 3)
            .matmul(repeat(v))
            .swap_dims(1, 2)
            .reshape([batch, pos, width])
    }

    /// Causal mask over `n_cached` earlier keys, with `padding[b]` leading keys forbidden.
    fn causal_mask(
        batch: usize,
        heads: usize,
        pos: usize,
        n_cached: usize,
        padding: &[usize],
    ) -> Tensor<B, 4, Bool> {
        let n_keys = n_cached + pos;
        let mut m = Vec::new();
        for &pad in padding.iter().take(batch) {
            for _ in 0..heads {
                for i in 0..pos {
                    for j in 0..n_keys {
                        m.push(j > n_cached + i || j < pad);
                    }
                }
            }
        }
        Tensor::from_data(
            TensorData::new(m, [batch, heads, pos, n_keys]),
            &Default::default(),
        )
    }

    fn check(batch: usize, pos: usize, n_cached: usize, h: usize, kvh: usize, padding: &[usize]) {
        let device = Default::default();
        let dh = 16;
        let n_keys = n_cached + pos;
        let normal = Distribution::Normal(0.0, 1.0);
        let q = Tensor::<B, 3>::random([batch, pos, h * dh], normal, &device);
        let k = Tensor::<B, 4>::random([batch, kvh, n_keys, dh], normal, &device);
        let v = Tensor::<B, 4>::random([batch, kvh, n_keys, dh], normal, &device);
        for mask_heads in [1, h] {
            let mask = causal_mask(batch, mask_heads, pos, n_cached, padding);
            let got = attend(&q, &k, &v, &mask, h).expect("Flex takes the fused kernel");
            let want = reference(q.clone(), k.clone(), v.clone(), mask, h);
            let diff = (got - want).abs().max().into_scalar();
            assert!(diff < 1e-5, "max difference {diff}");
        }
    }

    #[test]
    fn fused_attention_matches_the_generic_path() {
        // Blocks of 64 queries and a ragged last block; grouped heads; a KV cache.
        check(2, 150, 0, 6, 2, &[0, 0]);
        check(1, 7, 30, 4, 4, &[0]);
        check(3, 1, 12, 4, 1, &[0, 0, 0]);
    }

    #[test]
    fn fused_attention_handles_left_padding_and_rows_that_see_nothing() {
        // Row 1 is padded for 5 keys: its first queries see no key at all and get the
        // generic path's uniform weights.
        check(2, 70, 0, 4, 2, &[0, 5]);
    }

    #[test]
    fn the_kernel_is_not_taken_under_autodiff() {
        type Ad = burn::backend::Autodiff<Flex>;
        let device = Default::default();
        let q = Tensor::<Ad, 3>::zeros([1, 2, 4], &device);
        let kv = Tensor::<Ad, 4>::zeros([1, 1, 2, 4], &device);
        let mask = Tensor::<Ad, 4, Bool>::from_data(
            TensorData::new(vec![false, true, false, false], [1, 1, 2, 2]),
            &device,
        );
        assert!(attend(&q, &kv, &kv, &mask, 1).is_none());
    }
}

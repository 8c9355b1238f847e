//! The negative log-likelihood of chosen tokens under a row of logits, from one fused
//! softmax pass.

use burn::tensor::activation::softmax;
use burn::tensor::{Int, Tensor, backend::Backend};

/// Per-row `-log softmax(logits)[target]` and the softmax itself.
///
/// The log-sum-exp comes from the softmax already computed: `lse = max logit - ln(max p)`.
/// The largest probability is at least `1 / d_vocab`, so its logarithm never underflows,
/// while the target's own probability may (a target 200 nats below the best logit).
///
/// # Shapes
/// - `logits`: `[rows, d_vocab]`; `targets`: `[rows, 1]` -> (`[rows, 1]`, `[rows, d_vocab]`)
pub fn target_nll<B: Backend>(
    logits: Tensor<B, 2>,
    targets: Tensor<B, 2, Int>,
) -> (Tensor<B, 2>, Tensor<B, 2>) {
    let probs = softmax(logits.clone(), 1);
    let log_sum_exp = logits.clone().max_dim(1) - probs.clone().max_dim(1).log();
    (log_sum_exp - logits.gather(1, targets), probs)
}

//! The training data: a token stream cut into fixed-length blocks, served in a seeded
//! order that depends only on the step, so a resumed run sees exactly the batches an
//! uninterrupted one would.

use anyhow::{Result, ensure};
use rand::{RngCore, SeedableRng};
use rand_xoshiro::SplitMix64;
use strata_core::train::TrainBatch;
use tokenizers::Tokenizer;

use crate::train_tokenizer::encode;

/// `<|endoftext|>`, then each line's ids followed by `<|endoftext|>`: the convention of
/// `datasets/kjv/baselines.json`, so perplexities are comparable.
/// The framing is `strata_core::eval::corpus`'s, so `strata ppl` reports the same number.
pub fn token_stream(tokenizer: &Tokenizer, lines: &[String], eot: u32) -> Result<Vec<u32>> {
    Ok(strata_core::eval::corpus::frame_lines_with(
        lines.iter().map(String::as_str),
        eot,
        |line| encode(tokenizer, line),
    )?)
}

/// A token stream cut into blocks of `seq_len + 1` tokens that overlap by one, so block `i`
/// gives `seq_len` inputs and their `seq_len` next-token targets.
#[derive(Debug, Clone)]
pub struct Blocks {
    stream: Vec<u32>,
    seq_len: usize,
    n_blocks: usize,
    seed: u64,
}

impl Blocks {
    /// Cuts `stream`; fails when it holds less than one block.
    pub fn new(stream: Vec<u32>, seq_len: usize, seed: u64) -> Result<Self> {
        ensure!(
            stream.len() > seq_len,
            "the corpus has {} tokens, fewer than one training sequence of {} + 1",
            stream.len(),
            seq_len
        );
        let n_blocks = (stream.len() - 1) / seq_len;
        Ok(Self {
            stream,
            seq_len,
            n_blocks,
            seed,
        })
    }

    /// Number of blocks (sequences) in one epoch.
    pub fn n_blocks(&self) -> usize {
        self.n_blocks
    }

    /// The batch of optimiser step `step`: sequences `step * n_rows ..` of the epoch-wise
    /// shuffled order (each epoch reshuffled with its own seed).
    pub fn batch(&self, step: usize, n_rows: usize) -> TrainBatch {
        let mut inputs = Vec::with_capacity(n_rows * self.seq_len);
        let mut targets = Vec::with_capacity(n_rows * self.seq_len);
        let mut order: Option<(usize, Vec<usize>)> = None;
        for row in 0..n_rows {
            let sample_idx = step * n_rows + row;
            let (epoch, pos) = (sample_idx / self.n_blocks, sample_idx % self.n_blocks);
            if order.as_ref().is_none_or(|(e, _)| *e != epoch) {
                order = Some((epoch, self.epoch_order(epoch)));
            }
            let block = order.as_ref().expect("order was just set").1[pos];
            let start = block * self.seq_len;
            inputs.extend_from_slice(&self.stream[start..start + self.seq_len]);
            targets.extend_from_slice(&self.stream[start + 1..start + self.seq_len + 1]);
        }
        TrainBatch {
            inputs,
            targets,
            n_rows,
            seq_len: self.seq_len,
        }
    }

    /// A Fisher-Yates permutation of the blocks, seeded by the run seed and the epoch.
    fn epoch_order(&self, epoch: usize) -> Vec<usize> {
        let rng = SplitMix64::seed_from_u64(
            self.seed ^ (epoch as u64).wrapping_mul(0xa076_1d64_78bd_642f),
        );
        permutation(self.n_blocks, rng)
    }
}

/// A seeded permutation of `0..n`: Fisher-Yates drawing `next_u64() % (i + 1)`. Written out
/// rather than `SliceRandom::shuffle` because the shipped tiny models and the published
/// KappaTune table were made with exactly this order; rand's shuffle draws its indices
/// differently and would change them.
pub(crate) fn permutation(n: usize, mut rng: SplitMix64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..order.len()).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        order.swap(i, j);
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_inputs_shifted_by_one() {
        let blocks = Blocks::new((0..1000).collect(), 8, 1).unwrap();
        let batch = blocks.batch(3, 4);
        for row in 0..4 {
            let inputs = &batch.inputs[row * 8..(row + 1) * 8];
            let targets = &batch.targets[row * 8..(row + 1) * 8];
            assert_eq!(&inputs[1..], &targets[..7]);
            assert_eq!(targets[7], inputs[7] + 1);
        }
    }

    #[test]
    fn one_epoch_visits_every_block_once() {
        let blocks = Blocks::new((0..81).collect(), 8, 5).unwrap();
        assert_eq!(blocks.n_blocks(), 10);
        let mut firsts: Vec<u32> = (0..5)
            .flat_map(|step| {
                let b = blocks.batch(step, 2);
                [b.inputs[0], b.inputs[8]]
            })
            .collect();
        firsts.sort();
        assert_eq!(firsts, (0..10).map(|i| i * 8).collect::<Vec<u32>>());
    }

    #[test]
    fn the_order_depends_only_on_seed_and_step() {
        let a = Blocks::new((0..5000).collect(), 16, 9).unwrap();
        let b = Blocks::new((0..5000).collect(), 16, 9).unwrap();
        assert_eq!(a.batch(40, 8), b.batch(40, 8));
        let c = Blocks::new((0..5000).collect(), 16, 10).unwrap();
        assert_ne!(a.batch(40, 8), c.batch(40, 8));
    }

    #[test]
    fn a_corpus_shorter_than_one_sequence_is_refused() {
        let err = Blocks::new(vec![0; 8], 8, 0).unwrap_err().to_string();
        assert!(err.contains("fewer than one training sequence"), "{err}");
    }
}

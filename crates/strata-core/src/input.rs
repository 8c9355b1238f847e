//! [`TokenBatch`]: token ids and padding on the host, validated before they reach a device.

use crate::error::{Error, Result};

/// Which side short sequences are padded on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PadSide {
    /// Pad after the tokens (forward passes, scoring).
    Right,
    /// Pad before the tokens (batched generation, so every row ends at the same column).
    Left,
}

/// A `[batch, pos]` block of token ids with an optional padding mask.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenBatch {
    /// Row-major token ids, `batch * pos`.
    pub ids: Vec<u32>,
    /// Number of rows.
    pub batch: usize,
    /// Number of columns.
    pub pos: usize,
    /// Row-major `batch * pos` mask, 1.0 for real tokens and 0.0 for padding; `None` when
    /// nothing is padded.
    pub mask: Option<Vec<f32>>,
}

impl TokenBatch {
    /// One unpadded sequence.
    pub fn single(ids: &[u32]) -> Result<Self> {
        if ids.is_empty() {
            return Err(Error::EmptyInput {
                what: "a token sequence with no tokens".into(),
            });
        }
        Ok(Self {
            ids: ids.to_vec(),
            batch: 1,
            pos: ids.len(),
            mask: None,
        })
    }

    /// Several sequences, padded with `pad_id` to the longest.
    pub fn padded(rows: &[Vec<u32>], pad_id: u32, side: PadSide) -> Result<Self> {
        if rows.is_empty() || rows.iter().any(|r| r.is_empty()) {
            return Err(Error::EmptyInput {
                what: "a batch with no sequences or an empty sequence".into(),
            });
        }
        let pos = rows.iter().map(Vec::len).max().expect("rows is non-empty");
        let mut ids = Vec::with_capacity(rows.len() * pos);
        let mut mask = Vec::with_capacity(rows.len() * pos);
        for row in rows {
            let n_pad = pos - row.len();
            let (pad_ids, pad_mask) = (vec![pad_id; n_pad], vec![0.0; n_pad]);
            if side == PadSide::Left {
                ids.extend(&pad_ids);
                mask.extend(&pad_mask);
            }
            ids.extend(row);
            mask.extend(std::iter::repeat_n(1.0, row.len()));
            if side == PadSide::Right {
                ids.extend(&pad_ids);
                mask.extend(&pad_mask);
            }
        }
        let any_pad = mask.contains(&0.0);
        Ok(Self {
            ids,
            batch: rows.len(),
            pos,
            mask: any_pad.then_some(mask),
        })
    }

    /// Checks every id against the vocabulary.
    pub fn check_vocab(&self, vocab_size: usize) -> Result<()> {
        match self.ids.iter().find(|&&id| id as usize >= vocab_size) {
            Some(&id) => Err(Error::TokenOutOfRange { id, vocab_size }),
            None => Ok(()),
        }
    }

    /// Whether position `(row, col)` holds a real token.
    pub fn is_real(&self, row: usize, col: usize) -> bool {
        self.mask
            .as_ref()
            .is_none_or(|m| m[row * self.pos + col] > 0.0)
    }
}

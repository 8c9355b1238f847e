//! [`Shard`]: one of `n` contiguous shares of a list of work items (the sequences or
//! windows of a corpus), so a corpus can be measured on several devices or machines and the
//! results combined with [`Merge`](crate::probe::Merge).

use std::fmt;
use std::ops::Range;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Shard `number` of `count`: the `number`-th of `count` contiguous, disjoint blocks of a
/// list of items that together cover the list in order. Written and parsed as
/// `number/count`, numbered from 1 (`1/3`, `2/3`, `3/3`).
///
/// ```
/// use strata_core::Shard;
/// let shard: Shard = "2/3".parse()?;
/// assert_eq!(shard.range(10), 3..6);
/// let covered: Vec<_> = Shard::all(3)?.flat_map(|s| s.range(10)).collect();
/// assert_eq!(covered, (0..10).collect::<Vec<_>>());
/// assert!("0/3".parse::<Shard>().is_err());
/// # Ok::<(), strata_core::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Shard {
    number: usize,
    count: usize,
}

impl Shard {
    /// The whole list as one shard (`1/1`).
    pub const WHOLE: Self = Self {
        number: 1,
        count: 1,
    };

    /// Shard `number` (from 1) of `count`; fails unless `1 <= number <= count`.
    pub fn new(number: usize, count: usize) -> Result<Self> {
        let invalid = |reason: String| Error::InvalidArgument {
            what: "shard".into(),
            reason,
        };
        if count == 0 {
            return Err(invalid(format!(
                "`{number}/{count}`: the shard count must be at least 1"
            )));
        }
        if number == 0 || number > count {
            return Err(invalid(format!(
                "`{number}/{count}`: shards are numbered from 1 to {count}"
            )));
        }
        Ok(Self { number, count })
    }

    /// The shards `1/count` to `count/count`, in order.
    pub fn all(count: usize) -> Result<impl Iterator<Item = Self>> {
        Self::new(1, count)?;
        Ok((1..=count).map(move |number| Self { number, count }))
    }

    /// This shard's number, from 1.
    pub fn number(&self) -> usize {
        self.number
    }

    /// How many shards the list is split into.
    pub fn count(&self) -> usize {
        self.count
    }

    /// The items of a list of `n_items` that this shard takes:
    /// `n_items * (number - 1) / count .. n_items * number / count`. Consecutive shards'
    /// ranges meet, their sizes differ by at most one, and a shard of a list shorter than
    /// `count` may be empty.
    pub fn range(&self, n_items: usize) -> Range<usize> {
        let bound = |k: usize| (n_items as u128 * k as u128 / self.count as u128) as usize;
        bound(self.number - 1)..bound(self.number)
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.number, self.count)
    }
}

impl FromStr for Shard {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        let parsed = text
            .trim()
            .split_once('/')
            .and_then(|(i, n)| Some((i.trim().parse().ok()?, n.trim().parse().ok()?)));
        match parsed {
            Some((number, count)) => Self::new(number, count),
            None => Err(Error::InvalidArgument {
                what: "shard".into(),
                reason: format!(
                    "`{text}` is not a shard like `2/4` (the shard's number, from 1, then the \
                     shard count)"
                ),
            }),
        }
    }
}

impl TryFrom<String> for Shard {
    type Error = Error;

    fn try_from(text: String) -> Result<Self> {
        text.parse()
    }
}

impl From<Shard> for String {
    fn from(shard: Shard) -> Self {
        shard.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_cover_every_item_once_in_order() {
        for n_items in 0..40 {
            for count in 1..8 {
                let mut next = 0;
                for shard in Shard::all(count).unwrap() {
                    let range = shard.range(n_items);
                    assert_eq!(range.start, next, "{shard} of {n_items}");
                    assert!(range.len() <= n_items / count + 1);
                    next = range.end;
                }
                assert_eq!(next, n_items);
            }
        }
    }

    #[test]
    fn parses_and_prints_numbers_from_one() {
        let shard: Shard = " 3/4 ".parse().unwrap();
        assert_eq!((shard.number(), shard.count()), (3, 4));
        assert_eq!(shard.to_string(), "3/4");
        assert_eq!(Shard::WHOLE.range(7), 0..7);
        let json = serde_json::to_string(&shard).unwrap();
        assert_eq!(json, "\"3/4\"");
        assert_eq!(serde_json::from_str::<Shard>(&json).unwrap(), shard);
        assert!(serde_json::from_str::<Shard>("\"5/4\"").is_err());
    }

    #[test]
    fn bad_shards_name_the_value() {
        for (text, needle) in [
            ("0/3", "numbered from 1 to 3"),
            ("4/3", "numbered from 1 to 3"),
            ("1/0", "at least 1"),
            ("2", "`2` is not a shard"),
            ("a/b", "`a/b` is not a shard"),
            ("-1/2", "`-1/2` is not a shard"),
        ] {
            let message = text.parse::<Shard>().unwrap_err().to_string();
            assert!(message.contains(needle), "{text}: {message}");
        }
    }
}

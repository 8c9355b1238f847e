//! KappaTune selection: rank units by `kappa` and keep the lowest-`kappa` ones under a
//! budget; the result is a [`TrainableMask`] a training loop can apply.
//!
//! The ranking is ascending `kappa` with ties broken by unit name, computed once on the
//! pre-trained weights (`book/src/kappa-method.md`, "Selection rule"). Selecting takes a prefix of that
//! ranking, so the selected units are always the lowest-`kappa` ones: the reference code's
//! set-ordering bug (mapping parameters to modules through an unordered set, then keeping its
//! first N) cannot happen here.

use std::collections::BTreeSet;
use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::config::Convention;
use crate::error::{Error, Result};
use crate::result::{SpectraResult, UnitPart};

/// How many units to select.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum Budget {
    /// The `n` lowest-`kappa` units (all of them if fewer).
    Count(usize),
    /// `max(1, floor(n_candidates * p))` units, `0 < p <= 1` (PEFT's `top_p`; default 0.2).
    Fraction(f64),
    /// Every unit with `kappa <= t`.
    Threshold(f64),
    /// The longest lowest-`kappa` prefix whose parameters add up to at most this many.
    Parameters(u64),
    /// Every ranked unit.
    All,
}

impl Default for Budget {
    fn default() -> Self {
        Budget::Fraction(0.2)
    }
}

impl fmt::Display for Budget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Budget::Count(n) => write!(f, "count:{n}"),
            Budget::Fraction(p) => write!(f, "fraction:{p}"),
            Budget::Threshold(t) => write!(f, "threshold:{t}"),
            Budget::Parameters(n) => write!(f, "params:{n}"),
            Budget::All => write!(f, "all"),
        }
    }
}

impl std::str::FromStr for Budget {
    type Err = Error;

    /// Parses `count:N` (or a bare integer `N`), `fraction:P` (or a bare `0.P`),
    /// `threshold:T`, `params:N` and `all`.
    fn from_str(text: &str) -> Result<Self> {
        let bad = |reason: &str| Error::InvalidBudget {
            budget: text.to_string(),
            reason: reason.to_string(),
        };
        let (kind, value) = match text.split_once(':') {
            Some((kind, value)) => (kind, value),
            None if text == "all" => return Ok(Budget::All),
            None if text.contains('.') => ("fraction", text),
            None => ("count", text),
        };
        let budget = match kind {
            "count" => Budget::Count(value.parse().map_err(|_| bad("count is not an integer"))?),
            "fraction" | "top_p" => {
                Budget::Fraction(value.parse().map_err(|_| bad("fraction is not a number"))?)
            }
            "threshold" => Budget::Threshold(
                value
                    .parse()
                    .map_err(|_| bad("threshold is not a number"))?,
            ),
            "params" | "parameters" => Budget::Parameters(
                value
                    .parse()
                    .map_err(|_| bad("parameter budget is not an integer"))?,
            ),
            _ => {
                return Err(bad(
                    "expected count:N, fraction:P, threshold:T, params:N or all",
                ));
            }
        };
        budget.validate()?;
        Ok(budget)
    }
}

impl Budget {
    /// Checks the budget's range: a positive count, `0 < p <= 1`, a finite threshold and a
    /// positive parameter budget.
    pub fn validate(&self) -> Result<()> {
        let bad = |reason: &str| {
            Err(Error::InvalidBudget {
                budget: self.to_string(),
                reason: reason.to_string(),
            })
        };
        match *self {
            Budget::Count(0) => bad("the count must be at least 1"),
            Budget::Fraction(p) if !(p > 0.0 && p <= 1.0) => bad("the fraction must be in (0, 1]"),
            Budget::Threshold(t) if t.is_nan() => bad("the threshold must be a number"),
            Budget::Parameters(0) => bad("the parameter budget must be at least 1"),
            _ => Ok(()),
        }
    }
}

/// One ranked unit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RankedUnit {
    /// 0-based position in the ascending ranking.
    pub rank: usize,
    /// The unit name.
    pub unit: String,
    /// The checkpoint tensor it belongs to.
    pub tensor: String,
    /// Which part of the tensor it is.
    pub part: UnitPart,
    /// Its condition number (`inf` possible with the `kappatune` convention).
    #[serde(with = "crate::float_serde")]
    pub kappa: f64,
    /// Its parameter count.
    pub n_params: usize,
    /// Whether the budget selected it.
    pub selected: bool,
}

/// The full ranking and the units a budget selected.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Selection {
    /// The budget applied.
    pub budget: Budget,
    /// Every candidate, ascending `kappa`, ties by name.
    pub ranking: Vec<RankedUnit>,
    /// Units that could not be ranked (no finite metrics), by name.
    pub unranked: Vec<String>,
}

impl Selection {
    /// The selected units, lowest `kappa` first.
    pub fn selected(&self) -> impl Iterator<Item = &RankedUnit> {
        self.ranking.iter().filter(|r| r.selected)
    }

    /// Number of selected units.
    pub fn n_selected(&self) -> usize {
        self.selected().count()
    }

    /// Parameters in the selected units.
    pub fn n_params_selected(&self) -> u64 {
        self.selected().map(|r| r.n_params as u64).sum()
    }
}

/// Ranks every analysed unit of `result` by ascending `kappa`, ties by unit name.
///
/// Units without metrics (NaN values, all zeros) are left out of the ranking. Units with
/// `kappa = inf` (rank-deficient, `kappatune` convention) rank last.
pub fn rank(result: &SpectraResult) -> (Vec<RankedUnit>, Vec<String>) {
    let mut ranking: Vec<RankedUnit> = Vec::new();
    let mut unranked = Vec::new();
    for unit in &result.units {
        match unit.kappa() {
            Some(kappa) if !kappa.is_nan() => ranking.push(RankedUnit {
                rank: 0,
                unit: unit.unit.clone(),
                tensor: unit.tensor.clone(),
                part: unit.part,
                kappa,
                n_params: unit.n_params,
                selected: false,
            }),
            _ => unranked.push(unit.unit.clone()),
        }
    }
    ranking.sort_by(|a, b| {
        a.kappa
            .total_cmp(&b.kappa)
            .then_with(|| a.unit.cmp(&b.unit))
    });
    for (rank, unit) in ranking.iter_mut().enumerate() {
        unit.rank = rank;
    }
    (ranking, unranked)
}

/// Ranks the units of `result` and selects the lowest-`kappa` ones under `budget`.
pub fn select(result: &SpectraResult, budget: Budget) -> Result<Selection> {
    budget.validate()?;
    let (mut ranking, unranked) = rank(result);
    if ranking.is_empty() {
        return Err(Error::EmptyRanking);
    }
    let n_candidates = ranking.len();
    let n_selected = match budget {
        Budget::Count(n) => n.min(n_candidates),
        Budget::Fraction(p) => ((n_candidates as f64 * p).floor() as usize).clamp(1, n_candidates),
        Budget::Threshold(t) => ranking.iter().take_while(|r| r.kappa <= t).count(),
        Budget::Parameters(max_params) => {
            let mut total: u64 = 0;
            let n = ranking
                .iter()
                .take_while(|r| {
                    total += r.n_params as u64;
                    total <= max_params
                })
                .count();
            if n == 0 {
                return Err(Error::InvalidBudget {
                    budget: budget.to_string(),
                    reason: format!(
                        "the lowest-kappa unit `{}` alone has {} parameters",
                        ranking[0].unit, ranking[0].n_params
                    ),
                });
            }
            n
        }
        Budget::All => n_candidates,
    };
    for unit in ranking.iter_mut().take(n_selected) {
        unit.selected = true;
    }
    Ok(Selection {
        budget,
        ranking,
        unranked,
    })
}

/// Which checkpoint tensors a training loop should update: the JSON selection file.
///
/// `tensors` holds the checkpoint names of every tensor with a selected unit. When a unit is
/// only part of a tensor (an expert slice, a Q/K/V block), `partial_units` lists it so the
/// training loop can mask gradients to that part; whole-tensor units need nothing more.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainableMask {
    /// The convention the `kappa`s were computed under.
    pub convention: Convention,
    /// The budget that produced the selection.
    pub budget: Budget,
    /// Checkpoint tensors to update, sorted.
    pub tensors: BTreeSet<String>,
    /// Selected units that are parts of a tensor, lowest `kappa` first.
    pub partial_units: Vec<String>,
    /// Every selected unit, lowest `kappa` first.
    pub units: Vec<String>,
}

impl TrainableMask {
    /// The mask for a selection made on a result computed under `convention`.
    pub fn from_selection(selection: &Selection, convention: Convention) -> Self {
        let selected: Vec<&RankedUnit> = selection.selected().collect();
        Self {
            convention,
            budget: selection.budget,
            tensors: selected.iter().map(|r| r.tensor.clone()).collect(),
            partial_units: selected
                .iter()
                .filter(|r| !matches!(r.part, UnitPart::Whole | UnitPart::ExpertMean { .. }))
                .map(|r| r.unit.clone())
                .collect(),
            units: selected.iter().map(|r| r.unit.clone()).collect(),
        }
    }

    /// Whether the tensor with this checkpoint name is (at least partly) trainable.
    pub fn is_trainable(&self, tensor: &str) -> bool {
        self.tensors.contains(tensor)
    }

    /// Writes the mask as pretty JSON.
    pub fn save(&self, path: &Path) -> Result<()> {
        crate::json_file::write_json(self, path)
    }

    /// Reads a mask written by [`TrainableMask::save`].
    pub fn load(path: &Path) -> Result<Self> {
        crate::json_file::read_json(path)
    }
}

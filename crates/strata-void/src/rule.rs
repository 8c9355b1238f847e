//! The L2 Adaptive Computation rule on one token's sequence of norm changes.
//!
//! `delta_l = ||h_{l+1}|| - ||h_l||` (signed), threshold
//! `lambda_l = alpha * (max_{j<l} delta_j - min_{j<l} delta_j)` over earlier layers only
//! (0 for the first layer, and for the second, whose history is a single value), and layer
//! `l` is **active** when `delta_l >= lambda_l`, a **void** otherwise
//! (`methods/void.md`, "Definitions").

use crate::error::{Error, Result};

/// The fewest blocks a model needs for the rule: layer `l`'s threshold comes from layers
/// before it, so a single block has no history at all. (With two blocks both thresholds are
/// 0 and `alpha` has no effect; that is allowed, with a warning.)
pub const MIN_LAYERS: usize = 2;

/// Checks that `alpha` is finite and in `[0, 1]`.
pub fn check_alpha(alpha: f64) -> Result<()> {
    if alpha.is_finite() && (0.0..=1.0).contains(&alpha) {
        Ok(())
    } else {
        Err(Error::Alpha { value: alpha })
    }
}

/// Checks that a model of `n_layers` blocks is deep enough for the rule.
pub fn check_depth(n_layers: usize) -> Result<()> {
    if n_layers < MIN_LAYERS {
        return Err(Error::TooShallow {
            n_layers,
            min: MIN_LAYERS,
        });
    }
    if n_layers == MIN_LAYERS {
        tracing::warn!(
            n_layers,
            "with {n_layers} blocks every void threshold is 0: alpha has no effect"
        );
    }
    Ok(())
}

/// The running state of the rule for one token: the extremes of the deltas seen so far.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct History {
    /// Largest and smallest delta so far; `None` before the first layer.
    extremes: Option<(f32, f32)>,
}

impl History {
    /// The threshold for the next layer: `alpha * (max - min)` of the deltas seen, 0 when none.
    pub fn threshold(&self, alpha: f32) -> f32 {
        match self.extremes {
            Some((max, min)) => alpha * (max - min),
            None => 0.0,
        }
    }

    /// Adds one layer's delta to the history.
    pub fn push(&mut self, delta: f32) {
        self.extremes = Some(match self.extremes {
            Some((max, min)) => (max.max(delta), min.min(delta)),
            None => (delta, delta),
        });
    }
}

/// The thresholds and active flags of one token's layers, from its deltas (in layer order).
///
/// ```
/// // The worked example of methods/void.md: alpha = 0.8, layer 4 is the one void.
/// let (thresholds, active) = strata_void::lac_map(&[5.0, 2.0, 3.0, 8.0, 1.0, 10.0], 0.8);
/// assert_eq!(active, [true, true, true, true, false, true]);
/// assert!((thresholds[5] - 5.6).abs() < 1e-6);
/// ```
pub fn lac_map(deltas: &[f32], alpha: f32) -> (Vec<f32>, Vec<bool>) {
    let mut history = History::default();
    let mut thresholds = Vec::with_capacity(deltas.len());
    let mut active = Vec::with_capacity(deltas.len());
    for &delta in deltas {
        let threshold = history.threshold(alpha);
        thresholds.push(threshold);
        active.push(delta >= threshold);
        history.push(delta);
    }
    (thresholds, active)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `methods/void.md`, "Definitions", worked example: alpha and deltas.
    const WORKED_ALPHA: f32 = 0.8;
    const WORKED_DELTAS: [f32; 6] = [5.0, 2.0, 3.0, 8.0, 1.0, 10.0];
    /// ... and its table: thresholds and results.
    const WORKED_THRESHOLDS: [f32; 6] = [0.0, 0.0, 2.4, 2.4, 4.8, 5.6];
    const WORKED_ACTIVE: [bool; 6] = [true, true, true, true, false, true];

    #[test]
    fn the_worked_example_of_the_spec() {
        let (thresholds, active) = lac_map(&WORKED_DELTAS, WORKED_ALPHA);
        assert_eq!(active, WORKED_ACTIVE);
        for (got, want) in thresholds.iter().zip(WORKED_THRESHOLDS) {
            assert!((got - want).abs() < 1e-6, "{got} vs {want}");
        }
    }

    #[test]
    fn alpha_zero_voids_exactly_the_shrinking_layers_and_voids_are_not_monotone() {
        let deltas = [1.0, -0.5, 0.0, 2.0, -3.0, 4.0];
        let (_, active) = lac_map(&deltas, 0.0);
        assert_eq!(active, [true, false, true, true, false, true]);
    }

    #[test]
    fn a_larger_alpha_never_activates_more_layers() {
        let deltas = [0.3, 1.2, -0.4, 0.9, 0.2, 1.5, 0.1, 0.7];
        let count = |alpha| lac_map(&deltas, alpha).1.iter().filter(|&&a| a).count();
        let counts: Vec<usize> = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0].map(count).to_vec();
        assert!(counts.windows(2).all(|w| w[0] >= w[1]), "{counts:?}");
        assert!(counts[0] > counts[5], "{counts:?}");
    }

    #[test]
    fn alpha_and_depth_are_checked() {
        for bad in [-0.1, 1.5, f64::NAN, f64::INFINITY] {
            let err = check_alpha(bad).unwrap_err();
            assert!(matches!(err, Error::Alpha { .. }));
        }
        assert!(check_alpha(0.0).is_ok() && check_alpha(1.0).is_ok());
        let err = check_depth(1).unwrap_err();
        assert!(
            err.to_string().contains("1 block(s) is too shallow"),
            "{err}"
        );
        assert!(check_depth(2).is_ok());
    }
}

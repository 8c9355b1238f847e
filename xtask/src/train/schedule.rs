//! The learning-rate schedule and the checkpoint steps.

use super::spec::TrainSpec;

/// Linear warmup from 0 to `lr` over `warmup_steps`, then cosine decay to
/// `min_lr_ratio * lr` at `n_steps`. `step` counts updates already done.
pub fn learning_rate(spec: &TrainSpec, step: usize) -> f64 {
    let peak = spec.lr;
    if step < spec.warmup_steps {
        return peak * (step + 1) as f64 / spec.warmup_steps as f64;
    }
    let span = spec.n_steps.saturating_sub(spec.warmup_steps).max(1);
    let progress = ((step - spec.warmup_steps) as f64 / span as f64).min(1.0);
    let floor = peak * spec.min_lr_ratio;
    floor + (peak - floor) * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
}

/// Log-spaced, then evenly spaced checkpoint steps, as Pythia's: 0, 1, 2, 4, ... below
/// `every`, then every multiple of `every`, and always `n_steps` itself. Sorted, unique.
pub fn checkpoint_steps(n_steps: usize, every: usize) -> Vec<usize> {
    let every = every.max(1);
    let mut steps = vec![0];
    let mut p = 1;
    while p < every && p < n_steps {
        steps.push(p);
        p *= 2;
    }
    steps.extend((1..).map(|k| k * every).take_while(|&s| s < n_steps));
    steps.push(n_steps);
    steps.sort_unstable();
    steps.dedup();
    steps
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::spec::default_preset;

    #[test]
    fn checkpoints_are_log_then_evenly_spaced() {
        assert_eq!(
            checkpoint_steps(250, 50),
            vec![0, 1, 2, 4, 8, 16, 32, 50, 100, 150, 200, 250]
        );
        assert_eq!(checkpoint_steps(3, 50), vec![0, 1, 2, 3]);
    }

    #[test]
    fn schedule_warms_up_peaks_and_decays_to_the_floor() {
        let spec = default_preset();
        let w = spec.warmup_steps;
        assert!(learning_rate(&spec, 0) < learning_rate(&spec, w / 2));
        assert!((learning_rate(&spec, w) - spec.lr).abs() < 1e-12);
        let last = learning_rate(&spec, spec.n_steps);
        assert!((last - spec.lr * spec.min_lr_ratio).abs() < 1e-12);
        for step in w..spec.n_steps {
            assert!(learning_rate(&spec, step + 1) <= learning_rate(&spec, step));
        }
    }
}

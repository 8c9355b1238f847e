//! The five-parameter model of a layer's massive-activation series over training
//! (arXiv:2508.03616, its Eq. 9):
//!
//! `f(t) = A * exp(-lambda * x) * ln(x) + K`, with `x = gamma * t + t0`,
//!
//! fitted by Levenberg-Marquardt (the `levenberg-marquardt` crate, analytic Jacobian) on
//! normalised data, as `shared/methods/massive.md` describes: `t_n = t / t_max`,
//! `y_n = (y - y_min) / (y_max - y_min)`, the initial guess `A0 = range(y_n) = 1`,
//! `K0 = min(y_n) + A0 / 2`, `lambda0 = 1 / std(t_n)` (population standard deviation),
//! `gamma0 = 1 / range(t_n)`, `t0 = 1`, and the map back `A = s_y A_n`,
//! `K = s_y K_n + y_min`, `gamma = gamma_n / t_max` (`lambda`, `t0` unchanged).
//!
//! Bounds: `lambda >= 0` (the paper's only bound) by an active set (when the free fit ends
//! with `lambda < 0`, the fit is redone with `lambda = 0` held, the boundary optimum), and
//! `x > 0` at every data point, where `ln x` is defined, by rejecting any step that leaves
//! that domain (the trust region shrinks).
//!
//! Starts: the spec's guess, and by default four variants of it (a falling curve, a slow
//! rise, an early peak; [`FitConfig::multi_start`]); the lowest residual wins. On the series
//! the spec's start fits well the optimum is the same; on falling or flat series the single
//! start can stall on a flat curve.

use levenberg_marquardt::{LeastSquaresProblem, LevenbergMarquardt};
use nalgebra::{DMatrix, DVector, Dyn, Owned};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Number of parameters of the model.
pub const N_PARAMS: usize = 5;

/// The parameters of Eq. 9, in the units of the data (`gamma` per training step).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DynamicsParams {
    /// Amplitude.
    pub a: f64,
    /// Decay rate (`0`: a pure log curve without a peak).
    pub lambda: f64,
    /// Time scale, per training step.
    pub gamma: f64,
    /// Time offset (`x` at step 0).
    pub t0: f64,
    /// Asymptotic baseline.
    pub k: f64,
}

impl DynamicsParams {
    /// `f(t)`.
    pub fn eval(&self, t: f64) -> f64 {
        let x = self.gamma * t + self.t0;
        self.a * (-self.lambda * x).exp() * x.ln() + self.k
    }

    /// The step where `f` peaks, `(e^{W(1/lambda)} - t0) / gamma` (the paper's Eqs. 11-13,
    /// `W` the principal branch of Lambert's W); `None` when `lambda <= 0` or `gamma <= 0`
    /// (no peak: the curve only rises or only falls).
    pub fn peak_step(&self) -> Option<f64> {
        if self.lambda.is_nan() || self.gamma.is_nan() || self.lambda <= 0.0 || self.gamma <= 0.0 {
            return None;
        }
        let u = lambert_w0(1.0 / self.lambda);
        Some((u.exp() - self.t0) / self.gamma)
    }

    /// The parameters as `[A, lambda, gamma, t0, K]`.
    pub fn to_array(&self) -> [f64; N_PARAMS] {
        [self.a, self.lambda, self.gamma, self.t0, self.k]
    }

    fn from_array(p: &[f64]) -> Self {
        Self {
            a: p[0],
            lambda: p[1],
            gamma: p[2],
            t0: p[3],
            k: p[4],
        }
    }
}

/// The names of the parameters, in [`DynamicsParams::to_array`] order.
pub const PARAM_NAMES: [&str; N_PARAMS] = ["A", "lambda", "gamma", "t0", "K"];

/// A fitted series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DynamicsFit {
    /// The fitted parameters, in the data's units.
    pub params: DynamicsParams,
    /// Coefficient of determination `1 - RSS / TSS`.
    pub r2: f64,
    /// Akaike's criterion for least squares, `n ln(RSS / n) + 2k` with `k = 5`.
    pub aic: f64,
    /// Residual sum of squares, in the data's units.
    pub rss: f64,
    /// Points fitted.
    pub n_points: usize,
    /// The step of the peak ([`DynamicsParams::peak_step`]).
    pub peak_step: Option<f64>,
    /// Whether the peak falls inside the fitted steps (`0 < t_peak <= t_max`): an "early
    /// peak" layer rather than a "log increase" one.
    pub peak_observed: bool,
    /// Whether the bound `lambda >= 0` is active (the fit holds `lambda = 0`).
    pub lambda_at_bound: bool,
    /// Why the optimiser stopped (the `levenberg-marquardt` crate's termination reason).
    pub termination: String,
}

/// Settings of the optimiser.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FitConfig {
    /// Relative tolerance on the objective, the parameters and the gradient (MINPACK's
    /// `ftol`, `xtol`, `gtol`).
    pub tolerance: f64,
    /// At most this many residual evaluations per parameter and per fit.
    pub patience: usize,
    /// Also start from four variants of the spec's guess (a falling curve, a slow rise, an
    /// early peak) and keep the lowest residual: the spec's single start fits rising series
    /// and can stall on falling or flat ones.
    pub multi_start: bool,
}

impl Default for FitConfig {
    /// scipy's defaults for `curve_fit` (`ftol = xtol = gtol = 1e-8`), a generous
    /// evaluation budget (the series are short), and several starts.
    fn default() -> Self {
        Self {
            tolerance: 1e-8,
            patience: 2000,
            multi_start: true,
        }
    }
}

/// Fits Eq. 9 to the points `(steps[i], values[i])`.
///
/// Refused with [`Error::BadData`], the reason named: different lengths, no more points
/// than parameters (a fit of 5 parameters needs at least 6 points), a non-finite value or
/// step, a negative step, all steps equal, or a constant series (nothing to fit).
pub fn fit_dynamics(
    what: &str,
    steps: &[f64],
    values: &[f64],
    config: &FitConfig,
) -> Result<DynamicsFit> {
    let bad = |reason: String| Error::BadData {
        what: what.to_string(),
        reason,
    };
    if steps.len() != values.len() {
        return Err(bad(format!(
            "{} steps but {} values",
            steps.len(),
            values.len()
        )));
    }
    let n = steps.len();
    if n <= N_PARAMS {
        return Err(bad(format!(
            "{n} points for {N_PARAMS} parameters: the fit needs at least {} points",
            N_PARAMS + 1
        )));
    }
    if let Some(i) = (0..n).find(|&i| !steps[i].is_finite() || !values[i].is_finite()) {
        return Err(bad(format!(
            "point {i} is not finite (step {}, value {})",
            steps[i], values[i]
        )));
    }
    if let Some(i) = steps.iter().position(|&t| t < 0.0) {
        return Err(bad(format!("point {i} has a negative step {}", steps[i])));
    }
    let t_max = steps.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let t_min = steps.iter().copied().fold(f64::INFINITY, f64::min);
    if t_max <= t_min {
        return Err(bad(format!("every point has the same step {t_max}")));
    }
    let y_max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let y_min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let s_y = y_max - y_min;
    if s_y.is_nan() || s_y <= 0.0 {
        return Err(bad(format!(
            "the series is constant ({y_min}): nothing to fit"
        )));
    }
    let t_n: Vec<f64> = steps.iter().map(|t| t / t_max).collect();
    let y_n: Vec<f64> = values.iter().map(|y| (y - y_min) / s_y).collect();

    // The spec's initial guess, in normalised space.
    let mean_t = t_n.iter().sum::<f64>() / n as f64;
    let std_t = (t_n.iter().map(|t| (t - mean_t).powi(2)).sum::<f64>() / n as f64).sqrt();
    let a0 = 1.0;
    let initial = [a0, 1.0 / std_t, 1.0 / (1.0 - t_min / t_max), 1.0, a0 / 2.0];

    let solver = LevenbergMarquardt::new()
        .with_tol(config.tolerance)
        .with_patience(config.patience);
    let starts: Vec<[f64; N_PARAMS]> = if config.multi_start {
        let [a, l, g, t0, k] = initial;
        vec![
            initial,
            [-a, l, g, t0, k + a / 2.0],
            [a, l / 10.0, g, t0, k - a / 2.0],
            [-a, l / 10.0, g, t0, k + a / 2.0],
            [a, l, 10.0 * g, t0, k],
        ]
    } else {
        vec![initial]
    };
    let mut best: Option<Candidate> = None;
    let mut failures = Vec::new();
    for start in starts {
        for candidate in fit_from(&solver, &t_n, &y_n, start) {
            match candidate {
                Ok(c) => {
                    if best.as_ref().is_none_or(|b| c.rss < b.rss) {
                        best = Some(c);
                    }
                }
                Err(reason) => failures.push(reason),
            }
        }
    }
    let Some(best) = best else {
        return Err(bad(format!(
            "the optimiser failed from every start: {}",
            failures.join("; ")
        )));
    };
    let (p, lambda_at_bound, termination) = (best.params, best.lambda_at_bound, best.termination);
    let params = DynamicsParams {
        a: s_y * p[0],
        lambda: p[1],
        gamma: p[2] / t_max,
        t0: p[3],
        k: s_y * p[4] + y_min,
    };
    let mean_y = values.iter().sum::<f64>() / n as f64;
    let tss: f64 = values.iter().map(|y| (y - mean_y).powi(2)).sum();
    let rss: f64 = steps
        .iter()
        .zip(values)
        .map(|(&t, &y)| (params.eval(t) - y).powi(2))
        .sum();
    if !rss.is_finite() {
        return Err(bad("the fitted curve is not finite at every step".into()));
    }
    let peak_step = params.peak_step();
    Ok(DynamicsFit {
        params,
        r2: 1.0 - rss / tss,
        aic: n as f64 * (rss / n as f64).ln() + 2.0 * N_PARAMS as f64,
        rss,
        n_points: n,
        peak_step,
        peak_observed: peak_step.is_some_and(|t| t > 0.0 && t <= t_max),
        lambda_at_bound,
        termination,
    })
}

/// One local optimum in normalised space.
struct Candidate {
    params: [f64; N_PARAMS],
    rss: f64,
    lambda_at_bound: bool,
    termination: String,
}

/// The local optima reached from `start`: the free fit if it keeps `lambda >= 0`, else the
/// fits with `lambda = 0` held, from the free optimum and from the start.
fn fit_from(
    solver: &LevenbergMarquardt<f64>,
    t: &[f64],
    y: &[f64],
    start: [f64; N_PARAMS],
) -> Vec<std::result::Result<Candidate, String>> {
    let run = |start: [f64; N_PARAMS], free: Vec<usize>| {
        let problem = Problem::new(t, y, start, free);
        if !problem.valid_at(&start) {
            return Err("a start outside the domain of ln x".to_string());
        }
        let (problem, report) = solver.minimize(problem);
        let usable = report.termination.was_successful()
            || matches!(
                report.termination,
                levenberg_marquardt::TerminationReason::LostPatience
                    | levenberg_marquardt::TerminationReason::NoImprovementPossible(_)
            );
        let rss = problem.rss();
        if !usable || !rss.is_finite() {
            return Err(format!("{:?}", report.termination));
        }
        Ok(Candidate {
            params: problem.params,
            rss,
            lambda_at_bound: problem.free.len() < N_PARAMS,
            termination: format!("{:?}", report.termination),
        })
    };
    match run(start, vec![0, 1, 2, 3, 4]) {
        Ok(c) if c.params[1] >= 0.0 => vec![Ok(c)],
        Ok(c) => {
            // The free optimum breaks lambda >= 0: the bounded optimum lies on the bound.
            let mut from_free = c.params;
            from_free[1] = 0.0;
            let mut from_start = start;
            from_start[1] = 0.0;
            vec![
                run(from_free, vec![0, 2, 3, 4]),
                run(from_start, vec![0, 2, 3, 4]),
            ]
        }
        Err(e) => vec![Err(e)],
    }
}

/// The principal branch of Lambert's W on `z >= 0`: the `w >= 0` with `w e^w = z`
/// (Halley's iteration from `ln(1 + z)`, to machine precision).
pub fn lambert_w0(z: f64) -> f64 {
    if z.is_nan() || z <= 0.0 {
        return 0.0;
    }
    let mut w = (1.0 + z).ln();
    for _ in 0..64 {
        let ew = w.exp();
        let f = w * ew - z;
        let step = f / (ew * (w + 1.0) - (w + 2.0) * f / (2.0 * w + 2.0));
        w -= step;
        if step.abs() <= 1e-15 * w.abs().max(1e-300) {
            break;
        }
    }
    w
}

/// Eq. 9 as a least-squares problem in normalised space, some parameters free.
struct Problem<'a> {
    t: &'a [f64],
    y: &'a [f64],
    /// All five parameters `[A, lambda, gamma, t0, K]`.
    params: [f64; N_PARAMS],
    /// Indices of the free ones, in order.
    free: Vec<usize>,
}

impl<'a> Problem<'a> {
    fn new(t: &'a [f64], y: &'a [f64], params: [f64; N_PARAMS], free: Vec<usize>) -> Self {
        Self { t, y, params, free }
    }

    /// The residual sum of squares at the current parameters (infinite outside the domain).
    fn rss(&self) -> f64 {
        if !self.valid_at(&self.params) {
            return f64::INFINITY;
        }
        let p = DynamicsParams::from_array(&self.params);
        self.t
            .iter()
            .zip(self.y)
            .map(|(&t, &y)| (p.eval(t) - y).powi(2))
            .sum()
    }

    /// Whether `ln x` is defined at every point.
    fn valid_at(&self, p: &[f64; N_PARAMS]) -> bool {
        p.iter().all(|v| v.is_finite()) && self.t.iter().all(|&t| p[2] * t + p[3] > 0.0)
    }
}

impl LeastSquaresProblem<f64, Dyn, Dyn> for Problem<'_> {
    type ResidualStorage = Owned<f64, Dyn>;
    type JacobianStorage = Owned<f64, Dyn, Dyn>;
    type ParameterStorage = Owned<f64, Dyn>;

    fn set_params(&mut self, x: &DVector<f64>) {
        for (i, &idx) in self.free.iter().enumerate() {
            self.params[idx] = x[i];
        }
    }

    fn params(&self) -> DVector<f64> {
        DVector::from_iterator(self.free.len(), self.free.iter().map(|&i| self.params[i]))
    }

    fn residuals(&self) -> Option<DVector<f64>> {
        let p = DynamicsParams::from_array(&self.params);
        if !self.valid_at(&self.params) {
            // Outside the domain: a residual larger than any inside it, so the step is
            // rejected and the trust region shrinks.
            return Some(DVector::from_element(self.t.len(), 1e6));
        }
        let r = DVector::from_iterator(
            self.t.len(),
            self.t.iter().zip(self.y).map(|(&t, &y)| p.eval(t) - y),
        );
        if r.iter().all(|v| v.is_finite()) {
            Some(r)
        } else {
            Some(DVector::from_element(self.t.len(), 1e6))
        }
    }

    fn jacobian(&self) -> Option<DMatrix<f64>> {
        let [a, lambda, gamma, t0, _] = self.params;
        let mut jac = DMatrix::zeros(self.t.len(), self.free.len());
        for (row, &t) in self.t.iter().enumerate() {
            let x = gamma * t + t0;
            let e = (-lambda * x).exp();
            let log_x = x.ln();
            let g = 1.0 / x - lambda * log_x;
            let full = [e * log_x, -a * x * e * log_x, a * e * g * t, a * e * g, 1.0];
            for (col, &idx) in self.free.iter().enumerate() {
                jac[(row, col)] = full[idx];
            }
        }
        Some(jac)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lambert_w_inverts_w_exp_w() {
        for z in [1e-6, 0.1, 1.0, std::f64::consts::E, 8.032, 1e3, 1e8] {
            let w = lambert_w0(z);
            assert!((w * w.exp() - z).abs() <= 1e-12 * z.max(1.0), "{z}: {w}");
        }
        assert!((lambert_w0(std::f64::consts::E) - 1.0).abs() < 1e-14);
    }
}

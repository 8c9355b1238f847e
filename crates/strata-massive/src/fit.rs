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
//! The same curves in the paper's Eq. 14 form,
//! `exp(-beta t) (A1 ln(t + tau0) + A2) + K`, are fitted from the same starts (with
//! `beta >= 0`), and the better fit of the two is kept, reported in Eq. 9's parameters
//! ([`FitConfig::reparametrized`]).
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
    /// Whether the best fit came from the reparametrised form (the paper's Eq. 14; the
    /// parameters are reported in Eq. 9's form all the same).
    pub reparametrized: bool,
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
    /// Also fit the paper's Eq. 14 reparametrisation from the same starts (less coupled
    /// parameters) and keep the better fit, as the paper does.
    pub reparametrized: bool,
}

impl Default for FitConfig {
    /// scipy's defaults for `curve_fit` (`ftol = xtol = gtol = 1e-8`), a generous
    /// evaluation budget (the series are short), and several starts.
    fn default() -> Self {
        Self {
            tolerance: 1e-8,
            patience: 2000,
            multi_start: true,
            reparametrized: true,
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
        let mut candidates = fit_from(&solver, &t_n, &y_n, Form::Original, start);
        if config.reparametrized
            && let Some(q) = to_reparametrized(start)
        {
            candidates.extend(fit_from(&solver, &t_n, &y_n, Form::Reparametrized, q));
        }
        for candidate in candidates {
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
    let (p, lambda_at_bound, reparametrized, termination) = (
        best.params,
        best.lambda_at_bound,
        best.reparametrized,
        best.termination,
    );
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
        reparametrized,
        termination,
    })
}

/// One local optimum in normalised space.
struct Candidate {
    params: [f64; N_PARAMS],
    rss: f64,
    lambda_at_bound: bool,
    reparametrized: bool,
    termination: String,
}

/// The local optima reached from `start`: the free fit if it keeps `lambda >= 0`, else the
/// fits with `lambda = 0` held, from the free optimum and from the start.
fn fit_from(
    solver: &LevenbergMarquardt<f64>,
    t: &[f64],
    y: &[f64],
    form: Form,
    start: [f64; N_PARAMS],
) -> Vec<std::result::Result<Candidate, String>> {
    let bounded = form.bounded();
    let held: Vec<usize> = (0..N_PARAMS).filter(|&i| i != bounded).collect();
    let run = |start: [f64; N_PARAMS], free: Vec<usize>| {
        let problem = Problem::new(t, y, form, start, free);
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
        if !usable {
            return Err(format!("{:?}", report.termination));
        }
        // Every candidate is compared in Eq. 9's parameters.
        let params = match form {
            Form::Original => Some(problem.params),
            Form::Reparametrized => to_original(problem.params),
        }
        .ok_or_else(|| "the reparametrised optimum has no Eq. 9 form".to_string())?;
        let rss = Problem::new(t, y, Form::Original, params, Vec::new()).rss();
        if !rss.is_finite() {
            return Err(format!("{:?}", report.termination));
        }
        Ok(Candidate {
            params,
            rss,
            lambda_at_bound: problem.free.len() < N_PARAMS,
            reparametrized: form == Form::Reparametrized,
            termination: format!("{:?}", report.termination),
        })
    };
    match run(start, vec![0, 1, 2, 3, 4]) {
        Ok(c) if c.params[1] >= 0.0 => vec![Ok(c)],
        Ok(_) => {
            // The free optimum breaks lambda >= 0: the bounded optimum lies on the bound.
            let mut from_start = start;
            from_start[bounded] = 0.0;
            let mut out = vec![run(from_start, held.clone())];
            let problem = Problem::new(t, y, form, start, (0..N_PARAMS).collect());
            let (free_fit, _) = solver.minimize(problem);
            let mut from_free = free_fit.params;
            from_free[bounded] = 0.0;
            out.push(run(from_free, held));
            out
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
    /// Which parametrisation `params` are in.
    form: Form,
    /// All five parameters: `[A, lambda, gamma, t0, K]` (Eq. 9) or
    /// `[A1, A2, beta, tau0, K]` (Eq. 14).
    params: [f64; N_PARAMS],
    /// Indices of the free ones, in order.
    free: Vec<usize>,
}

/// The two parametrisations of the same curves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    /// Eq. 9: `A exp(-lambda x) ln x + K`, `x = gamma t + t0`.
    Original,
    /// Eq. 14: `exp(-beta t) (A1 ln(t + tau0) + A2) + K`, with `beta = lambda gamma`,
    /// `tau0 = t0 / gamma`, `A1 = A exp(-lambda t0)`, `A2 = A1 ln gamma`.
    Reparametrized,
}

impl Form {
    /// The index of the parameter bounded below by 0 (`lambda`, or `beta`).
    fn bounded(self) -> usize {
        match self {
            Self::Original => 1,
            Self::Reparametrized => 2,
        }
    }
}

/// Eq. 9 parameters as Eq. 14 ones (`gamma > 0`), `None` where undefined.
fn to_reparametrized(p: [f64; N_PARAMS]) -> Option<[f64; N_PARAMS]> {
    let [a, lambda, gamma, t0, k] = p;
    if gamma <= 0.0 || gamma.is_nan() {
        return None;
    }
    let a1 = a * (-lambda * t0).exp();
    let q = [a1, a1 * gamma.ln(), lambda * gamma, t0 / gamma, k];
    q.iter().all(|v| v.is_finite()).then_some(q)
}

/// Eq. 14 parameters as Eq. 9 ones, `None` where undefined (`A1 = 0`) or not finite.
fn to_original(q: [f64; N_PARAMS]) -> Option<[f64; N_PARAMS]> {
    let [a1, a2, beta, tau0, k] = q;
    if a1 == 0.0 {
        return None;
    }
    let gamma = (a2 / a1).exp();
    let p = [
        a1 * (beta * tau0).exp(),
        beta / gamma,
        gamma,
        tau0 * gamma,
        k,
    ];
    p.iter().all(|v| v.is_finite()).then_some(p)
}

impl<'a> Problem<'a> {
    fn new(
        t: &'a [f64],
        y: &'a [f64],
        form: Form,
        params: [f64; N_PARAMS],
        free: Vec<usize>,
    ) -> Self {
        Self {
            t,
            y,
            form,
            params,
            free,
        }
    }

    /// The model at step `t`.
    fn eval(&self, t: f64) -> f64 {
        match self.form {
            Form::Original => DynamicsParams::from_array(&self.params).eval(t),
            Form::Reparametrized => {
                let [a1, a2, beta, tau0, k] = self.params;
                (-beta * t).exp() * (a1 * (t + tau0).ln() + a2) + k
            }
        }
    }

    /// The residual sum of squares at the current parameters (infinite outside the domain).
    fn rss(&self) -> f64 {
        if !self.valid_at(&self.params) {
            return f64::INFINITY;
        }
        self.t
            .iter()
            .zip(self.y)
            .map(|(&t, &y)| (self.eval(t) - y).powi(2))
            .sum()
    }

    /// Whether the logarithm is defined at every point.
    fn valid_at(&self, p: &[f64; N_PARAMS]) -> bool {
        p.iter().all(|v| v.is_finite())
            && match self.form {
                Form::Original => self.t.iter().all(|&t| p[2] * t + p[3] > 0.0),
                Form::Reparametrized => self.t.iter().all(|&t| t + p[3] > 0.0),
            }
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
        if !self.valid_at(&self.params) {
            // Outside the domain: a residual larger than any inside it, so the step is
            // rejected and the trust region shrinks.
            return Some(DVector::from_element(self.t.len(), 1e6));
        }
        let r = DVector::from_iterator(
            self.t.len(),
            self.t.iter().zip(self.y).map(|(&t, &y)| self.eval(t) - y),
        );
        if r.iter().all(|v| v.is_finite()) {
            Some(r)
        } else {
            Some(DVector::from_element(self.t.len(), 1e6))
        }
    }

    fn jacobian(&self) -> Option<DMatrix<f64>> {
        let [p0, p1, p2, p3, _] = self.params;
        let mut jac = DMatrix::zeros(self.t.len(), self.free.len());
        for (row, &t) in self.t.iter().enumerate() {
            let full = match self.form {
                Form::Original => {
                    let (a, lambda, gamma, t0) = (p0, p1, p2, p3);
                    let x = gamma * t + t0;
                    let e = (-lambda * x).exp();
                    let log_x = x.ln();
                    let g = 1.0 / x - lambda * log_x;
                    [e * log_x, -a * x * e * log_x, a * e * g * t, a * e * g, 1.0]
                }
                Form::Reparametrized => {
                    let (a1, a2, beta, tau0) = (p0, p1, p2, p3);
                    let e = (-beta * t).exp();
                    let log_x = (t + tau0).ln();
                    [
                        e * log_x,
                        e,
                        -t * e * (a1 * log_x + a2),
                        e * a1 / (t + tau0),
                        1.0,
                    ]
                }
            };
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

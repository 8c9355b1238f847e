//! The Sparsing Law's fitted laws of the activation ratio over training (arXiv:2411.02335,
//! Eq. 4-5), with `D` the tokens seen in billions:
//!
//! - ReLU: `A(D) = exp(-c * D^alpha + b) + A0` (falls towards the limit `A0`);
//! - SiLU: `A(D) = -c * D^(-alpha) + A0` (rises towards the limit `A0`).
//!
//! Fitted by Levenberg-Marquardt (the `levenberg-marquardt` crate, MINPACK's algorithm, with
//! an analytic Jacobian), as the paper's authors did with scipy's `curve_fit`. The fit runs on
//! `u = D / D_max`, which leaves `alpha`, `b` and `A0` unchanged and rescales `c`
//! (`c = c_u / D_max^alpha` for ReLU, `c = c_u * D_max^alpha` for SiLU): tiny runs see a
//! few hundred thousand tokens, where `c` on the raw `D` is in the hundreds and badly
//! conditioned. Several starts (a few exponents, a few distances of the limit from the
//! data) are tried and the lowest residual sum of squares kept; a start the optimiser does
//! not bring to convergence does not count, and when none converges the fit fails with the
//! reasons. The values are fitted in the unit given (the paper fits percent).

use levenberg_marquardt::{LeastSquaresProblem, LevenbergMarquardt};
use nalgebra::{DMatrix, DVector, Dyn, Owned};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Which of the two laws.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Law {
    /// `A(D) = exp(-c * D^alpha + b) + A0` (the paper's ReLU models).
    Relu,
    /// `A(D) = -c * D^(-alpha) + A0` (the paper's SiLU models).
    Silu,
}

impl Law {
    /// Both laws.
    pub const ALL: [Law; 2] = [Law::Relu, Law::Silu];

    /// `relu` or `silu`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Relu => "relu",
            Self::Silu => "silu",
        }
    }

    /// The formula, as the paper writes it.
    pub fn formula(self) -> &'static str {
        match self {
            Self::Relu => "A(D) = exp(-c * D^alpha + b) + A0",
            Self::Silu => "A(D) = -c * D^(-alpha) + A0",
        }
    }

    /// Parameters of the law: 4 (ReLU) or 3 (SiLU).
    pub fn n_params(self) -> usize {
        match self {
            Self::Relu => 4,
            Self::Silu => 3,
        }
    }

    /// The law the paper fits to a model with this MLP activation: ReLU's for ReLU, SiLU's
    /// for the smooth activations (SiLU, GELU).
    pub fn for_activation(activation: strata_core::config::Activation) -> Self {
        match activation {
            strata_core::config::Activation::Relu => Self::Relu,
            _ => Self::Silu,
        }
    }
}

/// Fitted parameters of a law, in the data's units with `D` in billions of tokens.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "law", rename_all = "snake_case")]
pub enum LawParams {
    /// `exp(-c * D^alpha + b) + A0`.
    Relu {
        /// Rate.
        c: f64,
        /// Exponent.
        alpha: f64,
        /// Log-amplitude.
        b: f64,
        /// The limit as `D` grows.
        a0: f64,
    },
    /// `-c * D^(-alpha) + A0`.
    Silu {
        /// Amplitude.
        c: f64,
        /// Exponent.
        alpha: f64,
        /// The limit as `D` grows.
        a0: f64,
    },
}

impl LawParams {
    /// `A(D)`, `D` in billions of tokens.
    pub fn eval(&self, d: f64) -> f64 {
        match *self {
            Self::Relu { c, alpha, b, a0 } => (-c * d.powf(alpha) + b).exp() + a0,
            Self::Silu { c, alpha, a0 } => -c * d.powf(-alpha) + a0,
        }
    }

    /// Which law.
    pub fn law(&self) -> Law {
        match self {
            Self::Relu { .. } => Law::Relu,
            Self::Silu { .. } => Law::Silu,
        }
    }

    /// The limit `A0`.
    pub fn limit(&self) -> f64 {
        match *self {
            Self::Relu { a0, .. } | Self::Silu { a0, .. } => a0,
        }
    }

    /// From the optimiser's parameters on `u = D / d_max`.
    fn from_scaled(law: Law, p: &[f64], d_max: f64) -> Self {
        match law {
            Law::Relu => Self::Relu {
                c: p[0] / d_max.powf(p[1]),
                alpha: p[1],
                b: p[2],
                a0: p[3],
            },
            Law::Silu => Self::Silu {
                c: p[0] * d_max.powf(p[1]),
                alpha: p[1],
                a0: p[2],
            },
        }
    }
}

impl std::fmt::Display for LawParams {
    /// `c = 3.85e4, alpha = 1.096, b = 2.996, A0 = 11.48`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Self::Relu { c, alpha, b, a0 } => {
                write!(
                    f,
                    "c = {c:.4e}, alpha = {alpha:.4}, b = {b:.4}, A0 = {a0:.4}"
                )
            }
            Self::Silu { c, alpha, a0 } => {
                write!(f, "c = {c:.4e}, alpha = {alpha:.4}, A0 = {a0:.4}")
            }
        }
    }
}

/// A fitted law.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LawFit {
    /// The parameters, `D` in billions of tokens.
    pub params: LawParams,
    /// Points fitted.
    pub n_points: usize,
    /// The smallest and largest `D` fitted.
    pub d_range: (f64, f64),
    /// Residual sum of squares, in the data's units squared.
    pub rss: f64,
    /// Coefficient of determination `1 - RSS / TSS`.
    pub r2: f64,
    /// Residual evaluations of the winning start.
    pub n_evaluations: usize,
    /// Why the optimiser stopped (the `levenberg-marquardt` crate's termination reason).
    pub termination: String,
    /// When the optimum lacks the law's shape (`c <= 0` or `alpha <= 0`: no approach to a
    /// limit from the law's side; `alpha` near 0: the limit is not identified by the data),
    /// what is wrong; the parameters are still the least-squares optimum.
    pub caveat: Option<String>,
}

impl LawFit {
    /// A short label for a legend: `relu law, A0 10.78%` (the limit, followed by `unit`), or
    /// `silu law, degenerate` when the fit has a caveat.
    pub fn label(&self, unit: &str) -> String {
        let law = self.params.law().name();
        match self.caveat {
            Some(_) => format!("{law} law, degenerate"),
            None => format!("{law} law, A0 {:.2}{unit}", self.params.limit()),
        }
    }

    /// The fitted curve at `n + 1` evenly spaced `D` over the fitted range, as
    /// `(tokens seen, A)` (tokens, not billions; `A` in the fitted unit).
    pub fn curve(&self, n: usize) -> Vec<(f64, f64)> {
        let (lo, hi) = self.d_range;
        let n = n.max(1);
        (0..=n)
            .map(|i| lo + (hi - lo) * i as f64 / n as f64)
            .map(|d| (d * 1e9, self.params.eval(d)))
            .collect()
    }
}

impl LawParams {
    /// What keeps these parameters from describing the law's approach to its limit, if
    /// anything.
    pub fn caveat(&self) -> Option<String> {
        let (c, alpha, direction) = match *self {
            Self::Relu { c, alpha, .. } => (c, alpha, "falls"),
            Self::Silu { c, alpha, .. } => (c, alpha, "rises"),
        };
        if alpha.abs() < 1e-3 {
            Some(match *self {
                Self::Relu { c, alpha, a0, .. } => format!(
                    "alpha = {alpha:.2e} is about 0 (c = {c:.3e}): the curve degenerates into \
                     the pure power law exp(b - c) * D^(-{:.3}) + {a0:.4}, not the law's \
                     stretched exponential",
                    c * alpha
                ),
                Self::Silu { c, alpha, a0 } => format!(
                    "alpha = {alpha:.2e} is about 0 (c = {c:.3e}): the curve degenerates into \
                     a logarithmic rise {:.4} * ln D + {:.4}, with no limit; A0 = {a0:.4e} is \
                     not identified",
                    c * alpha,
                    a0 - c
                ),
            })
        } else if c <= 0.0 || alpha <= 0.0 {
            Some(format!(
                "c = {c:.3e}, alpha = {alpha:.3}: the law {direction} towards A0 only for c > 0 \
                 and alpha > 0, so this optimum does not have the law's shape"
            ))
        } else {
            None
        }
    }
}

/// Settings of the optimiser.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LawConfig {
    /// Relative tolerance on the objective, the parameters and the gradient (MINPACK's
    /// `ftol`, `xtol`, `gtol`).
    pub tolerance: f64,
    /// At most this many residual evaluations per parameter and start.
    pub patience: usize,
}

impl Default for LawConfig {
    /// Tolerance 1e-12 (tighter than scipy's 1e-8: the series are short and cheap) and a
    /// budget of 2000 evaluations per parameter.
    fn default() -> Self {
        Self {
            tolerance: 1e-12,
            patience: 2000,
        }
    }
}

/// Fits `law` to the points `(d[i], values[i])`, `d` in billions of tokens (drop warm-up
/// checkpoints first: the laws describe the run after it).
///
/// Refused, the reason named: different lengths; no more points than the law has
/// parameters ([`Error::TooFewPoints`]); a non-finite point, `D <= 0`, every `D` equal or a
/// constant series ([`Error::BadFitData`]); no start brought to convergence
/// ([`Error::FitFailed`]).
pub fn fit_law(law: Law, d: &[f64], values: &[f64], config: &LawConfig) -> Result<LawFit> {
    let bad = |reason: String| Error::BadFitData {
        law: law.name(),
        reason,
    };
    if d.len() != values.len() {
        return Err(bad(format!(
            "{} token counts but {} values",
            d.len(),
            values.len()
        )));
    }
    let n = d.len();
    let k = law.n_params();
    if n <= k {
        return Err(Error::TooFewPoints {
            law: law.name(),
            n_points: n,
            needed: k + 1,
        });
    }
    if let Some(i) = (0..n).find(|&i| !d[i].is_finite() || !values[i].is_finite()) {
        return Err(bad(format!(
            "point {i} is not finite (D {}, value {})",
            d[i], values[i]
        )));
    }
    if let Some(i) = d.iter().position(|&x| x <= 0.0) {
        return Err(bad(format!(
            "point {i} has D = {} tokens: the laws are defined for D > 0 (drop the warm-up \
             checkpoints, step 0 among them)",
            d[i]
        )));
    }
    let d_max = d.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let d_min = d.iter().copied().fold(f64::INFINITY, f64::min);
    if d_max <= d_min {
        return Err(bad(format!("every point has the same D = {d_max}")));
    }
    let y_max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let y_min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let range = y_max - y_min;
    if range <= 0.0 {
        return Err(bad(format!(
            "the series is constant ({y_min}): nothing to fit"
        )));
    }
    let u: Vec<f64> = d.iter().map(|x| x / d_max).collect();
    let u_min = d_min / d_max;

    let solver = LevenbergMarquardt::new()
        .with_tol(config.tolerance)
        .with_patience(config.patience);
    let mut best: Option<(Vec<f64>, f64, usize, String)> = None;
    let mut failures = Vec::new();
    for start in starts(law, u_min, y_min, y_max) {
        let problem = Problem {
            law,
            u: &u,
            y: values,
            p: start,
        };
        let (problem, report) = solver.minimize(problem);
        if !report.termination.was_successful() {
            failures.push(format!("{:?}", report.termination));
            continue;
        }
        let rss = problem.rss();
        if !rss.is_finite() {
            failures.push("a non-finite curve".into());
            continue;
        }
        if best.as_ref().is_none_or(|b| rss < b.1) {
            best = Some((
                problem.p,
                rss,
                report.number_of_evaluations,
                format!("{:?}", report.termination),
            ));
        }
    }
    let Some((p, _, n_evaluations, termination)) = best else {
        failures.dedup();
        return Err(Error::FitFailed {
            law: law.name(),
            reason: format!(
                "Levenberg-Marquardt converged from none of its starts ({})",
                failures.join("; ")
            ),
        });
    };
    let params = LawParams::from_scaled(law, &p, d_max);
    let rss: f64 = d
        .iter()
        .zip(values)
        .map(|(&x, &y)| (params.eval(x) - y).powi(2))
        .sum();
    if !rss.is_finite() {
        return Err(Error::FitFailed {
            law: law.name(),
            reason: "the fitted curve is not finite at every point".into(),
        });
    }
    let mean = values.iter().sum::<f64>() / n as f64;
    let tss: f64 = values.iter().map(|y| (y - mean).powi(2)).sum();
    Ok(LawFit {
        params,
        n_points: n,
        d_range: (d_min, d_max),
        rss,
        r2: 1.0 - rss / tss,
        n_evaluations,
        termination,
        caveat: params.caveat(),
    })
}

/// Starts on `u = D / D_max` in `(u_min, 1]`: for each exponent and each distance of the
/// limit from the data (a tenth, half and twice the range), the curve through the
/// series' two extremes at `u_min` and `u = 1`.
fn starts(law: Law, u_min: f64, y_min: f64, y_max: f64) -> Vec<Vec<f64>> {
    let range = y_max - y_min;
    let mut out = Vec::new();
    for gap in [0.1, 0.5, 2.0] {
        match law {
            // Falling from y_max at u_min to y_min at 1, towards A0 = y_min - gap * range.
            Law::Relu => {
                let a0 = y_min - gap * range;
                let fall = ((1.0 + gap) / gap).ln();
                for alpha in [0.25, 0.5, 1.0, 2.0] {
                    let c = fall / (1.0 - u_min.powf(alpha));
                    let b = (y_max - a0).ln() + c * u_min.powf(alpha);
                    out.push(vec![c, alpha, b, a0]);
                }
            }
            // Rising from y_min at u_min to y_max at 1, towards A0 = y_max + gap * range.
            Law::Silu => {
                let a0 = y_max + gap * range;
                let c = a0 - y_max;
                let alpha = ((a0 - y_min) / c).ln() / -u_min.ln();
                for scale in [0.5, 1.0, 2.0] {
                    out.push(vec![c, alpha * scale, a0]);
                }
            }
        }
    }
    out
}

/// A law on `u = D / D_max` as a least-squares problem.
struct Problem<'a> {
    law: Law,
    u: &'a [f64],
    y: &'a [f64],
    /// ReLU `[c_u, alpha, b, A0]`, SiLU `[c_u, alpha, A0]`.
    p: Vec<f64>,
}

impl Problem<'_> {
    fn eval(&self, u: f64) -> f64 {
        let p = &self.p;
        match self.law {
            Law::Relu => (-p[0] * u.powf(p[1]) + p[2]).exp() + p[3],
            Law::Silu => -p[0] * u.powf(-p[1]) + p[2],
        }
    }

    fn rss(&self) -> f64 {
        self.u
            .iter()
            .zip(self.y)
            .map(|(&u, &y)| (self.eval(u) - y).powi(2))
            .sum()
    }
}

impl LeastSquaresProblem<f64, Dyn, Dyn> for Problem<'_> {
    type ResidualStorage = Owned<f64, Dyn>;
    type JacobianStorage = Owned<f64, Dyn, Dyn>;
    type ParameterStorage = Owned<f64, Dyn>;

    fn set_params(&mut self, x: &DVector<f64>) {
        self.p.copy_from_slice(x.as_slice());
    }

    fn params(&self) -> DVector<f64> {
        DVector::from_column_slice(&self.p)
    }

    fn residuals(&self) -> Option<DVector<f64>> {
        let r = DVector::from_iterator(
            self.u.len(),
            self.u.iter().zip(self.y).map(|(&u, &y)| self.eval(u) - y),
        );
        // An overflowing step gets a residual larger than any finite one: it is rejected
        // and the trust region shrinks.
        Some(if r.iter().all(|v| v.is_finite()) {
            r
        } else {
            DVector::from_element(self.u.len(), 1e150)
        })
    }

    fn jacobian(&self) -> Option<DMatrix<f64>> {
        let p = &self.p;
        let k = p.len();
        let mut jac = DMatrix::zeros(self.u.len(), k);
        for (row, &u) in self.u.iter().enumerate() {
            let ln_u = u.ln();
            match self.law {
                Law::Relu => {
                    let ua = u.powf(p[1]);
                    let e = (-p[0] * ua + p[2]).exp();
                    jac[(row, 0)] = -ua * e;
                    jac[(row, 1)] = -p[0] * ua * ln_u * e;
                    jac[(row, 2)] = e;
                    jac[(row, 3)] = 1.0;
                }
                Law::Silu => {
                    let um = u.powf(-p[1]);
                    jac[(row, 0)] = -um;
                    jac[(row, 1)] = p[0] * um * ln_u;
                    jac[(row, 2)] = 1.0;
                }
            }
        }
        jac.iter().all(|v| v.is_finite()).then_some(jac)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_curve_without_the_laws_shape_has_a_caveat() {
        let rising_relu = LawParams::Relu {
            c: -1.0,
            alpha: 0.5,
            b: 1.0,
            a0: 5.0,
        };
        assert!(rising_relu.caveat().unwrap().contains("c > 0"));
        let flat = LawParams::Silu {
            c: 5e6,
            alpha: 1e-7,
            a0: 5e6,
        };
        assert!(flat.caveat().unwrap().contains("0.5000 * ln D"));
        let power = LawParams::Relu {
            c: 2e5,
            alpha: 1e-5,
            b: 2e5,
            a0: 15.0,
        };
        assert!(power.caveat().unwrap().contains("D^(-2.000)"));
        let silu = LawParams::Silu {
            c: 9.0,
            alpha: 0.3,
            a0: 40.9,
        };
        assert_eq!(silu.caveat(), None);
    }

    #[test]
    fn noiseless_points_give_back_their_parameters() {
        let d: Vec<f64> = (1..=12).map(|i| 0.5 * i as f64).collect();
        let cases = [
            LawParams::Relu {
                c: 0.9,
                alpha: 0.6,
                b: 1.5,
                a0: 7.0,
            },
            LawParams::Silu {
                c: 8.0,
                alpha: 0.4,
                a0: 40.0,
            },
        ];
        for truth in cases {
            let y: Vec<f64> = d.iter().map(|&x| truth.eval(x)).collect();
            let fit = fit_law(truth.law(), &d, &y, &LawConfig::default()).unwrap();
            assert!(fit.rss < 1e-12, "{fit:?}");
            assert_eq!(fit.caveat, None);
            assert!(fit.label("%").contains(" law, A0 "), "{}", fit.label("%"));
            let curve = fit.curve(4);
            assert_eq!(curve.len(), 5);
            assert_eq!(curve[0].0, 0.5e9);
            assert!((curve[4].1 - truth.eval(6.0)).abs() < 1e-9);
            let (got, want) = (
                serde_json::to_value(fit.params).unwrap(),
                serde_json::to_value(truth).unwrap(),
            );
            for (key, w) in want.as_object().unwrap() {
                if let Some(w) = w.as_f64() {
                    let g = got[key].as_f64().unwrap();
                    assert!(
                        (g - w).abs() <= 1e-6 * w.abs().max(1.0),
                        "{key}: {g} vs {w}"
                    );
                }
            }
        }
    }
}

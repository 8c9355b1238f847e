//! Probes: how analyses see and change a forward pass.
//!
//! A [`Site`] names a place in the forward pass with a TransformerLens hook name. A [`Probe`]
//! is handed the tensor at each site it asks for and returns the tensor the model continues
//! with: the same one to observe, another to intervene. The model runs with any number of
//! probes; with none, each site costs one empty-slice check.

mod capture;
mod closure;
mod finite;
mod probe_set;
mod site;
mod skip;

pub use capture::Capture;
pub use closure::FnProbe;
pub use finite::{FiniteCheck, NonFiniteAt, ensure_finite, locate_non_finite};
pub use probe_set::{BlockSkip, HookContext, Merge, Probe, ProbeSet};
pub use site::Site;
pub use skip::LayerSkip;

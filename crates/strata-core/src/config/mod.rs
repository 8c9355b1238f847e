//! Model configuration: `config.json` as Hugging Face writes it ([`hf`]), and the validated,
//! family-independent [`ModelConfig`] that strata's models are built from.

pub mod hf;
pub mod limits;
mod model;

pub use model::{Activation, Family, ModelConfig, Norm, Positions, RopeScaling};

//! `--model` and `--device`, shared by every command that runs a model.

use std::path::PathBuf;

use anyhow::Result;
use burn::tensor::backend::Backend;
use strata_core::{DeviceSpec, Model};

use crate::backend::parse_device;

/// Which model, on which device.
#[derive(Debug, clap::Args)]
pub struct ModelArgs {
    /// Hugging Face model folder (config.json, safetensors weights, tokenizer.json).
    #[arg(long)]
    pub model: PathBuf,
    /// Device: flex (CPU), wgpu, vulkan, metal, cuda[:N].
    #[arg(long, default_value = "flex")]
    pub device: String,
}

impl ModelArgs {
    /// The device, checked against the backends compiled into this build.
    pub fn device_spec(&self) -> Result<DeviceSpec> {
        parse_device(&self.device)
    }

    /// Loads the model onto `device`.
    pub fn load<B: Backend>(&self, device: &B::Device) -> Result<Model<B>> {
        Ok(Model::<B>::load(&self.model, device)?)
    }
}

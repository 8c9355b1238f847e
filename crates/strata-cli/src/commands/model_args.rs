//! `--model` and `--device`, shared by every command that runs a model.

use std::path::PathBuf;

use anyhow::Result;
use burn::tensor::backend::Backend;
use strata_core::{DeviceSpec, Model};

use crate::backend::parse_device;

/// Which model, on which device.
#[derive(Debug, clap::Args)]
pub struct ModelArgs {
    /// Hugging Face model folder (config.json, safetensors weights, tokenizer.json) or a
    /// `.gguf` file.
    #[arg(long)]
    pub model: PathBuf,
    /// Device: flex (CPU), wgpu, vulkan, metal, cuda[:N], or remote:ws://HOST:PORT (a device
    /// served by `strata serve-device`).
    #[arg(long, default_value = "flex")]
    pub device: String,
    /// Refuse loads and forward passes estimated to need more than this many bytes (suffixes
    /// K, M, G, T; default: the memory the system reports as available).
    #[arg(long, value_parser = parse_bytes)]
    pub max_memory: Option<u128>,
}

/// `512M`, `2G`, `1.5T` or a plain byte count.
fn parse_bytes(text: &str) -> std::result::Result<u128, String> {
    let text = text.trim();
    let (number, unit) = match text.char_indices().find(|(_, c)| c.is_ascii_alphabetic()) {
        Some((i, _)) => (&text[..i], text[i..].to_ascii_uppercase()),
        None => (text, String::new()),
    };
    let scale: f64 = match unit.trim_end_matches("IB").trim_end_matches('B') {
        "" => 1.0,
        "K" => 1024.0,
        "M" => 1024.0 * 1024.0,
        "G" => 1024.0 * 1024.0 * 1024.0,
        "T" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        other => {
            return Err(format!(
                "unknown unit `{other}` in `{text}` (use K, M, G or T)"
            ));
        }
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a size like 512M or 2G"))?;
    if !(value.is_finite() && value > 0.0) {
        return Err(format!("`{text}` must be a positive size"));
    }
    Ok((value * scale) as u128)
}

impl ModelArgs {
    /// The device, checked against the backends compiled into this build.
    pub fn device_spec(&self) -> Result<DeviceSpec> {
        parse_device(&self.device)
    }

    /// Loads the model onto `device` (after setting the memory limit, if one was given).
    pub fn load<B: Backend>(&self, device: &B::Device) -> Result<Model<B>> {
        if let Some(limit) = self.max_memory {
            strata_core::config::limits::set_memory_limit(limit);
        }
        Ok(Model::<B>::load(&self.model, device)?)
    }
}

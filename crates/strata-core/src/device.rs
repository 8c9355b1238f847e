//! `--device` strings: which burn backend and device a run uses.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};

/// A device named on the command line: `flex` (default CPU), `wgpu`, `vulkan`, `metal`,
/// `cuda` or `cuda:N`. Each GPU backend exists only when its cargo feature is enabled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceSpec {
    /// burn's pure-Rust CPU backend (SIMD + rayon).
    Flex,
    /// WebGPU through wgpu (any vendor; Vulkan, Metal or DX12 underneath).
    Wgpu,
    /// wgpu forced onto Vulkan (SPIR-V kernels).
    Vulkan,
    /// wgpu forced onto Metal.
    Metal,
    /// NVIDIA CUDA device `N`.
    Cuda(usize),
}

impl DeviceSpec {
    /// The cargo feature that enables this device, if it needs one.
    pub fn cargo_feature(&self) -> Option<&'static str> {
        match self {
            DeviceSpec::Flex => None,
            DeviceSpec::Wgpu => Some("wgpu"),
            DeviceSpec::Vulkan => Some("vulkan"),
            DeviceSpec::Metal => Some("metal"),
            DeviceSpec::Cuda(_) => Some("cuda"),
        }
    }

    /// Whether this build includes the device's backend.
    pub fn is_compiled(&self) -> bool {
        match self {
            DeviceSpec::Flex => true,
            DeviceSpec::Wgpu => cfg!(feature = "wgpu"),
            DeviceSpec::Vulkan => cfg!(feature = "vulkan"),
            DeviceSpec::Metal => cfg!(feature = "metal"),
            DeviceSpec::Cuda(_) => cfg!(feature = "cuda"),
        }
    }

    /// Parses a device string and checks that this build can use it.
    pub fn parse_available(name: &str) -> Result<Self> {
        let spec: DeviceSpec = name.parse()?;
        if !spec.is_compiled() {
            let feature = spec
                .cargo_feature()
                .expect("only GPU devices can be missing");
            return Err(Error::DeviceUnavailable {
                name: name.to_string(),
                reason: format!(
                    "this build has no `{feature}` backend; rebuild with `--features {feature}` \
                     (e.g. `cargo install --path crates/strata-cli --features {feature}`)"
                ),
            });
        }
        Ok(spec)
    }
}

impl FromStr for DeviceSpec {
    type Err = Error;

    fn from_str(name: &str) -> Result<Self> {
        let unknown = || Error::DeviceUnavailable {
            name: name.to_string(),
            reason: "unknown device; use flex, wgpu, vulkan, metal, cuda or cuda:N".into(),
        };
        match name {
            "flex" | "cpu" => Ok(DeviceSpec::Flex),
            "wgpu" => Ok(DeviceSpec::Wgpu),
            "vulkan" => Ok(DeviceSpec::Vulkan),
            "metal" => Ok(DeviceSpec::Metal),
            "cuda" => Ok(DeviceSpec::Cuda(0)),
            _ => match name.strip_prefix("cuda:") {
                Some(n) => n.parse().map(DeviceSpec::Cuda).map_err(|_| unknown()),
                None => Err(unknown()),
            },
        }
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSpec::Flex => f.write_str("flex"),
            DeviceSpec::Wgpu => f.write_str("wgpu"),
            DeviceSpec::Vulkan => f.write_str("vulkan"),
            DeviceSpec::Metal => f.write_str("metal"),
            DeviceSpec::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

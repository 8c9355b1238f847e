//! The one place a backend is chosen: `--device` becomes a burn backend type.

/// Calls `$run::<Backend>(&device, args...)` with the backend named by a
/// [`strata_core::DeviceSpec`]. GPU arms exist only when their cargo feature is enabled;
/// `DeviceSpec::parse_available` has already rejected the others with a clear error.
#[macro_export]
macro_rules! with_backend {
    ($spec:expr, $run:ident ( $($arg:expr),* $(,)? )) => {{
        use strata_core::DeviceSpec;
        match $spec {
            DeviceSpec::Flex => $run::<burn::backend::Flex>(&Default::default(), $($arg),*),
            #[cfg(feature = "wgpu")]
            DeviceSpec::Wgpu => $run::<burn::backend::Wgpu>(&Default::default(), $($arg),*),
            #[cfg(feature = "vulkan")]
            DeviceSpec::Vulkan => $run::<burn::backend::Vulkan>(&Default::default(), $($arg),*),
            #[cfg(feature = "metal")]
            DeviceSpec::Metal => $run::<burn::backend::Metal>(&Default::default(), $($arg),*),
            #[cfg(feature = "cuda")]
            DeviceSpec::Cuda(index) => $run::<burn::backend::Cuda>(&burn::backend::cuda::CudaDevice::new(index), $($arg),*),
            #[allow(unreachable_patterns)]
            other => anyhow::bail!("device `{other}` is not compiled into this build"),
        }
    }};
}

/// Parses `--device`, naming the cargo feature when the backend is not built in.
pub fn parse_device(name: &str) -> anyhow::Result<strata_core::DeviceSpec> {
    Ok(strata_core::DeviceSpec::parse_available(name)?)
}

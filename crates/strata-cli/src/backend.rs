//! The one place a backend is chosen: `--device` becomes a burn backend type.

/// Calls `$run::<Backend>(&device, args...)` with the backend named by a
/// [`strata_core::DeviceSpec`]. GPU arms, and the remote one, exist only when their cargo
/// feature is enabled; `DeviceSpec::parse_available` has already rejected the others with a
/// clear error.
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
            #[cfg(feature = "remote")]
            DeviceSpec::Remote(url) => $run::<burn::backend::RemoteBackend>(&strata_core::device::remote_device(&url)?, $($arg),*),
            #[allow(unreachable_patterns)]
            other => anyhow::bail!("device `{other}` is not compiled into this build"),
        }
    }};
}

/// Parses `--device`, naming the cargo feature when the backend is not built in.
pub fn parse_device(name: &str) -> anyhow::Result<strata_core::DeviceSpec> {
    Ok(strata_core::DeviceSpec::parse_available(name)?)
}

/// Serves the local device `spec` names to remote clients on `port` until interrupted
/// (`strata serve-device`). A remote device cannot be served again.
#[cfg(feature = "server")]
pub fn serve_device(spec: strata_core::DeviceSpec, port: u16) -> anyhow::Result<()> {
    use strata_core::DeviceSpec;
    use strata_core::device::serve;
    match spec {
        DeviceSpec::Flex => serve::<burn::backend::Flex>(Default::default(), port)?,
        #[cfg(feature = "wgpu")]
        DeviceSpec::Wgpu => serve::<burn::backend::Wgpu>(Default::default(), port)?,
        #[cfg(feature = "vulkan")]
        DeviceSpec::Vulkan => serve::<burn::backend::Vulkan>(Default::default(), port)?,
        #[cfg(feature = "metal")]
        DeviceSpec::Metal => serve::<burn::backend::Metal>(Default::default(), port)?,
        #[cfg(feature = "cuda")]
        DeviceSpec::Cuda(index) => {
            serve::<burn::backend::Cuda>(burn::backend::cuda::CudaDevice::new(index), port)?
        }
        DeviceSpec::Remote(_) => anyhow::bail!(
            "`{spec}` is itself a remote device; serve a local one (flex, wgpu, vulkan, metal, \
             cuda:N) on the machine that has it"
        ),
        #[allow(unreachable_patterns)]
        other => anyhow::bail!("device `{other}` is not compiled into this build"),
    }
    Ok(())
}

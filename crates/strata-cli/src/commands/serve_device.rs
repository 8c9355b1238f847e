//! `strata serve-device`: offer this machine's device to `--device remote:ws://HOST:PORT`
//! clients elsewhere, through burn's remote backend.
//!
//! The subcommand is always listed; it runs only in a build with the `server` cargo feature
//! and otherwise fails with a message naming that feature.

use anyhow::Result;

/// Which device to serve, on which port.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Device to serve: flex (CPU), wgpu, vulkan, metal, cuda[:N].
    #[arg(long, default_value = "flex")]
    pub device: String,
    /// TCP port to listen on. burn's server listens on every interface (0.0.0.0) and
    /// authenticates no one: block the port in a firewall and reach it through an SSH tunnel
    /// unless the network is trusted.
    #[arg(long, default_value_t = 3000)]
    pub port: u16,
}

/// Runs the command: serves until interrupted (Ctrl-C, SIGTERM).
#[cfg(feature = "server")]
pub fn run(args: &Args) -> Result<()> {
    let spec = crate::backend::parse_device(&args.device)?;
    if !matches!(spec, strata_core::DeviceSpec::Remote(_)) {
        eprintln!(
            "strata: serving `{spec}` on ws://0.0.0.0:{port} (every interface, no \
             authentication); clients use `--device remote:ws://HOST:{port}`; Ctrl-C stops",
            port = args.port
        );
    }
    crate::backend::serve_device(spec, args.port)
}

/// Runs the command: this build has no server.
#[cfg(not(feature = "server"))]
pub fn run(_args: &Args) -> Result<()> {
    anyhow::bail!(
        "`strata serve-device` needs the `server` cargo feature; rebuild with `--features \
         server` (e.g. `cargo install --path crates/strata-cli --features server`)"
    )
}

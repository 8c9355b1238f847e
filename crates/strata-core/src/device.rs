//! `--device` strings: which burn backend and device a run uses.
//!
//! With the `remote` feature a device can sit on another machine (`remote:ws://HOST:PORT`,
//! burn's remote backend); with the `server` feature `serve` offers a local device to such
//! clients over burn's websocket server.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};

/// A device named on the command line: `flex` (default CPU), `wgpu`, `vulkan`, `metal`,
/// `cuda`, `cuda:N` or `remote:ws://HOST:PORT`. Each GPU backend, and the remote one, exists
/// only when its cargo feature is enabled.
#[derive(Debug, Clone, PartialEq, Eq)]
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
    /// A device served by `strata serve-device` on another machine (burn's remote backend),
    /// at this websocket URL, always written `ws://HOST:PORT`.
    Remote(String),
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
            DeviceSpec::Remote(_) => Some("remote"),
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
            DeviceSpec::Remote(_) => cfg!(feature = "remote"),
        }
    }

    /// Parses a device string and checks that this build can use it.
    pub fn parse_available(name: &str) -> Result<Self> {
        let spec: DeviceSpec = name.parse()?;
        if !spec.is_compiled() {
            let feature = spec
                .cargo_feature()
                .expect("only feature-gated devices can be missing");
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

/// Checks a remote device's URL, `ws://HOST:PORT` (or the bare `HOST:PORT`), and returns it
/// as `ws://HOST:PORT`. burn's remote client speaks plain websockets only, and appends its
/// own routes, so a path, a query, credentials or another scheme are errors.
fn normalize_ws_url(url: &str) -> std::result::Result<String, String> {
    let rest = match url.split_once("://") {
        Some(("ws", rest)) => rest,
        Some((scheme, _)) => {
            return Err(format!(
                "the scheme `{scheme}://` is not supported: burn's remote backend speaks plain \
                 websockets (`ws://`); for encryption, reach the server through an SSH tunnel"
            ));
        }
        None => url,
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.contains(['/', '?', '#', '@']) || rest.contains(char::is_whitespace) {
        return Err("expected `ws://HOST:PORT`, with no path, query or credentials".into());
    }
    let (host, port) = if let Some(bracketed) = rest.strip_prefix('[') {
        // An IPv6 literal: `[::1]:3000`.
        let (ip, port) = bracketed
            .split_once("]:")
            .ok_or("expected `ws://[IPV6]:PORT`")?;
        ip.parse::<std::net::Ipv6Addr>()
            .map_err(|_| format!("`{ip}` is not an IPv6 address"))?;
        (&rest[..ip.len() + 2], port)
    } else {
        let (host, port) = rest
            .rsplit_once(':')
            .ok_or("expected `ws://HOST:PORT`: the port is missing")?;
        if host.is_empty() || host.contains(':') {
            return Err("expected `ws://HOST:PORT`: the host is missing or malformed".into());
        }
        (host, port)
    };
    let port: u16 = port
        .parse()
        .ok()
        .filter(|&p| p != 0)
        .ok_or_else(|| format!("`{port}` is not a port number (1 to 65535)"))?;
    Ok(format!("ws://{host}:{port}"))
}

impl FromStr for DeviceSpec {
    type Err = Error;

    fn from_str(name: &str) -> Result<Self> {
        let unknown = || Error::DeviceUnavailable {
            name: name.to_string(),
            reason: "unknown device; use flex, wgpu, vulkan, metal, cuda, cuda:N or \
                     remote:ws://HOST:PORT"
                .into(),
        };
        match name {
            "flex" | "cpu" => Ok(DeviceSpec::Flex),
            "wgpu" => Ok(DeviceSpec::Wgpu),
            "vulkan" => Ok(DeviceSpec::Vulkan),
            "metal" => Ok(DeviceSpec::Metal),
            "cuda" => Ok(DeviceSpec::Cuda(0)),
            _ => {
                if let Some(url) = name.strip_prefix("remote:") {
                    return normalize_ws_url(url)
                        .map(DeviceSpec::Remote)
                        .map_err(|reason| Error::DeviceUnavailable {
                            name: name.to_string(),
                            reason: format!("malformed remote URL: {reason}"),
                        });
                }
                match name.strip_prefix("cuda:") {
                    Some(n) => n.parse().map(DeviceSpec::Cuda).map_err(|_| unknown()),
                    None => Err(unknown()),
                }
            }
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
            DeviceSpec::Remote(url) => write!(f, "remote:{url}"),
        }
    }
}

/// How long [`remote_device`] waits for the server to accept a connection.
#[cfg(feature = "remote")]
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The burn device for a server at `url` (`ws://HOST:PORT`, as [`DeviceSpec::Remote`]
/// holds it), after checking that something accepts connections there.
///
/// burn's remote client panics in a background task when it cannot connect; this check
/// turns the common cases (no server started, a wrong port, a closed tunnel) into an error
/// that says what to do.
#[cfg(feature = "remote")]
pub fn remote_device(url: &str) -> Result<burn::backend::remote::RemoteDevice> {
    use std::net::{TcpStream, ToSocketAddrs};

    let spec = format!("remote:{url}");
    let url = normalize_ws_url(url).map_err(|reason| Error::DeviceUnavailable {
        name: spec.clone(),
        reason: format!("malformed remote URL: {reason}"),
    })?;
    let authority = &url["ws://".len()..];
    let unreachable = |why: String| Error::DeviceUnavailable {
        name: spec.clone(),
        reason: format!(
            "nothing accepts connections at {authority} ({why}); start `strata serve-device \
             --port PORT` on that machine, or check the SSH tunnel that forwards the port"
        ),
    };
    let addresses: Vec<_> = authority
        .to_socket_addrs()
        .map_err(|e| unreachable(format!("cannot resolve the host: {e}")))?
        .collect();
    let mut last = String::from("the host resolves to no address");
    let connected = addresses.iter().any(|address| {
        match TcpStream::connect_timeout(address, CONNECT_TIMEOUT) {
            Ok(_) => true,
            Err(e) => {
                last = e.to_string();
                false
            }
        }
    });
    if !connected {
        return Err(unreachable(last));
    }
    tracing::info!(%url, "using a remote device");
    Ok(burn::backend::remote::RemoteDevice::new(&url))
}

/// Serves `device` of backend `B` to remote clients (`--device remote:ws://HOST:PORT`) over
/// burn's websocket server on `port`, until the process is interrupted (Ctrl-C, SIGTERM).
///
/// burn's server listens on every interface (`0.0.0.0`) and authenticates no one: anyone who
/// can reach the port can run computations on the device and read what it holds. Serve only
/// on a trusted network, or block the port in a firewall and reach it through an SSH tunnel.
///
/// Fails at once if the port cannot be bound (in use, or privileged).
#[cfg(feature = "server")]
pub fn serve<B: burn::backend::ir::BackendIr>(device: B::Device, port: u16) -> Result<()> {
    // burn's server ignores a failed bind and returns; check first so that the caller hears
    // about it. (Another process could still take the port in between: then `serve` returns
    // at once with `Ok`.)
    let address = std::net::SocketAddr::from(([0, 0, 0, 0], port));
    drop(
        std::net::TcpListener::bind(address).map_err(|e| Error::InvalidArgument {
            what: "port".into(),
            reason: format!("cannot listen on {address}: {e}"),
        })?,
    );
    tracing::info!(%address, "serving a device over burn's remote websocket protocol");
    burn::server::start_websocket::<B>(device, port);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_device_round_trips_through_display() {
        for name in [
            "flex",
            "wgpu",
            "vulkan",
            "metal",
            "cuda:0",
            "cuda:3",
            "remote:ws://127.0.0.1:3000",
            "remote:ws://gpu-box.local:40000",
            "remote:ws://[::1]:3000",
        ] {
            let spec: DeviceSpec = name.parse().unwrap();
            assert_eq!(spec.to_string(), name);
            assert_eq!(spec.to_string().parse::<DeviceSpec>().unwrap(), spec);
        }
    }

    #[test]
    fn remote_urls_are_normalized() {
        for (given, url) in [
            ("remote:127.0.0.1:3000", "ws://127.0.0.1:3000"),
            ("remote:ws://localhost:3000/", "ws://localhost:3000"),
        ] {
            assert_eq!(
                given.parse::<DeviceSpec>().unwrap(),
                DeviceSpec::Remote(url.into())
            );
        }
    }

    #[test]
    fn malformed_remote_urls_are_errors_that_say_so() {
        for name in [
            "remote:",
            "remote:ws://",
            "remote:ws://host",
            "remote:ws://host:",
            "remote:ws://host:port",
            "remote:ws://host:0",
            "remote:ws://host:70000",
            "remote:ws://:3000",
            "remote:ws://host:3000/path",
            "remote:ws://user@host:3000",
            "remote:wss://host:3000",
            "remote:http://host:3000",
            "remote:ws://[::1:3000",
            "remote:ws://[zz]:3000",
        ] {
            let err = name.parse::<DeviceSpec>().unwrap_err().to_string();
            assert!(err.contains("malformed remote URL"), "{name}: {err}");
            assert!(err.contains(name), "{name}: {err}");
        }
    }

    #[test]
    fn remote_needs_its_cargo_feature() {
        let result = DeviceSpec::parse_available("remote:ws://127.0.0.1:3000");
        if cfg!(feature = "remote") {
            assert!(result.is_ok());
        } else {
            let err = result.unwrap_err().to_string();
            assert!(err.contains("--features remote"), "{err}");
        }
    }
}

//! A device on another machine, on loopback: a Flex device served over burn's websocket
//! server (`strata_core::device::serve`, what `strata serve-device` runs) and used through
//! burn's remote backend (`--device remote:ws://HOST:PORT`) gives the logits, and the
//! activations, that the same model computes locally on Flex.
//!
//! `cargo test -p strata-core --features remote,server --test remote_loopback`; without both
//! features cargo skips this file (`required-features`).

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use burn::backend::remote::RemoteDevice;
use burn::backend::{Flex, RemoteBackend};
use burn::tensor::backend::Backend;
use strata_core::device::{remote_device, serve};
use strata_core::probe::{Capture, ProbeSet, Site};
use strata_core::weights::HostTensor;
use strata_core::{DeviceSpec, Model, PadSide, TokenBatch};

/// Largest absolute difference allowed between remote and local values, relative to the
/// largest local magnitude (and at least 1): ten times tighter than the HF parity tests.
/// Each side is deterministic, but they do not run the same kernels: a local Flex model
/// takes strata's fused Flex attention and activations, the server runs the generic tensor
/// operations it receives as burn's intermediate representation. They agree to float
/// rounding (about 5e-7 relative on the tiny model), not to the bit.
const RELATIVE_TOLERANCE: f32 = 1e-5;

fn tiny_default() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets/models/tiny-default")
}

/// One server for the whole test binary, on a free port: its `ws://` URL.
fn server_url() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        std::thread::spawn(move || {
            serve::<Flex>(Default::default(), port).expect("the server starts");
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err() {
            assert!(Instant::now() < deadline, "the server listens within 30 s");
            std::thread::sleep(Duration::from_millis(20));
        }
        format!("ws://127.0.0.1:{port}")
    })
}

/// The remote device, reached the way the command line reaches it: through `DeviceSpec`.
fn device() -> RemoteDevice {
    let spec = DeviceSpec::parse_available(&format!("remote:{}", server_url())).unwrap();
    let DeviceSpec::Remote(url) = spec else {
        panic!("{spec} is a remote device")
    };
    remote_device(&url).expect("the server accepts connections")
}

/// Largest absolute difference, after checking that the shapes agree and that it is within
/// the tolerance.
fn max_abs_diff(what: &str, remote: &HostTensor, local: &HostTensor) -> f32 {
    assert_eq!(remote.shape, local.shape, "{what}: shape");
    assert!(
        remote.data.iter().all(|v| v.is_finite()),
        "{what}: remote values are finite"
    );
    let diff = remote
        .data
        .iter()
        .zip(&local.data)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0_f32, f32::max);
    let scale = local.data.iter().fold(1.0_f32, |m, v| m.max(v.abs()));
    let tolerance = RELATIVE_TOLERANCE * scale;
    println!(
        "{what}: max |remote - local| = {diff:e} (largest |local| {scale}, tolerance {tolerance:e})"
    );
    assert!(
        diff <= tolerance,
        "{what}: max |remote - local| = {diff:e} > {tolerance:e}"
    );
    diff
}

/// The logits of one forward pass, and the activations a capture probe saw at `sites`.
fn forward_with_capture<B: Backend>(
    model: &Model<B>,
    batch: &TokenBatch,
    sites: &[Site],
) -> (HostTensor, BTreeMap<Site, HostTensor>) {
    let mut capture = Capture::new(sites.iter().copied());
    let logits = model
        .forward_with(batch, None, &mut ProbeSet::one(&mut capture))
        .unwrap();
    (HostTensor::from_tensor(logits), capture.captured)
}

fn prompt_ids(model: &Model<Flex>, text: &str) -> Vec<u32> {
    model.tokenizer().unwrap().encode(text).unwrap()
}

#[test]
fn tiny_model_logits_over_loopback_match_local_flex() {
    let local = Model::<Flex>::load(&tiny_default(), &Default::default()).unwrap();
    let remote = Model::<RemoteBackend>::load(&tiny_default(), &device()).unwrap();
    let ids = prompt_ids(
        &local,
        "In the beginning God created the heaven and the earth.",
    );
    let batch = TokenBatch::single(&ids).unwrap();
    let want = HostTensor::from_tensor(local.forward(&batch).unwrap());
    let got = HostTensor::from_tensor(remote.forward(&batch).unwrap());
    assert_eq!(
        want.shape,
        [1, ids.len(), local.config().vocab_size],
        "logits shape"
    );
    max_abs_diff("logits", &got, &want);
}

#[test]
fn padded_batch_and_probes_over_loopback_match_local_flex() {
    let local = Model::<Flex>::load(&tiny_default(), &Default::default()).unwrap();
    let remote = Model::<RemoteBackend>::load(&tiny_default(), &device()).unwrap();
    let rows = vec![
        prompt_ids(
            &local,
            "And God said, Let there be light: and there was light.",
        ),
        prompt_ids(&local, "Jesus wept."),
    ];
    let batch = TokenBatch::padded(&rows, 0, PadSide::Right).unwrap();
    let sites = [Site::ResidPost { layer: 1 }, Site::MlpPost { layer: 2 }];
    let (want, local_sites) = forward_with_capture(&local, &batch, &sites);
    let (got, remote_sites) = forward_with_capture(&remote, &batch, &sites);
    max_abs_diff("padded logits", &got, &want);
    for site in sites {
        max_abs_diff(
            &format!("padded {site}"),
            &remote_sites[&site],
            &local_sites[&site],
        );
    }
}

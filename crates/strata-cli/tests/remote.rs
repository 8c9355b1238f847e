//! `strata serve-device` and `--device remote:ws://HOST:PORT` end to end on loopback: text
//! generated on a served Flex device is the text generated locally, and a URL where nothing
//! listens is an error that says what to start.
//!
//! `cargo test -p strata-cli --features remote,server --test remote`; without both features
//! cargo skips this file (`required-features`).

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn tiny_default() -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../datasets/models/tiny-default")
        .to_str()
        .unwrap()
        .to_string()
}

fn strata(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(args)
        .output()
        .expect("strata runs")
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

/// A `strata serve-device` process, stopped when dropped.
struct Server(Child);

impl Server {
    fn start(port: u16) -> Self {
        let child = Command::new(env!("CARGO_BIN_EXE_strata"))
            .args([
                "serve-device",
                "--device",
                "flex",
                "--port",
                &port.to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("strata serve-device starts");
        let mut server = Server(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err() {
            if let Some(status) = server.0.try_wait().unwrap() {
                panic!("strata serve-device exited early: {status}");
            }
            assert!(Instant::now() < deadline, "the server listens within 30 s");
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn generate(device: &str) -> String {
    let run = strata(&[
        "generate",
        "--model",
        &tiny_default(),
        "--text",
        "In the beginning",
        "--max-new-tokens",
        "12",
        "--device",
        device,
    ]);
    assert!(
        run.status.success(),
        "generate on {device}: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    String::from_utf8(run.stdout).unwrap()
}

#[test]
fn generate_on_a_served_device_matches_local_flex() {
    let port = free_port();
    let _server = Server::start(port);
    let remote = generate(&format!("remote:ws://127.0.0.1:{port}"));
    let local = generate("flex");
    assert!(!local.trim().is_empty(), "generate printed text");
    assert_eq!(remote, local, "greedy text on the served device");
}

#[test]
fn a_url_where_nothing_listens_says_what_to_start() {
    let port = free_port();
    let run = strata(&[
        "generate",
        "--model",
        &tiny_default(),
        "--text",
        "hello",
        "--device",
        &format!("remote:ws://127.0.0.1:{port}"),
    ]);
    assert!(!run.status.success());
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        stderr.contains("nothing accepts connections") && stderr.contains("serve-device"),
        "{stderr}"
    );
}

#[test]
fn a_served_device_cannot_be_remote_itself() {
    let run = strata(&["serve-device", "--device", "remote:ws://127.0.0.1:3000"]);
    assert!(!run.status.success());
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("itself a remote device"), "{stderr}");
}

#[test]
fn serving_on_a_port_in_use_is_an_error() {
    let listener = TcpListener::bind((Ipv4Addr::UNSPECIFIED, 0)).expect("a free port");
    let port = listener.local_addr().unwrap().port().to_string();
    let run = strata(&["serve-device", "--port", &port]);
    assert!(!run.status.success());
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("cannot listen"), "{stderr}");
}

//! WebSocket conformance: the Autobahn-compatible `kosoku` fuzzing client drives
//! `/ws/echo` of the real binary (every case but compression, 12.* and 13.*), and no
//! case may fail; `/ws/echo` is not mounted unless asked for.

mod support;

use std::process::Command;

use support::Server;

/// The `kosoku` command line (run through `python3`, so no PATH shim is needed),
/// installed with pip the first time if missing.
fn kosoku() -> Command {
    let found = Command::new("python3")
        .args(["-c", "import kosoku"])
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        let status = Command::new("python3")
            .args(["-m", "pip", "install", "--quiet", "kosoku"])
            .status()
            .expect("running pip (Python 3 is needed for the conformance suite)");
        assert!(status.success(), "pip install kosoku failed");
    }
    let mut cmd = Command::new("python3");
    cmd.args([
        "-c",
        "import sys; from kosoku._cli import main; sys.argv[0] = 'kosoku'; main()",
    ]);
    cmd
}

#[test]
fn the_conformance_suite_passes_every_case_against_the_echo_endpoint() {
    let server = Server::start(&[
        ("STREAMHUB_WS_ECHO", "true"),
        ("STREAMHUB_LOG", "warn,streamhub=info"),
    ]);
    let out_dir = std::env::temp_dir().join(format!("streamhub-kosoku-{}", std::process::id()));
    let out = kosoku()
        .args(["-m", "fuzzingclient"])
        .arg(format!("{}/ws/echo", server.addr))
        .args(["-x", "12.*", "-x", "13.*", "-p", "4", "-o"])
        .arg(&out_dir)
        .output()
        .expect("running kosoku");
    let index: serde_json::Value = serde_json::from_slice(
        &std::fs::read(out_dir.join("index.json")).expect("kosoku wrote its index"),
    )
    .unwrap();
    let _ = std::fs::remove_dir_all(&out_dir);
    let cases = index
        .as_object()
        .unwrap()
        .values()
        .next()
        .unwrap()
        .as_object()
        .unwrap();
    assert!(
        cases.len() > 250,
        "only {} cases ran: {}",
        cases.len(),
        String::from_utf8_lossy(&out.stdout)
    );
    let failed: Vec<String> = cases
        .iter()
        .filter(|(_, r)| {
            !matches!(
                r["behavior"].as_str(),
                Some("OK" | "NON-STRICT" | "INFORMATIONAL")
            )
        })
        .map(|(id, r)| format!("{id}: {} / {}", r["behavior"], r["behaviorClose"]))
        .collect();
    assert!(failed.is_empty(), "failed cases: {failed:#?}");
    // The server is still serving.
    assert_eq!(server.get("/healthz", &[]).status, 200);
}

#[test]
fn an_echo_client_still_writing_past_its_error_reads_its_close_code() {
    let server = Server::start(&[("STREAMHUB_WS_ECHO", "true")]);
    let filler = support::filler();
    let cases = [
        (
            "a reserved bit, then 2 MiB",
            support::masked_frame(0xC1, b"hello"),
            true,
            1002,
        ),
        (
            "text that is not UTF-8, then 2 MiB",
            support::masked_frame(0x81, &[0xff, 0xfe]),
            false,
            1007,
        ),
    ];
    let failed: Vec<String> = cases
        .into_iter()
        .filter_map(|(what, first, fin, want)| {
            let bytes = [first, filler.clone()].concat();
            support::close_seen_by_a_client_still_writing(
                &server, "/ws/echo", what, &bytes, fin, want,
            )
            .err()
        })
        .collect();
    assert!(failed.is_empty(), "{failed:#?}");
}

#[test]
fn the_echo_endpoint_is_not_mounted_by_default() {
    let server = Server::start(&[]);
    let r = server.get(
        "/ws/echo",
        &[
            ("Connection", "Upgrade"),
            ("Upgrade", "websocket"),
            ("Sec-WebSocket-Version", "13"),
            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ],
    );
    assert_eq!(r.status, 404);
}

#[test]
fn a_plain_get_of_the_echo_endpoint_is_refused_with_400() {
    let server = Server::start(&[("STREAMHUB_WS_ECHO", "true")]);
    assert_eq!(server.get("/ws/echo", &[]).status, 400);
}

//! The command line: help, the IO backend setting, and `streamhub token`.

use std::process::Command;

fn streamhub() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_streamhub"));
    c.env_clear();
    c
}

#[test]
fn serve_help_lists_every_setting_with_its_environment_variable() {
    let out = streamhub().args(["serve", "--help"]).output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for var in [
        "STREAMHUB_LISTEN",
        "STREAMHUB_SHARDS",
        "STREAMHUB_IO",
        "STREAMHUB_LOG",
        "STREAMHUB_LOG_FORMAT",
        "STREAMHUB_TRUSTED_PROXIES",
        "STREAMHUB_KEEPALIVE_TIMEOUT",
        "STREAMHUB_HEADER_TIMEOUT",
        "STREAMHUB_REQUEST_TIMEOUT",
        "STREAMHUB_MAX_HEADER_BYTES",
        "STREAMHUB_MAX_BODY_BYTES",
        "STREAMHUB_MAX_CONNECTIONS_PER_IP",
        "STREAMHUB_DRAIN_DELAY",
        "STREAMHUB_SHUTDOWN_GRACE",
        "STREAMHUB_JWT_SECRET",
        "STREAMHUB_JWT_PUBLIC_KEY_FILE",
        "STREAMHUB_JWT_LEEWAY",
        "STREAMHUB_TLS_CERT",
        "STREAMHUB_TLS_KEY",
        "DATABASE_REPLICA_URL",
        "STREAMHUB_DB_READ_YOUR_WRITES",
        "STREAMHUB_DB_REPLICA_MAX_LAG",
        "REDIS_URL",
        "STREAMHUB_REDIS_TIMEOUT",
        "STREAMHUB_PRESENCE_TTL",
        "STREAMHUB_RATE_SCOPE",
        "STREAMHUB_REDIS_CLUSTER",
    ] {
        // Secrets are listed without their value.
        let listed =
            help.contains(&format!("[env: {var}=")) || help.contains(&format!("[env: {var}]"));
        assert!(listed, "{var} missing from:\n{help}");
    }
}

#[test]
fn redis_without_postgresql_is_refused_with_a_clear_message() {
    let out = streamhub()
        .env("REDIS_URL", "redis://127.0.0.1:6379")
        .env("STREAMHUB_LISTEN", "127.0.0.1:0")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("--redis-url"), "{err}");
    assert!(err.contains("--database-url"), "{err}");
}

#[test]
fn cluster_rate_scope_without_redis_is_refused_with_a_clear_message() {
    let out = streamhub()
        .env("STREAMHUB_RATE_SCOPE", "cluster")
        .env("STREAMHUB_LISTEN", "127.0.0.1:0")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("--redis-url"), "{err}");
}

#[test]
fn bad_settings_are_refused_naming_the_setting() {
    let out = streamhub()
        .env("STREAMHUB_KEEPALIVE_TIMEOUT", "soon")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("keepalive-timeout"), "{err}");
}

#[test]
fn token_prints_a_signed_jwt_with_the_claims() {
    let out = streamhub()
        .env("STREAMHUB_JWT_SECRET", "a test secret of at least 32 bytes")
        .args([
            "token", "--sub", "u1", "--login", "alice", "--role", "admin", "--ttl", "2h",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap();
    let parts: Vec<&str> = token.trim().split('.').collect();
    assert_eq!(parts.len(), 3);
    let decode = |s: &str| -> serde_json::Value { serde_json::from_slice(&base64url(s)).unwrap() };
    assert_eq!(decode(parts[0])["alg"], "HS256");
    let claims = decode(parts[1]);
    assert_eq!(claims["sub"], "u1");
    assert_eq!(claims["login"], "alice");
    assert_eq!(claims["roles"], serde_json::json!(["admin"]));
    assert_eq!(
        claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
        7200
    );

    let out = streamhub()
        .args(["token", "--sub", "u1", "--login", "alice"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8(out.stderr)
        .unwrap()
        .contains("no signing key"));
}

/// Decodes unpadded base64url (enough for JWT segments).
fn base64url(s: &str) -> Vec<u8> {
    let val = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'-' => 62,
            b'_' => 63,
            _ => panic!("not base64url: {c}"),
        }
    };
    let mut out = Vec::new();
    for chunk in s.as_bytes().chunks(4) {
        let mut acc = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            acc |= val(c) << (18 - 6 * i);
        }
        let bytes = acc.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    out
}

//! Tokens at the edge, against the real binary: every kind of bad token is refused with
//! 401 `UNAUTHENTICATED`, good ones from each kind of key are accepted, and a process
//! without a key makes its own secret and logs working demo tokens.

mod support;

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::json;
use support::Server;

const SECRET: &str = "an integration test secret, 32+ bytes";
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn claims(exp_in: i64) -> serde_json::Value {
    json!({"sub": "u1", "login": "alice", "exp": now() + exp_in})
}

fn hs256(claims: &serde_json::Value, secret: &[u8]) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret),
    )
    .unwrap()
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{FIXTURES}/{name}")).unwrap()
}

/// GET /healthz with `Authorization: Bearer <token>`; the status and the error code.
fn call(server: &Server, token: &str) -> (u16, Option<String>) {
    let auth = format!("Bearer {token}");
    let r = server.get("/healthz", &[("Authorization", &auth)]);
    let code = (r.status != 200).then(|| {
        assert!(
            r.header("www-authenticate")
                .unwrap()
                .starts_with("Bearer error=\"invalid_token\""),
            "{:?}",
            r.headers
        );
        r.json()["errors"][0]["extensions"]["code"]
            .as_str()
            .unwrap()
            .to_owned()
    });
    (r.status, code)
}

fn assert_refused(server: &Server, token: &str, what: &str) {
    assert_eq!(
        call(server, token),
        (401, Some("UNAUTHENTICATED".to_owned())),
        "{what} was not refused"
    );
}

#[test]
fn hs256_server_refuses_every_bad_token_and_serves_good_ones() {
    let server = Server::start(&[("STREAMHUB_JWT_SECRET", SECRET)]);
    let good = hs256(&claims(3600), SECRET.as_bytes());
    assert_eq!(call(&server, &good), (200, None));
    let line = server.wait_for_log(|l| l["user"] == "u1");
    assert_eq!(line["status"], 200);

    assert_refused(
        &server,
        &hs256(&claims(3600), b"some other secret that is long enough"),
        "forged",
    );
    assert_refused(
        &server,
        &hs256(&claims(-3600), SECRET.as_bytes()),
        "expired",
    );
    let mut early = claims(3600);
    early["nbf"] = json!(now() + 3600);
    assert_refused(&server, &hs256(&early, SECRET.as_bytes()), "not yet valid");
    let rs = encode(
        &Header::new(Algorithm::RS256),
        &claims(3600),
        &EncodingKey::from_rsa_pem(&fixture("rsa-private.pem")).unwrap(),
    )
    .unwrap();
    assert_refused(&server, &rs, "wrong algorithm (RS256)");
    // {"alg":"none","typ":"JWT"} . {"sub":"u1","login":"alice","exp":4102444800} . (no signature)
    let none = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJ1MSIsImxvZ2luIjoiYWxpY2UiLCJleHAiOjQxMDI0NDQ4MDB9.";
    assert_refused(&server, none, "alg none");
    assert_refused(&server, "garbage", "malformed");
    let mut no_login = claims(3600);
    no_login.as_object_mut().unwrap().remove("login");
    assert_refused(
        &server,
        &hs256(&no_login, SECRET.as_bytes()),
        "missing login",
    );

    // Not a bearer token at all.
    let r = server.get("/healthz", &[("Authorization", "Basic dXNlcjpwYXNz")]);
    assert_eq!(r.status, 401);
    // Anonymous requests are served; a cached good token keeps working.
    assert_eq!(server.get("/healthz", &[]).status, 200);
    assert_eq!(call(&server, &good), (200, None));
}

#[test]
fn rs256_server_accepts_its_key_and_refuses_the_wrong_key_and_algorithm_confusion() {
    let public = format!("{FIXTURES}/rsa-public.pem");
    let server = Server::start(&[("STREAMHUB_JWT_PUBLIC_KEY_FILE", &public)]);
    let sign = |key: &str| {
        encode(
            &Header::new(Algorithm::RS256),
            &claims(3600),
            &EncodingKey::from_rsa_pem(&fixture(key)).unwrap(),
        )
        .unwrap()
    };
    assert_eq!(call(&server, &sign("rsa-private.pem")), (200, None));
    assert_refused(&server, &sign("rsa-other-private.pem"), "wrong key");
    // Algorithm confusion: HS256 with the public key's PEM as the HMAC secret.
    assert_refused(
        &server,
        &hs256(&claims(3600), &fixture("rsa-public.pem")),
        "HS256 with the public key",
    );

    // `streamhub token` signs with the private half.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_streamhub"))
        .env_clear()
        .env(
            "STREAMHUB_JWT_PRIVATE_KEY_FILE",
            format!("{FIXTURES}/rsa-private.pem"),
        )
        .args(["token", "--sub", "u2", "--login", "bob"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let token = String::from_utf8(out.stdout).unwrap();
    assert_eq!(call(&server, token.trim()), (200, None));
}

#[test]
fn es256_server_accepts_its_key() {
    let public = format!("{FIXTURES}/ec-public.pem");
    let server = Server::start(&[("STREAMHUB_JWT_PUBLIC_KEY_FILE", &public)]);
    let token = encode(
        &Header::new(Algorithm::ES256),
        &claims(3600),
        &EncodingKey::from_ec_pem(&fixture("ec-private.pem")).unwrap(),
    )
    .unwrap();
    assert_eq!(call(&server, &token), (200, None));
    assert_refused(
        &server,
        &hs256(&claims(3600), SECRET.as_bytes()),
        "HS256 on an ES256 server",
    );
}

#[test]
fn without_a_key_a_random_secret_is_made_and_demo_tokens_work() {
    let server = Server::start(&[]);
    let line =
        server.wait_for_log(|l| l["message"] == "demo token, valid 24 h" && l["login"] == "alice");
    let token = line["token"].as_str().unwrap();
    assert_eq!(call(&server, token), (200, None));
    // A token signed with anything else is refused: nothing is open by default.
    assert_refused(
        &server,
        &hs256(&claims(3600), SECRET.as_bytes()),
        "a token from another secret",
    );
}

//! The schema contract: the project's copy equals the shared one, and the server serves
//! it with a GraphiQL page beside it.

mod support;

use std::path::PathBuf;

use support::Server;

const COPY: &str = include_str!("../schema.graphql");

/// `shared/schema.graphql` beside the repository, or where STREAMHUB_SHARED_DIR says.
fn shared_schema() -> Option<PathBuf> {
    let dir = std::env::var_os("STREAMHUB_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared")));
    let path = dir.join("schema.graphql");
    path.exists().then_some(path)
}

#[test]
fn the_copy_equals_the_shared_contract() {
    match shared_schema() {
        Some(path) => {
            let shared = std::fs::read_to_string(&path).unwrap();
            assert!(
                shared == COPY,
                "server/schema.graphql differs from {}: copy it over",
                path.display()
            );
        }
        // A checkout without the shared folder beside it has nothing to compare with.
        #[allow(clippy::print_stderr)]
        None => eprintln!(
            "shared/schema.graphql not found beside the repository; set STREAMHUB_SHARED_DIR"
        ),
    }
}

#[test]
fn the_sdl_and_the_playground_are_served() {
    let server = Server::start(&[]);
    let r = server.get("/graphql/schema.graphql", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(String::from_utf8(r.body).unwrap(), COPY);

    let r = server.get("/playground", &[]);
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("text/html"));
    let html = String::from_utf8(r.body).unwrap();
    assert!(
        html.contains("GraphiQL") && html.contains("'/graphql'"),
        "{html}"
    );
}

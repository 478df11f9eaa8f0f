//! A GraphQL request, however it comes: the JSON body of a POST (or of a batch's
//! element, or a `graphql-transport-ws` `subscribe` payload, read in place) or the
//! query string of a GET, into one [`GraphQlRequest`].
//!
//! Persisted forms are all read here: APQ's `extensions.persistedQuery`, `documentId`
//! and Relay's `doc_id`.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::{Map, Value};

/// One GraphQL request, however it came; strings borrow from the body or query string.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GraphQlRequest<'a> {
    /// The document text, when sent.
    pub query: Option<Cow<'a, str>>,
    /// Which operation of the document to run.
    pub operation_name: Option<Cow<'a, str>>,
    /// The variables (an empty map when none were sent).
    pub variables: Map<String, Value>,
    /// APQ: `extensions.persistedQuery.sha256Hash` (version 1).
    pub apq_hash: Option<Cow<'a, str>>,
    /// `documentId` or `doc_id`.
    pub document_id: Option<Cow<'a, str>>,
}

impl GraphQlRequest<'_> {
    /// The variables as canonical JSON text: equal text, equal variables.
    pub fn variables_key(&self) -> String {
        serde_json::to_string(&self.variables).unwrap_or_default()
    }
}

/// A request that cannot be read: 400 with the message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// The body or a parameter is not JSON of the expected shape.
    #[error("{0} is not valid: {1}")]
    Json(&'static str, String),
    /// A parameter has the wrong type.
    #[error("{0} must be {1}")]
    Type(&'static str, &'static str),
    /// APQ with a version other than 1.
    #[error("persistedQuery version {0} is not supported; use 1")]
    ApqVersion(u64),
}

/// The body as sent. Parsed straight into this shape with serde_json: on these bodies
/// it takes about half the time of a `serde_json::Value`, and simd-json is slower in
/// every form (perf/RESULTS.md, `cargo bench -p streamhub-server --bench request_json`).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Body<'a> {
    #[serde(borrow, default)]
    query: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    operation_name: Option<Cow<'a, str>>,
    #[serde(default)]
    variables: Option<Map<String, Value>>,
    #[serde(borrow, default)]
    extensions: Option<Extensions<'a>>,
    #[serde(borrow, default, alias = "doc_id")]
    document_id: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Extensions<'a> {
    #[serde(borrow, default)]
    persisted_query: Option<PersistedQuery<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PersistedQuery<'a> {
    version: u64,
    #[serde(borrow)]
    sha256_hash: Cow<'a, str>,
}

impl<'a> Body<'a> {
    fn into_request(self) -> Result<GraphQlRequest<'a>, RequestError> {
        Ok(GraphQlRequest {
            query: self.query,
            operation_name: self.operation_name,
            variables: self.variables.unwrap_or_default(),
            apq_hash: self
                .extensions
                .and_then(|e| e.persisted_query)
                .map(PersistedQuery::hash)
                .transpose()?,
            document_id: self.document_id,
        })
    }
}

impl<'a> PersistedQuery<'a> {
    fn hash(self) -> Result<Cow<'a, str>, RequestError> {
        if self.version == 1 {
            Ok(self.sha256_hash)
        } else {
            Err(RequestError::ApqVersion(self.version))
        }
    }
}

/// Reads a POST body (`application/json`).
pub fn from_body(body: &[u8]) -> Result<GraphQlRequest<'_>, RequestError> {
    // serde would read a JSON array as a struct's fields in order: say what is wrong.
    if body.trim_ascii_start().first().is_some_and(|&c| c != b'{')
        && serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok()
    {
        return Err(RequestError::Type("the body", "a JSON object"));
    }
    let b: Body<'_> =
        serde_json::from_slice(body).map_err(|e| RequestError::Json("the body", e.to_string()))?;
    b.into_request()
}

/// Reads a request already parsed as JSON (a `subscribe` payload, a batch's element)
/// in place: nothing is printed and parsed again.
pub fn from_value(value: &Value) -> Result<GraphQlRequest<'_>, RequestError> {
    if !value.is_object() {
        return Err(RequestError::Type("the request", "a JSON object"));
    }
    let b =
        Body::deserialize(value).map_err(|e| RequestError::Json("the request", e.to_string()))?;
    b.into_request()
}

/// Reads the query string of a GET (`query`, `operationName`, `variables` and
/// `extensions` as JSON text, `documentId` or `doc_id`).
pub fn from_query_string(qs: &str) -> Result<GraphQlRequest<'_>, RequestError> {
    let mut r = GraphQlRequest::default();
    for (k, v) in form_urlencoded::parse(qs.as_bytes()) {
        match &*k {
            "query" => r.query = Some(v),
            "operationName" if !v.is_empty() => r.operation_name = Some(v),
            "documentId" | "doc_id" => r.document_id = Some(v),
            "variables" if !v.is_empty() => {
                let parsed: Value = serde_json::from_str(&v)
                    .map_err(|e| RequestError::Json("variables", e.to_string()))?;
                match parsed {
                    Value::Object(m) => r.variables = m,
                    Value::Null => {}
                    _ => return Err(RequestError::Type("variables", "an object")),
                }
            }
            "extensions" if !v.is_empty() => {
                let e: Option<Extensions<'_>> = serde_json::from_str(&v)
                    .map_err(|e| RequestError::Json("extensions", e.to_string()))?;
                r.apq_hash = e
                    .and_then(|e| e.persisted_query)
                    .map(|pq| pq.hash().map(|h| Cow::Owned(h.into_owned())))
                    .transpose()?;
            }
            _ => {}
        }
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn post_bodies_with_every_persisted_form() {
        let r = from_body(br#"{"query":"{ a }","operationName":"A","variables":{"x":1}}"#).unwrap();
        assert_eq!(r.query.as_deref(), Some("{ a }"));
        assert_eq!(r.operation_name.as_deref(), Some("A"));
        assert_eq!(r.variables["x"], json!(1));
        let r = from_body(br#"{"extensions":{"persistedQuery":{"version":1,"sha256Hash":"abc"}}}"#)
            .unwrap();
        assert_eq!(r.apq_hash.as_deref(), Some("abc"));
        assert!(r.query.is_none());
        assert_eq!(
            from_body(br#"{"documentId":"sha256:ff"}"#)
                .unwrap()
                .document_id
                .as_deref(),
            Some("sha256:ff")
        );
        assert_eq!(
            from_body(br#"{"doc_id":"q1","variables":null}"#)
                .unwrap()
                .document_id
                .as_deref(),
            Some("q1")
        );
    }

    #[test]
    fn parsed_json_reads_as_its_text_does() {
        for text in [
            r#"{"query":"{ a }","operationName":"A","variables":{"x":[1,{"y":null}]}}"#,
            r#"{"extensions":{"persistedQuery":{"version":1,"sha256Hash":"abc"}}}"#,
            r#"{"doc_id":"q1","variables":null}"#,
        ] {
            let value: Value = serde_json::from_str(text).unwrap();
            let r = from_value(&value).unwrap();
            assert_eq!(r, from_body(text.as_bytes()).unwrap());
        }
        let bad = |v: Value| from_value(&v).unwrap_err().to_string();
        assert_eq!(bad(json!([1])), "the request must be a JSON object");
        assert!(bad(json!({"query": 7})).starts_with("the request is not valid"));
        assert!(
            bad(json!({"extensions": {"persistedQuery": {"version": 2, "sha256Hash": "a"}}}))
                .contains("version 2")
        );
    }

    #[test]
    fn bad_bodies_say_what_is_wrong() {
        let err = |b: &[u8]| from_body(b).unwrap_err().to_string();
        assert!(err(b"{nope").starts_with("the body is not valid"));
        assert_eq!(err(b"[1]"), "the body must be a JSON object");
        assert_eq!(err(b"\"text\""), "the body must be a JSON object");
        let e = err(br#"{"query":1}"#);
        assert!(e.contains("invalid type: integer `1`"), "{e}");
        let e = err(br#"{"variables":[1]}"#);
        assert!(e.contains("expected a map"), "{e}");
        assert_eq!(
            from_body(br#"{"extensions":{"persistedQuery":{"version":2,"sha256Hash":"a"}}}"#),
            Err(RequestError::ApqVersion(2))
        );
    }

    #[test]
    fn get_query_strings_decode() {
        let r = from_query_string("query=%7B%20a%20%7D&operationName=&variables=%7B%22x%22%3A2%7D")
            .unwrap();
        assert_eq!(r.query.as_deref(), Some("{ a }"));
        assert!(r.operation_name.is_none());
        assert_eq!(r.variables["x"], json!(2));
        let ext =
            "%7B%22persistedQuery%22%3A%7B%22version%22%3A1%2C%22sha256Hash%22%3A%22h%22%7D%7D";
        assert_eq!(
            from_query_string(&format!("extensions={ext}"))
                .unwrap()
                .apq_hash
                .as_deref(),
            Some("h")
        );
        assert_eq!(
            from_query_string("documentId=Q1")
                .unwrap()
                .document_id
                .as_deref(),
            Some("Q1")
        );
        assert!(matches!(
            from_query_string("variables=%7Bx"),
            Err(RequestError::Json("variables", _))
        ));
    }
}

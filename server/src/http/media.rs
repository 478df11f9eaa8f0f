//! The response media types of GraphQL over HTTP, and the one a client's `Accept`
//! header asks for.

/// The response media types of GraphQL over HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaType {
    /// `application/graphql-response+json` (the specification's own).
    GraphQlResponse,
    /// `application/json` (legacy clients).
    Json,
}

impl MediaType {
    /// The `Content-Type` value.
    pub fn content_type(self) -> &'static str {
        match self {
            MediaType::GraphQlResponse => "application/graphql-response+json; charset=utf-8",
            MediaType::Json => "application/json; charset=utf-8",
        }
    }
}

/// The media type to answer with for an `Accept` header: the first acceptable one in
/// the client's order of preference (q-values honoured); `application/json` when there
/// is no header; None when nothing offered is acceptable (406).
pub fn negotiate(accept: Option<&str>) -> Option<MediaType> {
    let Some(accept) = accept.filter(|a| !a.trim().is_empty()) else {
        return Some(MediaType::Json);
    };
    let mut best: Option<(f32, usize, MediaType)> = None;
    for (pos, part) in accept.split(',').enumerate() {
        let mut params = part.split(';').map(str::trim);
        let range = params.next().unwrap_or("").to_ascii_lowercase();
        let q = params
            .find_map(|p| p.strip_prefix("q="))
            .and_then(|q| q.parse::<f32>().ok())
            .unwrap_or(1.0);
        if q <= 0.0 {
            continue;
        }
        let media = match range.as_str() {
            "application/graphql-response+json" => MediaType::GraphQlResponse,
            "application/json" | "application/*" | "*/*" => MediaType::Json,
            _ => continue,
        };
        let better = match best {
            None => true,
            Some((bq, bpos, _)) => q > bq || (q == bq && pos < bpos),
        };
        if better {
            best = Some((q, pos, media));
        }
    }
    best.map(|(_, _, m)| m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_negotiation() {
        use MediaType::*;
        assert_eq!(negotiate(None), Some(Json));
        assert_eq!(
            negotiate(Some("application/graphql-response+json")),
            Some(GraphQlResponse)
        );
        assert_eq!(
            negotiate(Some("application/json, application/graphql-response+json")),
            Some(Json)
        );
        assert_eq!(
            negotiate(Some(
                "application/json;q=0.9, application/graphql-response+json"
            )),
            Some(GraphQlResponse)
        );
        assert_eq!(negotiate(Some("*/*")), Some(Json));
        assert_eq!(negotiate(Some("text/html")), None);
        assert_eq!(negotiate(Some("application/json;q=0")), None);
    }
}

//! Routing: a match on the path, then on the method. No framework.

use hyper::Method;

/// Every route the server answers, as a small index for per-route metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `GET /healthz`: liveness.
    Healthz,
    /// `GET /readyz`: readiness for the load balancer.
    Readyz,
    /// `GET /metrics`: Prometheus text.
    Metrics,
    /// `POST /graphql`, `GET /graphql`: GraphQL over HTTP.
    GraphQl,
    /// `GET /graphql/schema.graphql`: the SDL.
    Schema,
    /// `GET /ws` + upgrade: the room protocol.
    Ws,
    /// `GET /ws/echo` + upgrade: the conformance echo (only with `STREAMHUB_WS_ECHO`).
    WsEcho,
    /// `GET /playground`: a GraphiQL page.
    Playground,
    /// Any path the server does not serve.
    NotFound,
}

impl Route {
    /// All routes, in index order.
    pub const ALL: [Route; 9] = [
        Route::Healthz,
        Route::Readyz,
        Route::Metrics,
        Route::GraphQl,
        Route::Schema,
        Route::Ws,
        Route::WsEcho,
        Route::Playground,
        Route::NotFound,
    ];
    /// The number of routes.
    pub const COUNT: usize = Self::ALL.len();

    /// The route of a path.
    pub fn of(path: &str) -> Route {
        match path {
            "/healthz" => Route::Healthz,
            "/readyz" => Route::Readyz,
            "/metrics" => Route::Metrics,
            "/graphql" => Route::GraphQl,
            "/graphql/schema.graphql" => Route::Schema,
            "/ws" => Route::Ws,
            "/ws/echo" => Route::WsEcho,
            "/playground" => Route::Playground,
            _ => Route::NotFound,
        }
    }

    /// The `Allow` header value of the route: the methods it answers. Every route answers
    /// `OPTIONS` with 204 and this header (and, on the API routes, a CORS preflight's
    /// headers: `http::cors`).
    pub fn allow(self) -> &'static str {
        match self {
            Route::Healthz | Route::Readyz | Route::Metrics | Route::Schema | Route::Playground => {
                "GET, HEAD, OPTIONS"
            }
            Route::GraphQl => "GET, POST, OPTIONS",
            Route::Ws | Route::WsEcho => "GET, OPTIONS",
            Route::NotFound => "",
        }
    }

    /// Whether the route answers `method`.
    pub fn allows(self, method: &Method) -> bool {
        if method == Method::OPTIONS {
            return true;
        }
        match self {
            Route::Healthz | Route::Readyz | Route::Metrics | Route::Schema | Route::Playground => {
                method == Method::GET || method == Method::HEAD
            }
            Route::GraphQl => method == Method::GET || method == Method::POST,
            Route::Ws | Route::WsEcho => method == Method::GET,
            Route::NotFound => true,
        }
    }

    /// The route's index in [`Route::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// The route's label in metrics and logs.
    pub fn name(self) -> &'static str {
        match self {
            Route::Healthz => "/healthz",
            Route::Readyz => "/readyz",
            Route::Metrics => "/metrics",
            Route::GraphQl => "/graphql",
            Route::Schema => "/graphql/schema.graphql",
            Route::Ws => "/ws",
            Route::WsEcho => "/ws/echo",
            Route::Playground => "/playground",
            Route::NotFound => "unmatched",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_matches_position_in_all() {
        for (i, r) in Route::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
        }
    }

    #[test]
    fn paths_and_methods_route() {
        assert_eq!(Route::of("/healthz"), Route::Healthz);
        assert_eq!(Route::of("/healthz/"), Route::NotFound);
        assert_eq!(Route::of("/nope"), Route::NotFound);
        assert!(Route::Healthz.allows(&Method::HEAD));
        assert!(!Route::Readyz.allows(&Method::POST));
        assert!(Route::GraphQl.allows(&Method::OPTIONS));
        assert!(!Route::GraphQl.allows(&Method::PUT));
    }
}

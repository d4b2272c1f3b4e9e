//! What a browser on another origin may do (DESIGN.md, Production edges):
//! the same lists in the template's `CorsConfiguration` and in the local
//! server's CORS layer (a test compares them).

/// Methods a browser may use.
pub const ALLOW_METHODS: [&str; 3] = ["GET", "POST", "OPTIONS"];
/// Request headers a browser may send.
pub const ALLOW_HEADERS: [&str; 4] = ["authorization", "content-type", "idempotency-key", "if-none-match"];
/// The dev identity headers, allowed by the local server only.
pub const DEV_ALLOW_HEADERS: [&str; 3] = ["x-dev-operator", "x-dev-treaties", "x-dev-roles"];
/// Response headers a browser's script may read.
pub const EXPOSE_HEADERS: [&str; 5] =
    ["etag", "location", "retry-after", "idempotency-replayed", "server-timing"];
/// How long a browser may keep a preflight answer.
pub const MAX_AGE_SECS: u64 = 600;
/// The local server's origins when `CLEARANCE_CORS_ORIGINS` is not set: the
/// Vite dev server.
pub const LOCAL_ORIGINS_DEFAULT: &str = "http://127.0.0.1:5173,http://localhost:5173";

/// Parses a comma list of origins (`scheme://host[:port]`, no path, never
/// `*`: an answer names the one origin it allows).
///
/// # Errors
/// The rule the first bad origin breaks.
pub fn parse_origins(list: &str) -> Result<Vec<String>, String> {
    let origins: Vec<String> =
        list.split(',').map(str::trim).filter(|o| !o.is_empty()).map(str::to_owned).collect();
    if origins.is_empty() {
        return Err("must list at least one origin".into());
    }
    for origin in &origins {
        let rest = origin.strip_prefix("https://").or_else(|| origin.strip_prefix("http://"));
        let valid = rest.is_some_and(|host| {
            !host.is_empty() && host.bytes().all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        });
        if !valid {
            return Err(format!("{origin:?} is not an origin (http(s)://host[:port], no path, no *)"));
        }
    }
    Ok(origins)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_exact_and_never_a_wildcard() {
        assert_eq!(
            parse_origins(LOCAL_ORIGINS_DEFAULT),
            Ok(vec!["http://127.0.0.1:5173".to_owned(), "http://localhost:5173".to_owned()])
        );
        assert_eq!(parse_origins(" https://grid.example.com , ").map(|o| o.len()), Ok(1));
        for bad in ["*", "", "grid.example.com", "https://grid.example.com/app", "https://", "http://a b"] {
            assert!(parse_origins(bad).is_err(), "{bad}");
        }
    }
}

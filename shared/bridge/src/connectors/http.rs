//! What every connector does the same way: sort HTTP failures into retryable
//! and permanent, and honour `Retry-After`.

use std::time::Duration;

use crate::error::ApiError;

/// Used when a 429 names no delay; short enough to heal quickly, long enough
/// not to hammer a throttled API.
pub const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(5);

pub use crate::timing::REQUEST_TIMEOUT;

/// A client with the bridge's timeouts; build once and share (it pools connections).
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .connect_timeout(Duration::from_secs(5))
        .pool_idle_timeout(Duration::from_secs(60))
        .user_agent(concat!("psa-bridge/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("TLS backend initializes")
}

/// Parses `Retry-After` given in seconds (the form Zendesk and Autotask use).
/// HTTP dates are rare in these APIs; they fall back to the default.
pub fn parse_retry_after(value: Option<&reqwest::header::HeaderValue>) -> Duration {
    value
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|secs| secs.is_finite() && *secs >= 0.0)
        .map(|secs| Duration::from_secs_f64(secs.min(3600.0)))
        .unwrap_or(DEFAULT_RETRY_AFTER)
}

/// Sorts a transport-level failure.
pub fn transport_error(system: &'static str, err: reqwest::Error) -> ApiError {
    if err.is_timeout() {
        ApiError::Timeout { system }
    } else {
        // `without_url` keeps query strings (which may carry a user name) out of errors.
        ApiError::Transport {
            system,
            message: err.without_url().to_string(),
        }
    }
}

/// Turns a non-success response into an `ApiError`; `describe` extracts the
/// system's own error message from the body.
pub async fn error_from_response(
    system: &'static str,
    response: reqwest::Response,
    what: &str,
    describe: fn(&str) -> Option<String>,
) -> ApiError {
    let status = response.status().as_u16();
    let retry_after = parse_retry_after(response.headers().get(reqwest::header::RETRY_AFTER));
    let body = response.text().await.unwrap_or_default();
    let message = describe(&body).unwrap_or_else(|| truncate(&body, 300));
    match status {
        429 => ApiError::RateLimited {
            system,
            retry_after,
        },
        401 | 403 => ApiError::Unauthorized { system, status },
        404 => ApiError::NotFound {
            system,
            what: what.to_owned(),
        },
        408 => ApiError::Timeout { system },
        500..=599 => ApiError::Server {
            system,
            status,
            message,
        },
        _ => ApiError::Rejected {
            system,
            status,
            message,
        },
    }
}

fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// Whether two webhook or callback URLs name the same endpoint: compared
/// without a trailing slash and with the scheme's and host's case ignored
/// (a registration finds its own hook again even if the PSA normalised it).
pub fn same_endpoint(a: &str, b: &str) -> bool {
    let norm = |s: &str| -> String {
        let s = s.trim().trim_end_matches('/');
        match s.split_once("://") {
            Some((scheme, rest)) => {
                let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
                format!(
                    "{}://{}{path}",
                    scheme.to_ascii_lowercase(),
                    host.to_ascii_lowercase()
                )
            }
            None => s.to_owned(),
        }
    };
    norm(a) == norm(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn retry_after_seconds_are_honoured_and_bounded() {
        assert_eq!(
            parse_retry_after(Some(&HeaderValue::from_static("7"))),
            Duration::from_secs(7)
        );
        assert_eq!(
            parse_retry_after(Some(&HeaderValue::from_static("99999"))),
            Duration::from_secs(3600)
        );
        assert_eq!(
            parse_retry_after(Some(&HeaderValue::from_static(
                "Wed, 21 Oct 2015 07:28:00 GMT"
            ))),
            DEFAULT_RETRY_AFTER
        );
        assert_eq!(parse_retry_after(None), DEFAULT_RETRY_AFTER);
    }

    #[test]
    fn truncation_respects_char_boundaries() {
        assert_eq!(truncate("héllo", 2), "hé…");
        assert_eq!(truncate("hi", 5), "hi");
    }
}

//! Request recording shared by the sandboxes: every HTTP request a sandbox
//! receives (faulted, unauthorized and unknown routes included) is kept, in
//! order of arrival, so tests can assert on what a client really sent rather
//! than on a hand-written copy of it.
//!
//! Credentials never reach the log: the values of [`CREDENTIAL_HEADERS`] are
//! replaced by [`REDACTED`] (an `Authorization` header keeps its scheme, e.g.
//! `Basic [redacted]`), so a recorded request can be printed safely.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde_json::Value;

/// Headers (lower case) whose values are credentials; they are recorded by
/// name with the value redacted.
pub const CREDENTIAL_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "x-api-key",
    // Autotask's API user credentials.
    "secret",
    "apiintegrationcode",
];

/// What a redacted header value reads.
pub const REDACTED: &str = "[redacted]";

/// Requests kept per sandbox unless changed with [`RequestLog::set_capacity`];
/// the oldest are dropped first.
pub const DEFAULT_CAPACITY: usize = 10_000;

/// One request as the sandbox received it.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedRequest {
    /// Order of arrival at this sandbox, from 1.
    pub seq: u64,
    pub received_at: DateTime<Utc>,
    /// Upper case, e.g. `PATCH`.
    pub method: String,
    /// The full path, without the query string.
    pub path: String,
    /// The raw (still percent-encoded) query string, if any.
    pub query: Option<String>,
    /// Every header, names in lower case, in the order received; credential
    /// values are redacted.
    pub headers: Vec<(String, String)>,
    /// The body parsed as JSON, when it is JSON.
    pub body: Option<Value>,
    /// Length of the body in bytes.
    pub body_len: usize,
    /// The status the sandbox answered; `None` while the request is in flight
    /// (or if the client gave up before the answer).
    pub status: Option<u16>,
}

impl RecordedRequest {
    /// Whether this is a `method` request (any case) to a path starting with
    /// `path_prefix`.
    pub fn is(&self, method: &str, path_prefix: &str) -> bool {
        self.method.eq_ignore_ascii_case(method) && self.path.starts_with(path_prefix)
    }

    /// A header's (possibly redacted) value; the name is case-insensitive.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The decoded query parameters, in order.
    pub fn query_pairs(&self) -> Vec<(String, String)> {
        self.query
            .as_deref()
            .and_then(|q| serde_urlencoded::from_str(q).ok())
            .unwrap_or_default()
    }

    /// One decoded query parameter (the first of that name).
    pub fn query_param(&self, name: &str) -> Option<String> {
        self.query_pairs()
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
    }

    /// The JSON body; panics with the request line if there is none (a test
    /// expecting a body that was not sent).
    pub fn json(&self) -> &Value {
        self.body.as_ref().unwrap_or_else(|| {
            panic!(
                "{} {} carried no JSON body ({} bytes)",
                self.method, self.path, self.body_len
            )
        })
    }
}

/// The request log of one sandbox; clones share it.
#[derive(Debug, Clone)]
pub struct RequestLog {
    inner: Arc<Mutex<LogInner>>,
}

#[derive(Debug)]
struct LogInner {
    entries: VecDeque<RecordedRequest>,
    capacity: usize,
    next_seq: u64,
    dropped: u64,
}

impl Default for RequestLog {
    fn default() -> Self {
        Self {
            inner: Arc::new(Mutex::new(LogInner {
                entries: VecDeque::new(),
                capacity: DEFAULT_CAPACITY,
                next_seq: 1,
                dropped: 0,
            })),
        }
    }
}

impl RequestLog {
    fn lock(&self) -> MutexGuard<'_, LogInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every kept request, oldest first.
    pub fn all(&self) -> Vec<RecordedRequest> {
        self.lock().entries.iter().cloned().collect()
    }

    /// The kept `method` requests (any case) whose path starts with
    /// `path_prefix`, oldest first.
    pub fn matching(&self, method: &str, path_prefix: &str) -> Vec<RecordedRequest> {
        self.lock()
            .entries
            .iter()
            .filter(|r| r.is(method, path_prefix))
            .cloned()
            .collect()
    }

    /// Forgets every kept request (the sequence numbers keep counting).
    pub fn clear(&self) {
        self.lock().entries.clear();
    }

    /// How many requests are kept; `0` stops recording. Shrinking drops the
    /// oldest.
    pub fn set_capacity(&self, capacity: usize) {
        let mut inner = self.lock();
        inner.capacity = capacity;
        inner.trim();
    }

    /// Requests dropped because the log was full.
    pub fn dropped(&self) -> u64 {
        self.lock().dropped
    }

    fn begin(&self, request: RecordedRequest) -> Option<u64> {
        let mut inner = self.lock();
        if inner.capacity == 0 {
            return None;
        }
        let seq = inner.next_seq;
        inner.next_seq += 1;
        inner.entries.push_back(RecordedRequest { seq, ..request });
        inner.trim();
        Some(seq)
    }

    fn finish(&self, seq: u64, status: StatusCode) {
        let mut inner = self.lock();
        if let Some(entry) = inner.entries.iter_mut().rev().find(|r| r.seq == seq) {
            entry.status = Some(status.as_u16());
        }
    }
}

impl LogInner {
    fn trim(&mut self) {
        while self.entries.len() > self.capacity {
            self.entries.pop_front();
            self.dropped += 1;
        }
    }
}

fn redact(name: &str, value: &str) -> String {
    if !CREDENTIAL_HEADERS.contains(&name) {
        return value.to_owned();
    }
    match value.split_once(' ') {
        // Keep the scheme (`Basic`, `Bearer`): it tells which auth was used.
        Some((scheme, _)) if name.ends_with("authorization") => format!("{scheme} {REDACTED}"),
        _ => REDACTED.to_owned(),
    }
}

/// axum middleware recording each request; mount it outermost, with
/// `axum::middleware::from_fn_with_state(log, record_requests)`, so faulted
/// and rejected requests are recorded too.
pub async fn record_requests(
    State(log): State<RequestLog>,
    request: Request,
    next: Next,
) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        // The client went away mid-body; the handler could not have read it either.
        return StatusCode::BAD_REQUEST.into_response();
    };
    let headers = parts
        .headers
        .iter()
        .map(|(name, value)| {
            let name = name.as_str().to_ascii_lowercase();
            let value = redact(&name, &String::from_utf8_lossy(value.as_bytes()));
            (name, value)
        })
        .collect();
    let seq = log.begin(RecordedRequest {
        seq: 0,
        received_at: Utc::now(),
        method: parts.method.as_str().to_ascii_uppercase(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        headers,
        body: serde_json::from_slice(&bytes).ok(),
        body_len: bytes.len(),
        status: None,
    });
    let response = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    if let Some(seq) = seq {
        log.finish(seq, response.status());
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_redacted_but_named() {
        assert_eq!(
            redact("authorization", "Basic dXNlcjpwdw=="),
            "Basic [redacted]"
        );
        assert_eq!(redact("secret", "s3cr3t"), REDACTED);
        assert_eq!(redact("apiintegrationcode", "CODE"), REDACTED);
        assert_eq!(redact("username", "api@example"), "api@example");
    }

    #[test]
    fn the_log_keeps_the_newest_within_its_capacity() {
        let log = RequestLog::default();
        let request = |path: &str| RecordedRequest {
            seq: 0,
            received_at: Utc::now(),
            method: "GET".to_owned(),
            path: path.to_owned(),
            query: Some("a=1&page%5Bsize%5D=100".to_owned()),
            headers: vec![("host".to_owned(), "x".to_owned())],
            body: None,
            body_len: 0,
            status: None,
        };
        log.set_capacity(2);
        for path in ["/a", "/b/1", "/b/2"] {
            log.begin(request(path));
        }
        let kept = log.all();
        assert_eq!(kept.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![2, 3]);
        assert_eq!(log.dropped(), 1);
        assert_eq!(log.matching("get", "/b/").len(), 2);
        assert_eq!(log.matching("POST", "/b/").len(), 0);
        assert_eq!(kept[0].query_param("page[size]").as_deref(), Some("100"));
        assert_eq!(kept[0].header("HOST"), Some("x"));
        log.finish(3, StatusCode::CREATED);
        assert_eq!(log.all()[1].status, Some(201));
        log.set_capacity(0);
        assert!(log.all().is_empty());
        assert_eq!(log.begin(request("/c")), None);
    }
}

//! Fault injection shared by every sandbox: latency, 429 bursts with
//! `Retry-After`, 5xx, hung requests, and dropped, duplicated or delayed
//! outgoing webhooks. Later issues' chaos tests lean on this.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rand::Rng;

/// What to inject. Rates are probabilities in `0.0..=1.0`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FaultConfig {
    /// Added to every API response.
    pub latency: Duration,
    /// Share of API calls answered with a 5xx.
    pub server_error_rate: f64,
    /// The next N API calls are answered 429 with `Retry-After: retry_after_secs`.
    pub rate_limit_burst: u32,
    pub retry_after_secs: u64,
    /// Share of API calls that hang for `hang` before answering 504.
    pub hang_rate: f64,
    pub hang: Duration,
    /// Share of outgoing webhooks never sent.
    pub drop_webhook_rate: f64,
    /// Share of outgoing webhooks sent twice.
    pub duplicate_webhook_rate: f64,
    /// Outgoing webhooks are delayed by a random time up to this, which
    /// reorders deliveries.
    pub webhook_jitter: Duration,
}

/// Counters of what was injected, so tests can prove faults really happened.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FaultStats {
    pub server_errors: u64,
    pub rate_limited: u64,
    pub hung: u64,
    pub webhooks_sent: u64,
    pub webhooks_dropped: u64,
    pub webhooks_duplicated: u64,
    pub webhooks_failed: u64,
}

#[derive(Debug, Default)]
struct Inner {
    config: FaultConfig,
    stats: FaultStats,
}

/// Shared, cheaply cloned fault switchboard of one sandbox.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    inner: Arc<Mutex<Inner>>,
}

/// What to do with one API call.
enum Verdict {
    Pass(Duration),
    RateLimit(u64),
    ServerError(Duration),
    Hang(Duration),
}

impl Faults {
    pub fn set(&self, config: FaultConfig) {
        self.inner.lock().unwrap().config = config;
    }

    pub fn update(&self, change: impl FnOnce(&mut FaultConfig)) {
        change(&mut self.inner.lock().unwrap().config);
    }

    pub fn clear(&self) {
        self.set(FaultConfig::default());
    }

    pub fn config(&self) -> FaultConfig {
        self.inner.lock().unwrap().config.clone()
    }

    pub fn stats(&self) -> FaultStats {
        self.inner.lock().unwrap().stats.clone()
    }

    fn verdict(&self) -> Verdict {
        let mut inner = self.inner.lock().unwrap();
        let mut rng = rand::thread_rng();
        let latency = inner.config.latency;
        if inner.config.rate_limit_burst > 0 {
            inner.config.rate_limit_burst -= 1;
            inner.stats.rate_limited += 1;
            return Verdict::RateLimit(inner.config.retry_after_secs);
        }
        if inner.config.hang_rate > 0.0 && rng.gen_bool(inner.config.hang_rate.min(1.0)) {
            inner.stats.hung += 1;
            return Verdict::Hang(inner.config.hang);
        }
        if inner.config.server_error_rate > 0.0
            && rng.gen_bool(inner.config.server_error_rate.min(1.0))
        {
            inner.stats.server_errors += 1;
            return Verdict::ServerError(latency);
        }
        Verdict::Pass(latency)
    }

    /// How many copies of an outgoing webhook to send (0, 1 or 2) and after
    /// what delay each.
    pub fn webhook_plan(&self) -> Vec<Duration> {
        let mut inner = self.inner.lock().unwrap();
        let mut rng = rand::thread_rng();
        let config = inner.config.clone();
        let jitter = |rng: &mut rand::rngs::ThreadRng| {
            if config.webhook_jitter.is_zero() {
                Duration::ZERO
            } else {
                rng.gen_range(Duration::ZERO..config.webhook_jitter)
            }
        };
        if config.drop_webhook_rate > 0.0 && rng.gen_bool(config.drop_webhook_rate.min(1.0)) {
            inner.stats.webhooks_dropped += 1;
            return Vec::new();
        }
        let mut plan = vec![jitter(&mut rng)];
        if config.duplicate_webhook_rate > 0.0
            && rng.gen_bool(config.duplicate_webhook_rate.min(1.0))
        {
            inner.stats.webhooks_duplicated += 1;
            plan.push(jitter(&mut rng));
        }
        plan
    }

    pub fn record_webhook(&self, delivered: bool) {
        let mut inner = self.inner.lock().unwrap();
        if delivered {
            inner.stats.webhooks_sent += 1;
        } else {
            inner.stats.webhooks_failed += 1;
        }
    }
}

/// axum middleware applying the API faults; mount with
/// `axum::middleware::from_fn_with_state(faults, apply_faults)`.
pub async fn apply_faults(State(faults): State<Faults>, request: Request, next: Next) -> Response {
    match faults.verdict() {
        Verdict::Pass(latency) => {
            if !latency.is_zero() {
                tokio::time::sleep(latency).await;
            }
            next.run(request).await
        }
        Verdict::RateLimit(retry_after) => {
            let mut response = (
                StatusCode::TOO_MANY_REQUESTS,
                axum::Json(serde_json::json!({"errors": ["Rate limit exceeded (sandbox)"]})),
            )
                .into_response();
            response
                .headers_mut()
                .insert("Retry-After", HeaderValue::from(retry_after));
            response
        }
        Verdict::ServerError(latency) => {
            tokio::time::sleep(latency).await;
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                axum::Json(serde_json::json!({"errors": ["Internal server error (sandbox)"]})),
            )
                .into_response()
        }
        Verdict::Hang(hang) => {
            tokio::time::sleep(hang).await;
            StatusCode::GATEWAY_TIMEOUT.into_response()
        }
    }
}

/// Sends one outgoing webhook according to the fault plan, in the background,
/// so the API call that caused it answers at once (as the real systems do).
pub fn deliver_webhook(
    faults: &Faults,
    client: &reqwest::Client,
    url: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
) {
    for delay in faults.webhook_plan() {
        let faults = faults.clone();
        let client = client.clone();
        let url = url.clone();
        let headers = headers.clone();
        let body = body.clone();
        tokio::spawn(async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            let mut request = client.post(&url).body(body);
            for (name, value) in &headers {
                request = request.header(name, value);
            }
            let delivered = matches!(request.send().await, Ok(r) if r.status().is_success());
            faults.record_webhook(delivered);
        });
    }
}

//! The harness of the console tests: the router nested at `/admin` over
//! the embedded SQLite store, an outbox folder, a hand-set clock and a
//! pause that records instead of sleeping; requests go through the real
//! HTTP layer with `tower::ServiceExt::oneshot`.

pub mod fakes;

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use admin::{
    require_tenant, Accounts, AdminState, CurrentUser, HashCost, OutboxMailer, Pause, Settings,
};
use async_trait::async_trait;
use axum::body::Body;
use axum::extract::Path;
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use axum::routing::get;
use axum::Router;
use bridge::adapters::embedded::SqliteStore;
use bridge::model::TenantId;
use bridge::ports::{Clock, Store};
use chrono::{DateTime, Utc};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

pub const OPERATOR: &str = "ops@example.com";
pub const OPERATOR_PASSWORD: &str = "operator-password-1";

// ---- test doubles -------------------------------------------------------

pub struct TestClock(Mutex<DateTime<Utc>>);

impl TestClock {
    pub fn advance(&self, by: chrono::Duration) {
        *self.0.lock().unwrap() += by;
    }
}

impl Clock for TestClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap()
    }
}

#[derive(Default)]
pub struct RecordingPause(pub Mutex<Vec<Duration>>);

#[async_trait]
impl Pause for RecordingPause {
    async fn pause(&self, duration: Duration) {
        self.0.lock().unwrap().push(duration);
    }
}

/// Every log line of this test binary, to scan for secrets.
pub fn logs() -> &'static Mutex<Vec<u8>> {
    static LOGS: OnceLock<Mutex<Vec<u8>>> = OnceLock::new();
    static INSTALLED: OnceLock<()> = OnceLock::new();
    let logs = LOGS.get_or_init(Mutex::default);
    INSTALLED.get_or_init(|| {
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(|| LogWriter)
            .finish();
        tracing::subscriber::set_global_default(subscriber).unwrap();
    });
    logs
}

struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        logs().lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

// ---- harness -------------------------------------------------------------

pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Resp {
    pub fn location(&self) -> &str {
        self.headers
            .get(header::LOCATION)
            .map(|v| v.to_str().unwrap())
            .unwrap_or("")
    }

    pub fn set_cookie(&self) -> Option<&str> {
        self.headers
            .get(header::SET_COOKIE)
            .map(|v| v.to_str().unwrap())
    }

    /// The session token of a Set-Cookie, as a `Cookie` header value.
    pub fn session(&self) -> String {
        let set = self.set_cookie().expect("a Set-Cookie header");
        let pair = set.split(';').next().unwrap();
        assert!(pair.starts_with("psab_session="), "{set}");
        pair.to_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|_| panic!("not JSON: {}", self.body))
    }

    /// The CSRF token in a page's hidden field.
    pub fn csrf_field(&self) -> String {
        let marker = r#"name="csrf" value=""#;
        let start = self.body.find(marker).expect("a csrf field") + marker.len();
        let len = self.body[start..].find('"').unwrap();
        self.body[start..start + len].to_owned()
    }
}

pub struct Harness {
    pub app: Router,
    pub state: AdminState,
    pub store: Arc<SqliteStore>,
    pub clock: Arc<TestClock>,
    pub pause: Arc<RecordingPause>,
    pub outbox: PathBuf,
    /// Every response's status line, headers but Set-Cookie, and body.
    pub seen: Mutex<Vec<String>>,
}

/// A tenant-scoped route as later routes will write them.
async fn tenant_probe(
    user: CurrentUser,
    Path(tenant): Path<String>,
) -> Result<String, admin::AdminError> {
    let tenant = TenantId::parse(&tenant).ok_or(admin::AdminError::NotFound)?;
    require_tenant(&user, &tenant)?;
    Ok(format!("tenant {tenant}"))
}

impl Harness {
    pub async fn new() -> Self {
        Self::new_with(|state| state).await
    }

    /// A harness whose state `wire` gives more ports.
    pub async fn new_with(wire: impl FnOnce(AdminState) -> AdminState) -> Self {
        logs();
        let store = Arc::new(SqliteStore::in_memory().unwrap());
        let outbox = std::env::temp_dir().join(format!("admin-outbox-{}", uuid::Uuid::new_v4()));
        let clock = Arc::new(TestClock(Mutex::new(Utc::now())));
        let pause = Arc::new(RecordingPause::default());
        let settings = Settings {
            console_url: "http://localhost/admin".into(),
            hash_cost: HashCost::insecure_fast(),
            ..Settings::default()
        };
        let accounts = Accounts::new(
            store.clone(),
            Arc::new(OutboxMailer::new(&outbox)),
            clock.clone(),
        )
        .with_settings(settings)
        .with_pause(pause.clone());
        let state = wire(AdminState::new(accounts));
        let extra = Router::new().route("/api/tenants/{tenant}/probe", get(tenant_probe));
        let app = Router::new().nest("/admin", admin::router_with(state.clone(), extra));
        state
            .accounts()
            .create_operator(OPERATOR, OPERATOR_PASSWORD)
            .await
            .unwrap();
        Self {
            app,
            state,
            store,
            clock,
            pause,
            outbox,
            seen: Mutex::default(),
        }
    }

    pub async fn send(&self, req: Request<Body>) -> Resp {
        let resp = self.app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let body = String::from_utf8(bytes.to_vec()).unwrap();
        let mut record = format!("{status}\n");
        for (name, value) in &headers {
            if name != header::SET_COOKIE {
                record.push_str(&format!("{name}: {}\n", value.to_str().unwrap()));
            }
        }
        record.push_str(&body);
        self.seen.lock().unwrap().push(record);
        Resp {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, path: &str, cookie: Option<&str>) -> Resp {
        let mut req = Request::get(path).header(header::HOST, "localhost");
        if let Some(cookie) = cookie {
            req = req.header(header::COOKIE, cookie);
        }
        self.send(req.body(Body::empty()).unwrap()).await
    }

    pub async fn form(&self, path: &str, cookie: Option<&str>, fields: &[(&str, &str)]) -> Resp {
        let mut req = Request::post(path)
            .header(header::HOST, "localhost")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        if let Some(cookie) = cookie {
            req = req.header(header::COOKIE, cookie);
        }
        let body = serde_urlencoded::to_string(fields).unwrap();
        self.send(req.body(Body::from(body)).unwrap()).await
    }

    pub async fn api(
        &self,
        method: Method,
        path: &str,
        cookie: Option<&str>,
        csrf: Option<&str>,
        body: Option<Value>,
    ) -> Resp {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, "localhost");
        if let Some(cookie) = cookie {
            req = req.header(header::COOKIE, cookie);
        }
        if let Some(csrf) = csrf {
            req = req.header("x-csrf-token", csrf);
        }
        let body = match body {
            Some(body) => {
                req = req.header(header::CONTENT_TYPE, "application/json");
                Body::from(body.to_string())
            }
            None => Body::empty(),
        };
        self.send(req.body(body).unwrap()).await
    }

    /// Signs in through the API: the cookie and the CSRF token.
    pub async fn api_login(&self, email: &str, password: &str) -> (String, String) {
        let resp = self
            .api(
                Method::POST,
                "/admin/api/login",
                None,
                None,
                Some(json!({"email": email, "password": password})),
            )
            .await;
        assert_eq!(resp.status, StatusCode::OK, "{}", resp.body);
        let csrf = resp.json()["csrf_token"].as_str().unwrap().to_owned();
        (resp.session(), csrf)
    }

    pub async fn invite(&self, email: &str, tenant: &str) -> String {
        let (cookie, csrf) = self.api_login(OPERATOR, OPERATOR_PASSWORD).await;
        let resp = self
            .api(
                Method::POST,
                "/admin/api/invitations",
                Some(&cookie),
                Some(&csrf),
                Some(json!({"email": email, "tenant": tenant})),
            )
            .await;
        assert_eq!(resp.status, StatusCode::CREATED, "{}", resp.body);
        self.temp_password_mailed_to(email)
    }

    pub fn mails_to(&self, email: &str) -> Vec<String> {
        let Ok(dir) = std::fs::read_dir(&self.outbox) else {
            return Vec::new();
        };
        let mut names: Vec<PathBuf> = dir.map(|e| e.unwrap().path()).collect();
        names.sort();
        names
            .iter()
            .map(|p| std::fs::read_to_string(p).unwrap())
            .filter(|text| text.starts_with(&format!("To: {email}\n")))
            .collect()
    }

    /// The temporary password of the newest mail to `email`.
    pub fn temp_password_mailed_to(&self, email: &str) -> String {
        let mails = self.mails_to(email);
        let mail = mails.last().expect("a mail in the outbox");
        let marker = "temporary password: ";
        let start = mail.find(marker).expect("a temporary password") + marker.len();
        mail[start..].split_whitespace().next().unwrap().to_owned()
    }

    pub async fn items(&self) -> Vec<String> {
        let mut all = Vec::new();
        for sk in ["PROFILE", "SESSION", "CONFIG", "ONBOARDING"] {
            for item in self.store.scan_sort_key(sk).await.unwrap() {
                all.push(format!("{} {} {}", item.pk, item.sk, item.body));
            }
        }
        all
    }
}

pub fn cookie_has_security_attributes(set_cookie: &str) {
    for attribute in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/admin"] {
        assert!(
            set_cookie.split("; ").any(|a| a == attribute),
            "{attribute} missing in {set_cookie}"
        );
    }
}

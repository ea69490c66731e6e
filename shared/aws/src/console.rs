//! The admin console on AWS: its account operations on the DynamoDB store,
//! the SES mailer and the system clock, and the router the `admin` Lambda
//! serves. The Lambda's `main`, the `create-operator` CLI and the emulator
//! tests all build the console here, so they run the same wiring.

use std::sync::{Arc, OnceLock};

use admin::{Accounts, AdminState, Mail, MailError, Mailer, Settings};
use async_trait::async_trait;
use aws_config::SdkConfig;
use axum::extract::Request;
use axum::http::header::HOST;
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use axum::Router;
use bridge::ports::SystemClock;

use crate::{aws_config, ConfigError, DynamoStore, SesMailer};

/// Where the console is nested in the HTTP API.
pub const BASE_PATH: &str = "/admin";

/// What the console needs from its environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminSettings {
    /// DynamoDB table (`TABLE_NAME`).
    pub table_name: String,
    /// Sender of the console's mail, a verified SES identity (`MAIL_FROM`).
    /// Required by the Lambda; the CLI sends no mail and may leave it out.
    pub mail_from: Option<String>,
    /// The console's public URL written into mails, e.g.
    /// `https://console.example.com/admin` (`CONSOLE_URL`, optional). Unset:
    /// the Lambda takes `https://<host of its first request>/admin`, the
    /// domain API Gateway received the request on.
    pub console_url: Option<String>,
    /// Secrets Manager name prefix of tenants' credentials
    /// (`SECRETS_PREFIX`, as the other functions); without it the console
    /// cannot take credentials and says so on those pages.
    pub secrets_prefix: Option<String>,
}

/// The Lambda's settings: `TABLE_NAME` and `MAIL_FROM` required,
/// `CONSOLE_URL` optional.
pub fn admin_config_from_env() -> Result<AdminSettings, ConfigError> {
    let settings = admin_config_from(|name| std::env::var(name).ok())?;
    if settings.mail_from.is_none() {
        return Err(ConfigError::Missing {
            name: "MAIL_FROM",
            purpose: "the sender address of the console's mail, a verified SES identity",
        });
    }
    Ok(settings)
}

/// The CLI's settings: `TABLE_NAME` required, the rest optional.
pub fn operator_cli_config_from_env() -> Result<AdminSettings, ConfigError> {
    admin_config_from(|name| std::env::var(name).ok())
}

fn admin_config_from(var: impl Fn(&str) -> Option<String>) -> Result<AdminSettings, ConfigError> {
    let value = |name: &str| {
        var(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let table_name = value("TABLE_NAME").ok_or(ConfigError::Missing {
        name: "TABLE_NAME",
        purpose: "the DynamoDB table name",
    })?;
    let mail_from = value("MAIL_FROM");
    if let Some(from) = &mail_from {
        if !from.contains('@') {
            return Err(ConfigError::Invalid {
                name: "MAIL_FROM",
                value: from.clone(),
                expected: "an email address (a verified SES identity)",
            });
        }
    }
    let console_url = match value("CONSOLE_URL") {
        None => None,
        Some(url) if url.starts_with("https://") || url.starts_with("http://") => {
            Some(url.trim_end_matches('/').to_owned())
        }
        Some(url) => {
            return Err(ConfigError::Invalid {
                name: "CONSOLE_URL",
                value: url,
                expected: "an absolute http(s) URL such as https://console.example.com/admin",
            })
        }
    };
    Ok(AdminSettings {
        table_name,
        mail_from,
        console_url,
        secrets_prefix: value("SECRETS_PREFIX"),
    })
}

/// The mailer of a process that must not send mail (the CLI without
/// `MAIL_FROM`): every send fails, and says why.
#[derive(Debug, Clone, Copy)]
struct NoMailFrom;

#[async_trait]
impl Mailer for NoMailFrom {
    async fn send(&self, _mail: Mail) -> Result<(), MailError> {
        Err(MailError {
            message: "MAIL_FROM is not set: this process sends no mail".into(),
            retryable: false,
        })
    }
}

/// The account operations on the table, SES (from `mail_from`) and the
/// system clock, with production's rules and `console_url` in mails.
pub fn admin_accounts(sdk: &SdkConfig, settings: &AdminSettings, console_url: &str) -> Accounts {
    let store = Arc::new(DynamoStore::new(
        aws_sdk_dynamodb::Client::new(sdk),
        &settings.table_name,
    ));
    let mailer: Arc<dyn Mailer> = match &settings.mail_from {
        Some(from) => Arc::new(SesMailer::new(aws_sdk_sesv2::Client::new(sdk), from)),
        None => Arc::new(NoMailFrom),
    };
    Accounts::new(store, mailer, Arc::new(SystemClock)).with_settings(Settings {
        console_url: console_url.to_owned(),
        ..Settings::default()
    })
}

/// The console's router for these accounts, nested at [`BASE_PATH`].
pub fn admin_router(accounts: Accounts) -> Router {
    Router::new().nest(BASE_PATH, admin::router(AdminState::new(accounts)))
}

/// The console with its onboarding ports: live checks over HTTP and tenant
/// credentials in Secrets Manager. "Sync now" and the dead letters are not
/// wired in AWS (the DLQ has its own redrive); those pages say so. Nor is
/// asset sync on request: a run needs the connectors, the shared Autotask
/// budget and more than the console's 30 s; the Assets page shows the last
/// run from the table, its buttons answer "not available in this
/// deployment", and runs come from the schedule (the `reconcile` Lambda
/// with `{"assets": true}`).
pub fn onboarding_router(
    accounts: Accounts,
    sdk: &SdkConfig,
    settings: &AdminSettings,
    console_url: &str,
) -> Router {
    let mut state = AdminState::new(accounts)
        .with_tenant_setup(Arc::new(bridge::connectors::setup::HttpSetup::default()))
        .with_onboarding(admin::OnboardingSettings {
            console_url: console_url.to_owned(),
            ingest_url: console_url
                .strip_suffix(BASE_PATH)
                .unwrap_or(console_url)
                .to_owned(),
            ..admin::OnboardingSettings::default()
        });
    if let Some(prefix) = &settings.secrets_prefix {
        let secrets = Arc::new(crate::SecretsManagerSecrets::new(
            aws_sdk_secretsmanager::Client::new(sdk),
            prefix,
        ));
        state = state.with_secrets(secrets.clone(), secrets);
    }
    Router::new().nest(BASE_PATH, admin::router(state))
}

/// `https://<Host>/admin` when the request names a plausible host.
fn console_url_of(headers: &HeaderMap) -> Option<String> {
    let host = headers.get(HOST)?.to_str().ok()?;
    let plausible = !host.is_empty()
        && host.len() <= 253
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':'));
    plausible.then(|| format!("https://{host}{BASE_PATH}"))
}

/// What the `admin` Lambda serves: the console on DynamoDB and SES. With
/// `console_url` set it is built at once; otherwise on the first request
/// that names its host, and kept for the life of the instance.
pub fn admin_app(sdk: &SdkConfig, settings: &AdminSettings) -> Router {
    if let Some(url) = &settings.console_url {
        return onboarding_router(admin_accounts(sdk, settings, url), sdk, settings, url);
    }
    let (sdk, settings) = (sdk.clone(), settings.clone());
    let built: Arc<OnceLock<Router>> = Arc::new(OnceLock::new());
    Router::new().fallback(move |req: Request| {
        let (sdk, settings, built) = (sdk.clone(), settings.clone(), built.clone());
        async move {
            use tower::ServiceExt;
            let router = match console_url_of(req.headers()) {
                Some(url) => built
                    .get_or_init(|| {
                        let accounts = admin_accounts(&sdk, &settings, &url);
                        onboarding_router(accounts, &sdk, &settings, &url)
                    })
                    .clone(),
                // No usable Host (API Gateway always sends one): serve, but
                // do not let this request fix the URL for later ones.
                None => built.get().cloned().unwrap_or_else(|| {
                    let url = Settings::default().console_url;
                    onboarding_router(admin_accounts(&sdk, &settings, &url), &sdk, &settings, &url)
                }),
            };
            match router.oneshot(req).await {
                Ok(response) => response.into_response(),
                Err(never) => match never {},
            }
        }
    })
}

/// [`admin_app`] from the environment ([`admin_config_from_env`]), SDK
/// config as [`aws_config`] builds it.
pub async fn admin_app_from_env() -> Result<Router, ConfigError> {
    let settings = admin_config_from_env()?;
    Ok(admin_app(&aws_config(None).await, &settings))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use axum::http::HeaderValue;

    use super::*;

    fn config(env: &[(&str, &str)]) -> Result<AdminSettings, ConfigError> {
        let env: HashMap<_, _> = env.iter().copied().collect();
        admin_config_from(|n| env.get(n).map(|v| v.to_string()))
    }

    #[test]
    fn admin_settings_come_from_the_environment() {
        let settings = config(&[
            ("TABLE_NAME", "t"),
            ("MAIL_FROM", " console@example.com "),
            ("CONSOLE_URL", "https://console.example.com/admin/"),
            ("SECRETS_PREFIX", "psa-bridge/prod"),
        ])
        .unwrap();
        assert_eq!(
            settings,
            AdminSettings {
                table_name: "t".into(),
                mail_from: Some("console@example.com".into()),
                console_url: Some("https://console.example.com/admin".into()),
                secrets_prefix: Some("psa-bridge/prod".into()),
            }
        );
        let cli = config(&[("TABLE_NAME", "t"), ("MAIL_FROM", "")]).unwrap();
        assert_eq!(cli.mail_from, None);
        assert_eq!(cli.console_url, None);

        assert_eq!(config(&[]).unwrap_err().name(), "TABLE_NAME");
        for (name, bad) in [
            ("MAIL_FROM", "nobody"),
            ("CONSOLE_URL", "console.example.com"),
        ] {
            let err = config(&[("TABLE_NAME", "t"), (name, bad)]).unwrap_err();
            assert_eq!(err.name(), name);
            assert!(err.to_string().contains(bad), "{err}");
        }
    }

    /// template.yaml's `AdminFunction`: its routes, a timeout the HTTP API
    /// waits for, and exactly the permissions the console's adapters use.
    #[test]
    fn the_template_gives_the_admin_function_its_routes_and_least_privilege() {
        use yaml_rust2::{Yaml, YamlLoader};
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../template.yaml");
        let text = std::fs::read_to_string(path).expect("template.yaml beside the workspace");
        let t = YamlLoader::load_from_str(&text).unwrap().remove(0);
        let function = &t["Resources"]["AdminFunction"];
        let props = &function["Properties"];
        assert_eq!(
            function["Metadata"]["BuildProperties"]["Binary"].as_str(),
            Some("admin")
        );
        assert_eq!(props["CodeUri"].as_str(), Some("functions/admin"));
        // The HTTP API gives up on an integration after 30 s.
        assert!(props["Timeout"].as_i64().is_some_and(|s| s < 30));
        assert!(!props["Environment"]["Variables"]["MAIL_FROM"].is_badvalue());

        let mut routes: Vec<_> = props["Events"]
            .as_hash()
            .unwrap()
            .values()
            .map(|event| {
                assert_eq!(event["Type"].as_str(), Some("HttpApi"));
                let p = &event["Properties"];
                format!(
                    "{} {}",
                    p["Method"].as_str().unwrap(),
                    p["Path"].as_str().unwrap()
                )
            })
            .collect();
        routes.sort();
        assert_eq!(routes, ["ANY /admin", "ANY /admin/{proxy+}"]);

        let statements = props["Policies"]
            .as_vec()
            .unwrap()
            .iter()
            .flat_map(|policy| {
                assert!(
                    !policy["Statement"].is_badvalue(),
                    "only inline statements, no SAM policy templates: {policy:?}"
                );
                policy["Statement"].as_vec().unwrap().clone()
            })
            .collect::<Vec<_>>();
        let actions = |prefix: &str| {
            let mut found: Vec<String> = statements
                .iter()
                .flat_map(|s| match &s["Action"] {
                    Yaml::String(a) => vec![a.clone()],
                    Yaml::Array(list) => list
                        .iter()
                        .map(|a| a.as_str().unwrap().to_owned())
                        .collect(),
                    other => panic!("Action {other:?}"),
                })
                .filter(|a| a.starts_with(prefix))
                .collect();
            found.sort();
            found
        };
        let all = actions("");
        assert!(
            all.iter().all(|a| !a.contains('*')),
            "no wildcard actions: {all:?}"
        );
        // What `DynamoStore` calls: get, put (a conditional UpdateItem),
        // delete, query, and scan_sort_key (listing tenants).
        assert_eq!(
            actions("dynamodb:"),
            [
                "dynamodb:DeleteItem",
                "dynamodb:GetItem",
                "dynamodb:Query",
                "dynamodb:Scan",
                "dynamodb:UpdateItem"
            ]
        );
        assert_eq!(actions("ses:"), ["ses:SendEmail"]);
        assert_eq!(
            all.len(),
            actions("dynamodb:").len() + actions("ses:").len() + actions("secretsmanager:").len(),
            "nothing beyond the table, SES and the tenants' secrets: {all:?}"
        );
        for statement in &statements {
            let resources = match &statement["Resource"] {
                Yaml::Array(list) => list.clone(),
                one => vec![one.clone()],
            };
            for resource in resources {
                let text = match &resource {
                    Yaml::String(s) => s.clone(),
                    other => format!("{other:?}"),
                };
                assert!(text != "*", "no resource wildcard: {statement:?}");
                if text.contains("secretsmanager") {
                    assert!(
                        text.ends_with(":secret:psa-bridge/${Stage}/*"),
                        "secrets only under the stage's prefix: {text}"
                    );
                }
            }
        }
    }

    #[test]
    fn the_console_url_comes_from_a_plausible_host_only() {
        let headers = |host: &str| {
            let mut h = HeaderMap::new();
            h.insert(HOST, HeaderValue::from_str(host).unwrap());
            h
        };
        assert_eq!(
            console_url_of(&headers("abc123.execute-api.eu-west-1.amazonaws.com")).as_deref(),
            Some("https://abc123.execute-api.eu-west-1.amazonaws.com/admin")
        );
        assert_eq!(
            console_url_of(&headers("127.0.0.1:8080")).as_deref(),
            Some("https://127.0.0.1:8080/admin")
        );
        assert_eq!(console_url_of(&headers("evil.example/x?")), None);
        assert_eq!(console_url_of(&headers("")), None);
        assert_eq!(console_url_of(&HeaderMap::new()), None);
    }
}

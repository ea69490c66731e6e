//! The admin console on AWS: its account operations on the DynamoDB store,
//! the SES mailer and the system clock, the running bridge it operates
//! ([`crate::operations`]: "Sync now", the dead-letter queue, asset sync on
//! request), and the router the `admin` Lambda serves. The Lambda's `main`,
//! the `create-operator` CLI and the emulator tests all build the console
//! here, so they run the same wiring.

use std::sync::{Arc, OnceLock};

use admin::{Accounts, AdminState, AssetOperations, Mail, MailError, Mailer, Operations, Settings};
use async_trait::async_trait;
use aws_config::SdkConfig;
use axum::extract::Request;
use axum::http::header::HOST;
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use axum::Router;
use bridge::connectors::budget::AutotaskBudget;
use bridge::connectors::connectwise_default_budget;
use bridge::ports::SystemClock;
use bridge::wiring::Wiring;

use crate::operations::{AwsAssetOperations, AwsOperations};
use crate::{aws_config, ConfigError, DynamoStore, SecretsManagerSecrets, SesMailer, SqsQueue};

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
    /// The SQS FIFO job queue (`QUEUE_URL`, as the other functions): "Sync
    /// now" queues its jobs there and "Replay" sends a dead letter back.
    /// Without it (or without `secrets_prefix`), "Sync now", the dead
    /// letters and the asset buttons say they are not available.
    pub queue_url: Option<String>,
    /// The job queue's dead-letter queue (`DEAD_LETTER_QUEUE_URL`); without
    /// it "Sync now" and the dead letters say they are not available.
    pub dead_letter_queue_url: Option<String>,
    /// Each Autotask tenant's budget, shared with the worker and the sweep
    /// through the table (`AUTOTASK_REQUESTS_PER_HOUR`,
    /// `AUTOTASK_MAX_CONCURRENT`; optional, as for the other functions).
    pub autotask_budget: AutotaskBudget,
    /// Each ConnectWise tenant's budget (`CONNECTWISE_REQUESTS_PER_HOUR`,
    /// `CONNECTWISE_MAX_CONCURRENT`; optional).
    pub connectwise_budget: AutotaskBudget,
}

impl AdminSettings {
    /// Settings with only the table: no mail, console URL from the Host,
    /// and nothing of the running bridge (see the fields to add them).
    pub fn table_only(table_name: impl Into<String>) -> Self {
        Self {
            table_name: table_name.into(),
            mail_from: None,
            console_url: None,
            secrets_prefix: None,
            queue_url: None,
            dead_letter_queue_url: None,
            autotask_budget: AutotaskBudget::default(),
            connectwise_budget: connectwise_default_budget(),
        }
    }
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
    let (autotask_budget, connectwise_budget) = crate::budgets_from(&var)?;
    Ok(AdminSettings {
        table_name,
        mail_from,
        console_url,
        secrets_prefix: value("SECRETS_PREFIX"),
        queue_url: value("QUEUE_URL"),
        dead_letter_queue_url: value("DEAD_LETTER_QUEUE_URL"),
        autotask_budget,
        connectwise_budget,
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

/// What the console reaches beyond its accounts, built once per cold start
/// ([`console_ports`]) and shared by every router built from it: tenants'
/// credentials in Secrets Manager, and the running bridge (the same
/// adapters, connectors and sweeper the other functions build).
#[derive(Clone, Default)]
pub struct ConsolePorts {
    secrets: Option<Arc<SecretsManagerSecrets>>,
    operations: Option<Arc<dyn Operations>>,
    assets: Option<Arc<dyn AssetOperations>>,
}

impl std::fmt::Debug for ConsolePorts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsolePorts")
            .field("secrets", &self.secrets.is_some())
            .field("operations", &self.operations.is_some())
            .field("assets", &self.assets.is_some())
            .finish()
    }
}

impl ConsolePorts {
    /// Whether "Sync now" and the dead letters are wired.
    pub fn has_operations(&self) -> bool {
        self.operations.is_some()
    }

    /// Whether the asset buttons are wired.
    pub fn has_asset_operations(&self) -> bool {
        self.assets.is_some()
    }
}

/// The console's ports from its settings: tenants' secrets with
/// `secrets_prefix`; with `queue_url` too, asset sync on request
/// ([`AwsAssetOperations`]); with `dead_letter_queue_url` as well, "Sync
/// now", the dead letters and replay ([`AwsOperations`]). What a setting
/// is missing for answers "not available in this deployment".
pub fn console_ports(sdk: &SdkConfig, settings: &AdminSettings) -> ConsolePorts {
    let Some(prefix) = &settings.secrets_prefix else {
        return ConsolePorts::default();
    };
    // One secrets adapter for the credential pages and the bridge's runs:
    // credentials saved in the console are what the next run reads.
    let secrets = Arc::new(SecretsManagerSecrets::new(
        aws_sdk_secretsmanager::Client::new(sdk),
        prefix,
    ));
    let Some(queue_url) = &settings.queue_url else {
        return ConsolePorts {
            secrets: Some(secrets),
            ..ConsolePorts::default()
        };
    };
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let wiring = Wiring::with_budgets(
        Arc::new(DynamoStore::new(
            aws_sdk_dynamodb::Client::new(sdk),
            &settings.table_name,
        )),
        Arc::new(SqsQueue::new(sqs.clone(), queue_url)),
        secrets.clone(),
        settings.autotask_budget.clone(),
        settings.connectwise_budget.clone(),
    );
    let operations = settings.dead_letter_queue_url.as_ref().map(|dlq| {
        Arc::new(AwsOperations::new(&wiring, sqs.clone(), queue_url, dlq)) as Arc<dyn Operations>
    });
    ConsolePorts {
        assets: Some(Arc::new(AwsAssetOperations::new(&wiring))),
        operations,
        secrets: Some(secrets),
    }
}

/// The console with its onboarding ports (live checks over HTTP, tenant
/// credentials in Secrets Manager) and the running bridge as `ports` has
/// it: "Sync now" sweeps the tenant inside this function and queues on the
/// job queue; the dead letters are the tenant's messages in the SQS
/// dead-letter queue, "Replay" sends one back to the job queue; the Assets
/// page checks the setup and runs asset sync now through this function's
/// connectors and the tenant's shared PSA budget. A run stops starting
/// writes after [`crate::operations::ASSET_RUN_TIME`] (the HTTP API waits
/// 30 s) and the schedule (the `reconcile` Lambda with `{"assets": true}`)
/// resumes it; nor does a tenant turning active start a run in the
/// background here, as the function may be frozen once it has answered.
pub fn onboarding_router(accounts: Accounts, ports: &ConsolePorts, console_url: &str) -> Router {
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
    if let Some(secrets) = &ports.secrets {
        state = state.with_secrets(secrets.clone(), secrets.clone());
    }
    if let Some(operations) = &ports.operations {
        state = state.with_operations(operations.clone());
    }
    if let Some(assets) = &ports.assets {
        state = state.with_asset_operations_on_request(assets.clone());
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

/// What the `admin` Lambda serves: the console on DynamoDB and SES, and
/// the running bridge ([`console_ports`], built here once). With
/// `console_url` set it is built at once; otherwise on the first request
/// that names its host, and kept for the life of the instance.
pub fn admin_app(sdk: &SdkConfig, settings: &AdminSettings) -> Router {
    let ports = console_ports(sdk, settings);
    if let Some(url) = &settings.console_url {
        return onboarding_router(admin_accounts(sdk, settings, url), &ports, url);
    }
    let (sdk, settings) = (sdk.clone(), settings.clone());
    let built: Arc<OnceLock<Router>> = Arc::new(OnceLock::new());
    Router::new().fallback(move |req: Request| {
        let (sdk, settings, ports, built) =
            (sdk.clone(), settings.clone(), ports.clone(), built.clone());
        async move {
            use tower::ServiceExt;
            let router = match console_url_of(req.headers()) {
                Some(url) => built
                    .get_or_init(|| {
                        let accounts = admin_accounts(&sdk, &settings, &url);
                        onboarding_router(accounts, &ports, &url)
                    })
                    .clone(),
                // No usable Host (API Gateway always sends one): serve, but
                // do not let this request fix the URL for later ones.
                None => built.get().cloned().unwrap_or_else(|| {
                    let url = Settings::default().console_url;
                    onboarding_router(admin_accounts(&sdk, &settings, &url), &ports, &url)
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
            ("QUEUE_URL", "https://sqs.example/jobs.fifo"),
            ("DEAD_LETTER_QUEUE_URL", "https://sqs.example/jobs-dlq.fifo"),
            ("AUTOTASK_MAX_CONCURRENT", "2"),
        ])
        .unwrap();
        assert_eq!(
            settings,
            AdminSettings {
                table_name: "t".into(),
                mail_from: Some("console@example.com".into()),
                console_url: Some("https://console.example.com/admin".into()),
                secrets_prefix: Some("psa-bridge/prod".into()),
                queue_url: Some("https://sqs.example/jobs.fifo".into()),
                dead_letter_queue_url: Some("https://sqs.example/jobs-dlq.fifo".into()),
                autotask_budget: AutotaskBudget::with_limits(9_000, 2).unwrap(),
                connectwise_budget: connectwise_default_budget(),
            }
        );
        let cli = config(&[("TABLE_NAME", "t"), ("MAIL_FROM", "")]).unwrap();
        assert_eq!(cli, AdminSettings::table_only("t"));

        assert_eq!(config(&[]).unwrap_err().name(), "TABLE_NAME");
        for (name, bad) in [
            ("MAIL_FROM", "nobody"),
            ("CONSOLE_URL", "console.example.com"),
            ("AUTOTASK_REQUESTS_PER_HOUR", "9k"),
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
        let env = &props["Environment"]["Variables"];
        assert!(!env["MAIL_FROM"].is_badvalue());
        // The job queue's URL comes from the globals, as for every function.
        assert_eq!(
            t["Globals"]["Function"]["Environment"]["Variables"]["QUEUE_URL"].as_str(),
            Some("JobQueue")
        );
        assert_eq!(
            env["DEAD_LETTER_QUEUE_URL"].as_str(),
            Some("JobDeadLetterQueue")
        );
        for (name, parameter) in [
            ("AUTOTASK_REQUESTS_PER_HOUR", "AutotaskRequestsPerHour"),
            ("AUTOTASK_MAX_CONCURRENT", "AutotaskMaxConcurrent"),
            (
                "CONNECTWISE_REQUESTS_PER_HOUR",
                "ConnectWiseRequestsPerHour",
            ),
            ("CONNECTWISE_MAX_CONCURRENT", "ConnectWiseMaxConcurrent"),
        ] {
            assert_eq!(
                env[name].as_str(),
                Some(parameter),
                "the console's runs share the budget the worker and sweep use"
            );
        }

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
        let listed = |value: &Yaml| -> Vec<String> {
            match value {
                Yaml::String(one) => vec![one.clone()],
                Yaml::Array(list) => list
                    .iter()
                    .map(|v| match v {
                        Yaml::String(s) => s.clone(),
                        other => format!("{other:?}"),
                    })
                    .collect(),
                other => vec![format!("{other:?}")],
            }
        };
        // Every (action, resource) the function is granted.
        let grants: Vec<(String, String)> = statements
            .iter()
            .flat_map(|s| {
                assert_eq!(s["Effect"].as_str(), Some("Allow"), "{s:?}");
                let resources = listed(&s["Resource"]);
                listed(&s["Action"])
                    .into_iter()
                    .flat_map(move |a| resources.clone().into_iter().map(move |r| (a.clone(), r)))
            })
            .collect();
        let actions = |prefix: &str| {
            let mut found: Vec<String> = grants
                .iter()
                .map(|(a, _)| a.clone())
                .filter(|a| a.starts_with(prefix))
                .collect();
            found.sort();
            found.dedup();
            found
        };
        let all = actions("");
        assert!(
            all.iter().all(|a| !a.contains('*')),
            "no wildcard actions: {all:?}"
        );
        // What `DynamoStore` calls: get, put (a conditional UpdateItem),
        // delete, query, and scan_sort_key (listing tenants). The sweep and
        // asset runs of the console use the same store.
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
        // Credentials written by the console, read by its sweeps and runs.
        assert_eq!(
            actions("secretsmanager:"),
            [
                "secretsmanager:CreateSecret",
                "secretsmanager:DescribeSecret",
                "secretsmanager:GetSecretValue",
                "secretsmanager:PutSecretValue"
            ]
        );
        // The job queue only to send to; the dead-letter queue only to read
        // (holding what a scan received, then showing it again) and to
        // delete a replayed job.
        let mut sqs: Vec<(String, String)> = grants
            .iter()
            .filter(|(a, _)| a.starts_with("sqs:"))
            .cloned()
            .collect();
        sqs.sort();
        sqs.dedup();
        let grant = |a: &str, r: &str| (a.to_owned(), r.to_owned());
        assert_eq!(
            sqs,
            [
                grant("sqs:ChangeMessageVisibility", "JobDeadLetterQueue.Arn"),
                grant("sqs:DeleteMessage", "JobDeadLetterQueue.Arn"),
                grant("sqs:ReceiveMessage", "JobDeadLetterQueue.Arn"),
                grant("sqs:SendMessage", "JobQueue.Arn"),
            ]
        );
        assert_eq!(
            all.len(),
            actions("dynamodb:").len()
                + actions("ses:").len()
                + actions("secretsmanager:").len()
                + actions("sqs:").len(),
            "nothing beyond the table, SES, the tenants' secrets and the queues: {all:?}"
        );
        for (action, resource) in &grants {
            assert!(resource != "*", "no resource wildcard: {action}");
            if action.starts_with("dynamodb:") {
                assert_eq!(resource, "Table.Arn", "{action}: the table only");
            }
            if action.starts_with("secretsmanager:") {
                assert!(
                    resource.ends_with(":secret:psa-bridge/${Stage}/*"),
                    "secrets only under the stage's prefix: {resource}"
                );
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

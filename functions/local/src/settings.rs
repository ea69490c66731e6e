//! The local process's configuration file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use bridge::config::TenantConfig;
use bridge::connectors::budget::{AutotaskBudget, BudgetLimit};
use serde::Deserialize;

/// `psa-bridge run --config bridge.toml`. See `infra/sample-config/`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Where the HTTP functions listen.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Folder of the embedded store and queue (SQLite files).
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// Credentials file (`[tenants.<id>]` tables); relative to the config file.
    pub secrets_file: PathBuf,
    /// Jobs processed at once.
    #[serde(default = "default_concurrency")]
    pub worker_concurrency: usize,
    /// Seconds between reconciliation sweeps (0: no timer; `psa-bridge sweep`
    /// still runs one).
    #[serde(default = "default_sweep_interval")]
    pub sweep_interval_secs: u64,
    /// Each tenant's Autotask request budget per hour (Autotask allows about
    /// 10,000 per database, shared with its other integrations).
    #[serde(default = "default_autotask_requests_per_hour")]
    pub autotask_requests_per_hour: u64,
    /// Autotask calls in flight at once per tenant.
    #[serde(default = "default_autotask_max_concurrent")]
    pub autotask_max_concurrent: u64,
    /// Each ConnectWise tenant's request budget per hour (ConnectWise
    /// publishes none; the default is half of the reported 1,000 a minute).
    #[serde(default = "default_connectwise_requests_per_hour")]
    pub connectwise_requests_per_hour: u64,
    /// ConnectWise calls in flight at once per tenant.
    #[serde(default = "default_connectwise_max_concurrent")]
    pub connectwise_max_concurrent: u64,
    /// Tenants written to the store at start-up.
    #[serde(default)]
    pub tenants: Vec<TenantConfig>,
    /// Folder of the mails the admin console sends (invitations, temporary
    /// passwords); default `<data_dir>/outbox`.
    #[serde(default)]
    pub console_outbox: Option<PathBuf>,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}
fn default_data_dir() -> PathBuf {
    PathBuf::from(".data")
}
fn default_concurrency() -> usize {
    16
}
fn default_sweep_interval() -> u64 {
    300
}
fn default_autotask_requests_per_hour() -> u64 {
    AutotaskBudget::default().requests_per_hour.into()
}
fn default_autotask_max_concurrent() -> u64 {
    AutotaskBudget::default().max_concurrent as u64
}

fn default_connectwise_requests_per_hour() -> u64 {
    bridge::connectors::connectwise_default_budget()
        .requests_per_hour
        .into()
}
fn default_connectwise_max_concurrent() -> u64 {
    bridge::connectors::connectwise_default_budget().max_concurrent as u64
}

impl Settings {
    /// The per-tenant Autotask budget these settings ask for; checked valid
    /// by [`Settings::load`].
    /// Where the admin console's mails go.
    pub fn console_options(&self) -> crate::console::ConsoleOptions {
        crate::console::ConsoleOptions::outbox_only(
            self.console_outbox
                .clone()
                .unwrap_or_else(|| self.data_dir.join("outbox")),
        )
    }

    pub fn autotask_budget(&self) -> AutotaskBudget {
        AutotaskBudget::with_limits(
            self.autotask_requests_per_hour,
            self.autotask_max_concurrent,
        )
        .expect("checked when loaded")
    }

    /// The per-tenant ConnectWise budget; checked valid by [`Settings::load`].
    pub fn connectwise_budget(&self) -> AutotaskBudget {
        AutotaskBudget::with_limits(
            self.connectwise_requests_per_hour,
            self.connectwise_max_concurrent,
        )
        .expect("checked when loaded")
    }
}

impl Settings {
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let mut settings: Settings =
            toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        // The same check as the Lambda environment's: zero is refused, not
        // quietly turned into one.
        for (rate_key, rate, concurrency_key, concurrency) in [
            (
                "autotask_requests_per_hour",
                settings.autotask_requests_per_hour,
                "autotask_max_concurrent",
                settings.autotask_max_concurrent,
            ),
            (
                "connectwise_requests_per_hour",
                settings.connectwise_requests_per_hour,
                "connectwise_max_concurrent",
                settings.connectwise_max_concurrent,
            ),
        ] {
            if let Err(limit) = AutotaskBudget::with_limits(rate, concurrency) {
                let (key, value) = match limit {
                    BudgetLimit::RequestsPerHour => (rate_key, rate),
                    BudgetLimit::MaxConcurrent => (concurrency_key, concurrency),
                };
                return Err(format!(
                    "{}: {key} is {value}: it must be a whole number above 0",
                    path.display()
                ));
            }
        }
        let base = path.parent().unwrap_or(Path::new("."));
        if settings.secrets_file.is_relative() {
            settings.secrets_file = base.join(&settings.secrets_file);
        }
        if settings.data_dir.is_relative() {
            settings.data_dir = base.join(&settings.data_dir);
        }
        if let Some(outbox) = settings.console_outbox.as_mut().filter(|o| o.is_relative()) {
            *outbox = base.join(&*outbox);
        }
        Ok(settings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bridge::adapters::embedded::FileSecrets;
    use bridge::model::TenantId;
    use bridge::ports::Secrets;

    fn sample(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../infra/sample-config")
            .join(name)
    }

    #[tokio::test]
    async fn the_documented_sample_configuration_loads() {
        let settings = Settings::load(&sample("bridge.toml")).unwrap();
        assert_eq!(settings.tenants.len(), 1);
        let acme = &settings.tenants[0];
        assert_eq!(acme.id.as_str(), "acme");
        assert_eq!(acme.mappings.priority["urgent"], "Critical");
        assert_eq!(acme.autotask.default_company_id, None);
        assert_eq!(
            acme.mappings.status_to_desk["Waiting Customer"],
            bridge::config::DeskStatus::Pending
        );
        assert_eq!(acme.fields, bridge::config::FieldRules::default());
        assert!(settings.secrets_file.ends_with("secrets.example.toml"));
        let secrets = FileSecrets::load(&settings.secrets_file).unwrap();
        let acme_secrets = secrets
            .tenant_secrets(&TenantId::parse("acme").unwrap())
            .await
            .unwrap();
        assert_eq!(acme_secrets.autotask_username, "api-user@acme.example");
    }

    #[test]
    fn unknown_keys_are_refused_with_the_file_name() {
        let dir = std::env::temp_dir().join(format!("psa-bridge-settings-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bad.toml");
        std::fs::write(&path, "secrets_file = \"s.toml\"\nlisten_port = 1\n").unwrap();
        let err = Settings::load(&path).unwrap_err();
        assert!(
            err.contains("bad.toml") && err.contains("listen_port"),
            "{err}"
        );
    }

    #[test]
    fn an_unknown_key_inside_a_tenant_is_refused_with_its_name() {
        let dir = std::env::temp_dir().join(format!("psa-bridge-tenant-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("typo.toml");
        std::fs::write(
            &path,
            "secrets_file = \"s.toml\"\n\n[[tenants]]\nid = \"acme\"\n\
             [tenants.zendesk]\nbase_url = \"https://acme.zendesk.com\"\n\
             [tenants.autotask]\nzone_lookup_url = \"https://webservices.autotask.net\"\n\
             [tenants.mappings]\nstatus_table = {}\n",
        )
        .unwrap();
        let err = Settings::load(&path).unwrap_err();
        assert!(err.contains("status_table"), "{err}");
    }

    #[test]
    fn a_direction_a_field_cannot_take_is_refused_with_the_field_name() {
        let dir = std::env::temp_dir().join(format!("psa-bridge-fields-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("fields.toml");
        std::fs::write(
            &path,
            "secrets_file = \"s.toml\"\n\n[[tenants]]\nid = \"acme\"\n\
             [tenants.zendesk]\nbase_url = \"https://acme.zendesk.com\"\n\
             [tenants.autotask]\nzone_lookup_url = \"https://webservices.autotask.net\"\n\
             [tenants.fields]\ndescription = \"both\"\n",
        )
        .unwrap();
        let err = Settings::load(&path).unwrap_err();
        assert!(
            err.contains("description") && err.contains("unknown variant `both`"),
            "{err}"
        );
    }

    #[test]
    fn a_zero_budget_is_refused_with_its_key_as_in_aws() {
        let dir = std::env::temp_dir().join(format!("psa-bridge-budget-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (key, line) in [
            ("autotask_max_concurrent", "autotask_max_concurrent = 0"),
            (
                "autotask_requests_per_hour",
                "autotask_requests_per_hour = 0",
            ),
            ("autotask_max_concurrent", "autotask_max_concurrent = -2"),
        ] {
            let path = dir.join("budget.toml");
            std::fs::write(&path, format!("secrets_file = \"s.toml\"\n{line}\n")).unwrap();
            let err = Settings::load(&path).unwrap_err();
            assert!(err.contains(key), "{line}: {err}");
        }
    }
}

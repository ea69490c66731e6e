//! Per-tenant settings (stored under `TENANT#t / CONFIG`) and credentials (kept
//! apart, in the secrets port, never in the store or a log line).

use std::collections::BTreeMap;
use std::fmt;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::model::TenantId;

/// Which way a field flows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    ToPsa,
    ToDesk,
    Both,
    Off,
}

impl Direction {
    pub fn to_psa(self) -> bool {
        matches!(self, Direction::ToPsa | Direction::Both)
    }
    pub fn to_desk(self) -> bool {
        matches!(self, Direction::ToDesk | Direction::Both)
    }
}

/// Field rules; the defaults are DESIGN.md's table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[serde(default)]
pub struct FieldRules {
    pub subject: Direction,
    pub description: Direction,
    pub comments: Direction,
    pub priority: Direction,
    pub status: Direction,
    pub company: Direction,
}

impl Default for FieldRules {
    fn default() -> Self {
        Self {
            subject: Direction::ToPsa,
            description: Direction::ToPsa,
            comments: Direction::Both,
            priority: Direction::ToPsa,
            status: Direction::ToPsa,
            company: Direction::ToPsa,
        }
    }
}

/// Zendesk side of a tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZendeskSettings {
    /// `https://<subdomain>.zendesk.com`, or a sandbox on loopback.
    pub base_url: String,
    /// Id of the ticket custom field that holds the "cluster id".
    #[serde(default)]
    pub cluster_id_field: Option<u64>,
}

/// Autotask side of a tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AutotaskSettings {
    /// Where zone discovery (`zoneInformation?user=`) is asked; the answer
    /// names the tenant's REST base URL.
    pub zone_lookup_url: String,
    /// Queue new tickets are created in.
    #[serde(default)]
    pub queue_id: Option<i64>,
    /// Company used when the cluster id matches no configuration item.
    #[serde(default)]
    pub default_company_id: Option<i64>,
}

/// Mapping tables. Keys are Zendesk values; values are Autotask picklist labels
/// (or numeric picklist values), resolved through picklist discovery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mappings {
    #[serde(default)]
    pub priority: BTreeMap<String, String>,
    #[serde(default)]
    pub status: BTreeMap<String, String>,
    /// Status an Autotask ticket is created with ("first sync creates as New").
    #[serde(default = "default_initial_status")]
    pub initial_status: String,
    /// Priority used when a Zendesk ticket has none.
    #[serde(default = "default_priority_for_none")]
    pub priority_when_unset: String,
}

fn default_initial_status() -> String {
    "New".to_owned()
}

fn default_priority_for_none() -> String {
    "normal".to_owned()
}

impl Default for Mappings {
    fn default() -> Self {
        let pairs = |p: &[(&str, &str)]| {
            p.iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        Self {
            priority: pairs(&[
                ("urgent", "Critical"),
                ("high", "High"),
                ("normal", "Medium"),
                ("low", "Low"),
            ]),
            status: pairs(&[
                ("new", "New"),
                ("open", "In Progress"),
                ("pending", "Waiting Customer"),
                ("hold", "Waiting Vendor"),
                ("solved", "Complete"),
                ("closed", "Complete"),
            ]),
            initial_status: default_initial_status(),
            priority_when_unset: default_priority_for_none(),
        }
    }
}

/// Everything about a tenant except its credentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantConfig {
    pub id: TenantId,
    #[serde(default = "yes")]
    pub active: bool,
    pub zendesk: ZendeskSettings,
    pub autotask: AutotaskSettings,
    #[serde(default)]
    pub mappings: Mappings,
    #[serde(default)]
    pub fields: FieldRules,
}

fn yes() -> bool {
    true
}

/// A credential. It cannot be serialized, and its `Debug` and `Display`
/// never show the value, so it cannot leak through a log line, an error
/// message, a stored item or an API response by accident; the value is
/// zeroed when dropped (`secrecy`).
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct Secret(SecretString);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(SecretString::from(value.into()))
    }
    /// The only way to read the value; grep for it to audit every use.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
    pub fn is_empty(&self) -> bool {
        self.expose().is_empty()
    }
}

impl Default for Secret {
    fn default() -> Self {
        Self::new("")
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        self.expose() == other.expose()
    }
}

impl Eq for Secret {}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// One tenant's credentials, as kept in the secrets port. Read-only to the
/// bridge: it is deserialized from the secrets store, never serialized.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantSecrets {
    /// Zendesk agent e-mail for API token auth (`{email}/token:{token}`).
    pub zendesk_email: String,
    pub zendesk_api_token: Secret,
    /// Signing secret of the Zendesk webhook that calls this tenant's URL.
    pub zendesk_webhook_secret: Secret,
    /// Autotask API user (`UserName` header).
    pub autotask_username: String,
    pub autotask_secret: Secret,
    pub autotask_integration_code: Secret,
    /// Basic-auth credentials the tenant's Autotask extension callout sends.
    #[serde(default)]
    pub autotask_callout_username: String,
    #[serde(default)]
    pub autotask_callout_password: Secret,
    /// Secret key of the tenant's Autotask REST webhook (`X-Hook-Signature`).
    #[serde(default)]
    pub autotask_webhook_secret: Secret,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_tenant_config_with_an_unknown_key_is_refused_with_its_name() {
        let stored = serde_json::json!({
            "id": "acme",
            "zendesk": {"base_url": "https://acme.zendesk.com"},
            "autotask": {"zone_lookup_url": "https://webservices.autotask.net", "queue": 5},
        });
        let err = serde_json::from_value::<TenantConfig>(stored).unwrap_err();
        assert!(err.to_string().contains("`queue`"), "{err}");
    }

    #[test]
    fn a_secret_never_shows_its_value() {
        let secret = Secret::new("hunter2");
        assert_eq!(format!("{secret} {secret:?}"), "*** Secret(***)");
        assert_eq!(secret.expose(), "hunter2");
    }
}

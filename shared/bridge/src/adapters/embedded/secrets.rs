//! Per-tenant credentials from a local TOML file.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use async_trait::async_trait;

use crate::config::TenantSecrets;
use crate::error::SecretsError;
use crate::model::TenantId;
use crate::ports::Secrets;

/// Credentials of the local process, read once from a file like
///
/// ```toml
/// [tenants.acme]
/// zendesk_email = "bridge@acme.example"
/// zendesk_api_token = "..."
/// zendesk_webhook_secret = "..."
/// autotask_username = "api@acme.example"
/// autotask_secret = "..."
/// autotask_integration_code = "..."
/// ```
///
/// (the fields of `TenantSecrets`). Its `Debug` lists tenant ids only.
pub struct FileSecrets {
    tenants: HashMap<TenantId, TenantSecrets>,
}

impl fmt::Debug for FileSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ids: Vec<&str> = self.tenants.keys().map(TenantId::as_str).collect();
        ids.sort_unstable();
        f.debug_struct("FileSecrets")
            .field("tenants", &ids)
            .finish()
    }
}

/// serde's "invalid type/value" messages quote the offending value, which
/// may be a secret; only messages that name a field are passed on.
fn safe_reason(e: &toml::de::Error) -> String {
    let message = e.message();
    if ["missing field", "unknown field", "duplicate field"]
        .iter()
        .any(|p| message.starts_with(p))
    {
        message.to_owned()
    } else {
        "a field has the wrong type (every field is a string)".to_owned()
    }
}

impl FileSecrets {
    /// Reads `[tenants.<id>]` tables. Errors name the file, the tenant and
    /// the line or field at fault, never a value.
    pub fn load(path: &Path) -> Result<Self, SecretsError> {
        let shown = path.display();
        let text = std::fs::read_to_string(path)
            .map_err(|e| SecretsError::Unavailable(format!("cannot read {shown}: {e}")))?;
        #[cfg(unix)]
        if let Ok(meta) = std::fs::metadata(path) {
            use std::os::unix::fs::PermissionsExt;
            if meta.permissions().mode() & 0o077 != 0 {
                tracing::warn!(path = %shown, "secrets file is readable by other users; chmod 600 it");
            }
        }
        let table: toml::Table = toml::from_str(&text).map_err(|e| {
            let line = e
                .span()
                .map_or(0, |span| text[..span.start].matches('\n').count() + 1);
            SecretsError::Malformed {
                tenant: "*".to_owned(),
                message: format!("{shown} is not valid TOML (line {line})"),
            }
        })?;
        let mut tenants = HashMap::new();
        let Some(section) = table.get("tenants") else {
            return Ok(Self { tenants });
        };
        let section = section.as_table().ok_or_else(|| SecretsError::Malformed {
            tenant: "*".to_owned(),
            message: format!("`tenants` in {shown} must be a table of [tenants.<id>] tables"),
        })?;
        for (id, value) in section {
            let malformed = |message: String| SecretsError::Malformed {
                tenant: id.clone(),
                message,
            };
            let tenant = TenantId::parse(id).ok_or_else(|| {
                malformed(format!(
                    "not a valid tenant id in {shown} (lowercase letters, digits, - and _)"
                ))
            })?;
            let secrets: TenantSecrets = value
                .clone()
                .try_into()
                .map_err(|e| malformed(format!("{shown}: {}", safe_reason(&e))))?;
            tenants.insert(tenant, secrets);
        }
        tracing::info!(path = %shown, tenants = tenants.len(), "tenant credentials loaded");
        Ok(Self { tenants })
    }

    pub fn from_map(tenants: HashMap<TenantId, TenantSecrets>) -> Self {
        Self { tenants }
    }
}

#[async_trait]
impl Secrets for FileSecrets {
    async fn tenant_secrets(&self, tenant: &TenantId) -> Result<TenantSecrets, SecretsError> {
        self.tenants
            .get(tenant)
            .cloned()
            .ok_or_else(|| SecretsError::Missing(tenant.to_string()))
    }
}

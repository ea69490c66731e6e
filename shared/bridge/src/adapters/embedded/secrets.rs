//! Per-tenant credentials from a local TOML file: [`FileSecrets`] reads it
//! once; [`SecretsFile`] also writes it, for the admin console.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use async_trait::async_trait;

use crate::config::TenantSecrets;
use crate::error::SecretsError;
use crate::model::TenantId;
use crate::ports::Secrets;
use crate::setup::SecretsWriter;

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
        let tenants = parse_tenants(path, &text)?;
        tracing::info!(path = %shown, tenants = tenants.len(), "tenant credentials loaded");
        Ok(Self { tenants })
    }

    pub fn from_map(tenants: HashMap<TenantId, TenantSecrets>) -> Self {
        Self { tenants }
    }
}

/// The `[tenants.<id>]` tables of a secrets file's `text`.
fn parse_tenants(
    path: &Path,
    text: &str,
) -> Result<HashMap<TenantId, TenantSecrets>, SecretsError> {
    let shown = path.display();
    #[cfg(unix)]
    if let Ok(meta) = std::fs::metadata(path) {
        use std::os::unix::fs::PermissionsExt;
        if meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(path = %shown, "secrets file is readable by other users; chmod 600 it");
        }
    }
    let table: toml::Table = toml::from_str(text).map_err(|e| {
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
        return Ok(tenants);
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
    Ok(tenants)
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

/// The local secrets file, read and written: the admin console keeps the
/// credentials it is given here. Every write replaces the whole file
/// atomically (a private temporary file in the same directory, renamed over
/// it), readable by its owner only (0600). Writes re-read the file first, so
/// tenants written by another process are kept. Its `Debug` lists tenant ids
/// only, and nothing here logs a value.
pub struct SecretsFile {
    path: PathBuf,
    tenants: RwLock<HashMap<TenantId, TenantSecrets>>,
    /// One read-modify-write at a time in this process.
    writing: tokio::sync::Mutex<()>,
}

impl fmt::Debug for SecretsFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tenants = self.tenants.read().unwrap_or_else(|p| p.into_inner());
        let mut ids: Vec<&str> = tenants.keys().map(TenantId::as_str).collect();
        ids.sort_unstable();
        f.debug_struct("SecretsFile")
            .field("path", &self.path)
            .field("tenants", &ids)
            .finish()
    }
}

impl SecretsFile {
    /// Opens `path`, reading it if it exists; a missing file is an empty one
    /// (the first write creates it).
    pub fn open(path: impl Into<PathBuf>) -> Result<Self, SecretsError> {
        let path = path.into();
        let tenants = read_if_present(&path)?;
        tracing::info!(path = %path.display(), tenants = tenants.len(), "secrets file opened");
        Ok(Self {
            path,
            tenants: RwLock::new(tenants),
            writing: tokio::sync::Mutex::new(()),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn read_if_present(path: &Path) -> Result<HashMap<TenantId, TenantSecrets>, SecretsError> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse_tenants(path, &text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(HashMap::new()),
        Err(e) => Err(SecretsError::Unavailable(format!(
            "cannot read {}: {e}",
            path.display()
        ))),
    }
}

/// The file's text: `[tenants.<id>]` tables in id order.
fn render(tenants: &HashMap<TenantId, TenantSecrets>) -> Result<String, SecretsError> {
    let tables: BTreeMap<&str, BTreeMap<&'static str, String>> = tenants
        .iter()
        .map(|(id, secrets)| (id.as_str(), secrets.to_document()))
        .collect();
    let document = BTreeMap::from([("tenants", tables)]);
    let body = toml::to_string(&document)
        .map_err(|_| SecretsError::Unavailable("cannot render the secrets file".to_owned()))?;
    Ok(format!(
        "# psa-bridge tenant credentials. Written by the admin console; keep it private (0600).\n\n{body}"
    ))
}

/// Writes `text` to a new 0600 file beside `path` and renames it over
/// `path`, so a reader sees the old file or the new one, never a part.
fn replace_file(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "secrets.toml".to_owned());
    let temp = dir.join(format!(
        ".{name}.{}.{}.tmp",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    ));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let written = (|| {
        let mut file = options.open(&temp)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&temp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    written?;
    // The rename is durable once the directory is; best effort where the
    // platform cannot open a directory.
    if let Ok(dir) = std::fs::File::open(&dir) {
        let _ = dir.sync_all();
    }
    Ok(())
}

#[async_trait]
impl Secrets for SecretsFile {
    async fn tenant_secrets(&self, tenant: &TenantId) -> Result<TenantSecrets, SecretsError> {
        self.tenants
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(tenant)
            .cloned()
            .ok_or_else(|| SecretsError::Missing(tenant.to_string()))
    }
}

#[async_trait]
impl SecretsWriter for SecretsFile {
    #[tracing::instrument(name = "secrets_file.put", skip_all, fields(tenant = %tenant))]
    async fn put_tenant_secrets(
        &self,
        tenant: &TenantId,
        secrets: &TenantSecrets,
    ) -> Result<(), SecretsError> {
        let _writing = self.writing.lock().await;
        let path = self.path.clone();
        let tenant_id = tenant.clone();
        let secrets = secrets.clone();
        let tenants = tokio::task::spawn_blocking(move || {
            let mut tenants = read_if_present(&path)?;
            tenants.insert(tenant_id, secrets);
            let text = render(&tenants)?;
            replace_file(&path, &text).map_err(|e| {
                SecretsError::Unavailable(format!("cannot write {}: {e}", path.display()))
            })?;
            Ok::<_, SecretsError>(tenants)
        })
        .await
        .map_err(|_| SecretsError::Unavailable("the secrets file writer stopped".to_owned()))??;
        *self.tenants.write().unwrap_or_else(|p| p.into_inner()) = tenants;
        tracing::info!(path = %self.path.display(), "tenant credentials written");
        Ok(())
    }
}

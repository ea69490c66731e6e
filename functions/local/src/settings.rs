//! The local process's configuration file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use bridge::config::TenantConfig;
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
    /// Tenants written to the store at start-up.
    #[serde(default)]
    pub tenants: Vec<TenantConfig>,
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

impl Settings {
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let mut settings: Settings =
            toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        if settings.secrets_file.is_relative() {
            settings.secrets_file = base.join(&settings.secrets_file);
        }
        if settings.data_dir.is_relative() {
            settings.data_dir = base.join(&settings.data_dir);
        }
        Ok(settings)
    }
}

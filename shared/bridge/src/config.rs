//! Per-tenant settings (stored under `TENANT#t / CONFIG`) and credentials (kept
//! apart, in the secrets port, never in the store or a log line).

use std::collections::BTreeMap;
use std::fmt;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::model::{PsaSystem, TenantId};

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

/// Direction of a field that only the desk side can be the source of: the
/// Zendesk description is the ticket's first comment and cannot be edited,
/// and the cluster id cannot be derived from a PSA company. Accepting
/// `to_desk` for them would promise a sync that cannot happen, so the config
/// refuses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FromDeskOnly {
    ToPsa,
    Off,
}

impl FromDeskOnly {
    pub fn to_psa(self) -> bool {
        self == FromDeskOnly::ToPsa
    }
}

/// Field rules; the defaults are DESIGN.md's table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[serde(default)]
pub struct FieldRules {
    pub subject: Direction,
    /// Sent when the PSA ticket is created (or not, with `off`).
    pub description: FromDeskOnly,
    pub comments: Direction,
    pub priority: Direction,
    pub status: Direction,
    /// The PSA company, resolved from the cluster id (at create and on change).
    pub company: FromDeskOnly,
    /// When set, PSA → desk field changes (subject, status, priority) are
    /// taken only from PSA tickets in this queue (an Autotask queue id, such
    /// as a "NOC" queue); tickets elsewhere keep their Zendesk values. Notes
    /// follow the `comments` rule in every queue.
    pub to_desk_only_in_queue: Option<i64>,
}

impl FieldRules {
    /// Whether any field is taken from the PSA; only then does a run read the
    /// PSA ticket (one more API call).
    pub fn any_field_to_desk(&self) -> bool {
        self.subject.to_desk() || self.status.to_desk() || self.priority.to_desk()
    }
}

impl Default for FieldRules {
    fn default() -> Self {
        Self {
            subject: Direction::ToPsa,
            description: FromDeskOnly::ToPsa,
            comments: Direction::Both,
            priority: Direction::ToPsa,
            status: Direction::ToPsa,
            company: FromDeskOnly::ToPsa,
            to_desk_only_in_queue: None,
        }
    }
}

/// A Zendesk status the bridge may set. `new` is left out: a Zendesk ticket
/// leaves "new" at its first change and cannot be put back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeskStatus {
    Open,
    Pending,
    Hold,
    Solved,
    Closed,
}

impl DeskStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeskStatus::Open => "open",
            DeskStatus::Pending => "pending",
            DeskStatus::Hold => "hold",
            DeskStatus::Solved => "solved",
            DeskStatus::Closed => "closed",
        }
    }
}

/// A Zendesk priority.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeskPriority {
    Urgent,
    High,
    Normal,
    Low,
}

impl DeskPriority {
    pub fn as_str(self) -> &'static str {
        match self {
            DeskPriority::Urgent => "urgent",
            DeskPriority::High => "high",
            DeskPriority::Normal => "normal",
            DeskPriority::Low => "low",
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
    /// Zendesk organization id → Autotask company id (the admin console's
    /// company associations): a ticket whose cluster id matches no
    /// configuration item goes to its organization's company before the
    /// default company.
    #[serde(default)]
    pub companies_by_organization: BTreeMap<u64, i64>,
    /// Values of the TicketNotes `publish` picklist (labels, or numbers) whose
    /// notes customers may see: only these become public Zendesk comments,
    /// and public comments are written with the first. Anything else,
    /// unknown values included, stays internal.
    #[serde(default = "default_public_note_publish")]
    pub public_note_publish: Vec<FieldValue>,
    /// The `publish` value (label, or number) internal comments are written
    /// with; looked up in the live picklist.
    #[serde(default = "default_internal_note_publish")]
    pub internal_note_publish: FieldValue,
    /// Values for further ticket fields on create, by Autotask field name:
    /// what the tenant's Autotask requires beyond the queue (e.g.
    /// `billingCodeID`, `ticketType`, `source`). A picklist field takes a
    /// label or a number; others take their value.
    #[serde(default)]
    pub ticket_defaults: BTreeMap<String, FieldValue>,
}

impl AutotaskSettings {
    /// Settings for a tenant whose zone is found at `zone_lookup_url`, with
    /// every other setting at its default.
    pub fn new(zone_lookup_url: impl Into<String>) -> Self {
        Self {
            zone_lookup_url: zone_lookup_url.into(),
            queue_id: None,
            default_company_id: None,
            companies_by_organization: BTreeMap::new(),
            public_note_publish: default_public_note_publish(),
            internal_note_publish: default_internal_note_publish(),
            ticket_defaults: BTreeMap::new(),
        }
    }

    /// The defaults of `public_note_publish` and `internal_note_publish`.
    pub fn note_publish_defaults() -> (Vec<FieldValue>, FieldValue) {
        (
            default_public_note_publish(),
            default_internal_note_publish(),
        )
    }
}

/// Autotask's global zone lookup service: where a tenant without a setting
/// of its own is looked up.
pub const AUTOTASK_ZONE_LOOKUP_URL: &str = "https://webservices.autotask.net/atservicesrest";

impl Default for AutotaskSettings {
    fn default() -> Self {
        Self::new(AUTOTASK_ZONE_LOOKUP_URL)
    }
}

/// ConnectWise PSA side of a tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectWiseSettings {
    /// Where the tenant's ConnectWise lives: a cloud site
    /// (`https://na.myconnectwise.net`, `eu`, `au`, `aus`, `za`, staging),
    /// whose API host is the `api-` one, or an on-premise origin
    /// (`https://cw.example.com`), or a sandbox on loopback. The API base is
    /// found from it with the company id (`/login/companyinfo/{company}`).
    pub site: String,
    /// The company id the MSP signs in with (the `{company}+` of the keys).
    pub company_id: String,
    /// Service board new tickets are created on (the PSA's "queue").
    #[serde(default)]
    pub board_id: Option<i64>,
    /// Company used when the cluster id matches no configuration.
    #[serde(default)]
    pub default_company_id: Option<i64>,
    /// Zendesk organization id → ConnectWise company id.
    #[serde(default)]
    pub companies_by_organization: BTreeMap<u64, i64>,
    /// Status tables of particular boards, overriding `mappings.status`
    /// (Zendesk status → ConnectWise status name) on that board. Status
    /// names resolve against the ticket's own board either way, because the
    /// same name has a different id on every board.
    #[serde(default)]
    pub status_by_board: BTreeMap<i64, BTreeMap<String, String>>,
}

impl ConnectWiseSettings {
    pub fn new(site: impl Into<String>, company_id: impl Into<String>) -> Self {
        Self {
            site: site.into(),
            company_id: company_id.into(),
            board_id: None,
            default_company_id: None,
            companies_by_organization: BTreeMap::new(),
            status_by_board: BTreeMap::new(),
        }
    }
}

fn default_public_note_publish() -> Vec<FieldValue> {
    vec![FieldValue::Text("All Autotask Users".to_owned())]
}

fn default_internal_note_publish() -> FieldValue {
    FieldValue::Text("Internal Project Team".to_owned())
}

/// A value for a PSA field given in the config: a number, or text (a
/// picklist label, or a text field's value).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum FieldValue {
    Number(i64),
    Text(String),
}

impl fmt::Display for FieldValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FieldValue::Number(n) => write!(f, "{n}"),
            FieldValue::Text(text) => write!(f, "{text:?}"),
        }
    }
}

/// Mapping tables. The forward tables (`priority`, `status`) are keyed by
/// Zendesk value, their values Autotask picklist labels (or numeric picklist
/// values), resolved through picklist discovery. The reverse tables
/// (`priority_to_desk`, `status_to_desk`) are keyed by Autotask label (or
/// number) and name the Zendesk value; they are used only when a rule sends
/// that field to the desk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mappings {
    #[serde(default)]
    pub priority: BTreeMap<String, String>,
    #[serde(default)]
    pub status: BTreeMap<String, String>,
    #[serde(default = "default_priority_to_desk")]
    pub priority_to_desk: BTreeMap<String, DeskPriority>,
    #[serde(default = "default_status_to_desk")]
    pub status_to_desk: BTreeMap<String, DeskStatus>,
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

fn default_priority_to_desk() -> BTreeMap<String, DeskPriority> {
    [
        ("Critical", DeskPriority::Urgent),
        ("High", DeskPriority::High),
        ("Medium", DeskPriority::Normal),
        ("Low", DeskPriority::Low),
    ]
    .into_iter()
    .map(|(label, value)| (label.to_owned(), value))
    .collect()
}

fn default_status_to_desk() -> BTreeMap<String, DeskStatus> {
    [
        ("New", DeskStatus::Open),
        ("In Progress", DeskStatus::Open),
        ("Waiting Customer", DeskStatus::Pending),
        ("Waiting Vendor", DeskStatus::Hold),
        ("Complete", DeskStatus::Solved),
    ]
    .into_iter()
    .map(|(label, value)| (label.to_owned(), value))
    .collect()
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
            priority_to_desk: default_priority_to_desk(),
            status_to_desk: default_status_to_desk(),
            initial_status: default_initial_status(),
            priority_when_unset: default_priority_for_none(),
        }
    }
}

/// Which CI fields asset sync writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AssetMode {
    /// The standard CI fields only (name, reference number, serial number,
    /// warranty date, active).
    #[default]
    Simple,
    /// Also the user-defined fields named in `AssetSettings::udf_names`.
    Advanced,
}

/// What a CI's `referenceNumber` holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReferenceNumberSource {
    /// The device's inventory id.
    #[default]
    InventoryId,
    /// The device's cluster id (the one tickets carry), so tickets find it.
    ClusterId,
}

/// Asset sync settings of a tenant (absent: no asset sync).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssetSettings {
    #[serde(default)]
    pub mode: AssetMode,
    /// The Autotask product every CI is an instance of (required by Autotask).
    pub product_id: i64,
    /// `configurationItemType` picklist value (label or number).
    #[serde(default)]
    pub ci_type: Option<FieldValue>,
    /// `configurationItemCategoryID`; Autotask's default category when unset.
    #[serde(default)]
    pub category_id: Option<i64>,
    #[serde(default)]
    pub reference_number: ReferenceNumberSource,
    /// Days of the month a scheduled run happens (UTC); default the 10th and 25th.
    #[serde(default = "default_asset_days")]
    pub schedule_days: Vec<u32>,
    /// The UDF that holds the inventory id (matching without a stored link
    /// looks it up there, then by serial number). Advanced mode writes it.
    #[serde(default = "default_inventory_udf")]
    pub inventory_id_udf: String,
}

fn default_asset_days() -> Vec<u32> {
    vec![10, 25]
}

fn default_inventory_udf() -> String {
    "Inventory Device ID".to_owned()
}

/// The user-defined fields advanced mode writes, by the device field they
/// hold (the inventory id UDF is `AssetSettings::inventory_id_udf`).
pub const ASSET_UDFS: [&str; 12] = [
    "BIOS Name",
    "BIOS Version",
    "Device Type",
    "DNS",
    "Drive Info",
    "Gateway",
    "IP Address",
    "Make",
    "Model",
    "Operating System",
    "RAM",
    "Last Logged User",
];

/// Everything about a tenant except its credentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantConfig {
    pub id: TenantId,
    #[serde(default = "yes")]
    pub active: bool,
    pub zendesk: ZendeskSettings,
    /// The Autotask side; ignored when `connectwise` is set.
    #[serde(default)]
    pub autotask: AutotaskSettings,
    /// Set for a tenant whose PSA is ConnectWise rather than Autotask.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connectwise: Option<ConnectWiseSettings>,
    #[serde(default)]
    pub mappings: Mappings,
    #[serde(default)]
    pub fields: FieldRules,
    /// Device inventory → PSA configuration items; absent: off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assets: Option<AssetSettings>,
}

impl TenantConfig {
    /// Which PSA the tenant runs.
    pub fn psa_system(&self) -> PsaSystem {
        if self.connectwise.is_some() {
            PsaSystem::ConnectWise
        } else {
            PsaSystem::Autotask
        }
    }

    /// Queue (Autotask) or service board (ConnectWise) new tickets go to.
    pub fn psa_queue_id(&self) -> Option<i64> {
        match &self.connectwise {
            Some(cw) => cw.board_id,
            None => self.autotask.queue_id,
        }
    }

    /// Company for tickets whose cluster id matches nothing.
    pub fn default_company_id(&self) -> Option<i64> {
        match &self.connectwise {
            Some(cw) => cw.default_company_id,
            None => self.autotask.default_company_id,
        }
    }

    /// The PSA company associated with a Zendesk organization.
    pub fn company_for_organization(&self, organization: u64) -> Option<i64> {
        match &self.connectwise {
            Some(cw) => cw.companies_by_organization.get(&organization).copied(),
            None => self
                .autotask
                .companies_by_organization
                .get(&organization)
                .copied(),
        }
    }

    /// The forward status table (Zendesk status → PSA status) that applies
    /// to a ticket in `queue_id`.
    pub fn status_table(&self, queue_id: Option<i64>) -> &BTreeMap<String, String> {
        self.connectwise
            .as_ref()
            .zip(queue_id)
            .and_then(|(cw, board)| cw.status_by_board.get(&board))
            .unwrap_or(&self.mappings.status)
    }
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

/// One tenant's credentials, as kept in the secrets port. Deserialized from
/// the secrets store; only the secrets writers turn it back into a document
/// ([`TenantSecrets::to_document`]), so no derive can leak it elsewhere.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantSecrets {
    /// Zendesk agent e-mail for API token auth (`{email}/token:{token}`).
    pub zendesk_email: String,
    pub zendesk_api_token: Secret,
    /// An OAuth access token (authorization code grant). When set, the bridge
    /// signs in to Zendesk with it (`Bearer`) instead of the API token.
    #[serde(default)]
    pub zendesk_oauth_token: Secret,
    /// Signing secret of the Zendesk webhook that calls this tenant's URL.
    pub zendesk_webhook_secret: Secret,
    /// Autotask API user (`UserName` header).
    #[serde(default)]
    pub autotask_username: String,
    #[serde(default)]
    pub autotask_secret: Secret,
    #[serde(default)]
    pub autotask_integration_code: Secret,
    /// Basic-auth credentials the tenant's Autotask extension callout sends.
    #[serde(default)]
    pub autotask_callout_username: String,
    #[serde(default)]
    pub autotask_callout_password: Secret,
    /// Secret key of the tenant's Autotask REST webhook (`X-Hook-Signature`).
    #[serde(default)]
    pub autotask_webhook_secret: Secret,
    /// Public key of the ConnectWise API member (the `+public` half of the
    /// Basic user name; not secret on its own).
    #[serde(default)]
    pub connectwise_public_key: String,
    /// Private key of the ConnectWise API member (the Basic password).
    #[serde(default)]
    pub connectwise_private_key: Secret,
    /// The integration's ConnectWise `clientId` (sent on every call).
    #[serde(default)]
    pub connectwise_client_id: String,
    /// Signs inventory pushes (`POST /t/{tenant}/inventory`).
    #[serde(default)]
    pub inventory_signing_secret: Secret,
}

impl TenantSecrets {
    /// The document a secrets store keeps: every field by its serde name,
    /// values in clear. For the secrets writers only; the destructuring
    /// makes a new field a compile error here rather than a silently
    /// dropped credential.
    pub fn to_document(&self) -> BTreeMap<&'static str, String> {
        let TenantSecrets {
            zendesk_email,
            zendesk_api_token,
            zendesk_oauth_token,
            zendesk_webhook_secret,
            autotask_username,
            autotask_secret,
            autotask_integration_code,
            autotask_callout_username,
            autotask_callout_password,
            autotask_webhook_secret,
            connectwise_public_key,
            connectwise_private_key,
            connectwise_client_id,
            inventory_signing_secret,
        } = self;
        [
            ("zendesk_email", zendesk_email.clone()),
            ("zendesk_api_token", zendesk_api_token.expose().to_owned()),
            (
                "zendesk_oauth_token",
                zendesk_oauth_token.expose().to_owned(),
            ),
            (
                "zendesk_webhook_secret",
                zendesk_webhook_secret.expose().to_owned(),
            ),
            ("autotask_username", autotask_username.clone()),
            ("autotask_secret", autotask_secret.expose().to_owned()),
            (
                "autotask_integration_code",
                autotask_integration_code.expose().to_owned(),
            ),
            (
                "autotask_callout_username",
                autotask_callout_username.clone(),
            ),
            (
                "autotask_callout_password",
                autotask_callout_password.expose().to_owned(),
            ),
            (
                "autotask_webhook_secret",
                autotask_webhook_secret.expose().to_owned(),
            ),
            ("connectwise_public_key", connectwise_public_key.clone()),
            (
                "connectwise_private_key",
                connectwise_private_key.expose().to_owned(),
            ),
            ("connectwise_client_id", connectwise_client_id.clone()),
            (
                "inventory_signing_secret",
                inventory_signing_secret.expose().to_owned(),
            ),
        ]
        .into_iter()
        .collect()
    }
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
    fn directions_the_sync_cannot_honour_are_refused() {
        for (field, direction) in [("description", "to_desk"), ("company", "both")] {
            let err = serde_json::from_value::<FieldRules>(serde_json::json!({ field: direction }))
                .unwrap_err();
            assert!(
                err.to_string()
                    .contains(&format!("unknown variant `{direction}`")),
                "{field}: {err}"
            );
        }
        let rules: FieldRules =
            serde_json::from_value(serde_json::json!({"status": "both", "subject": "to_desk"}))
                .unwrap();
        assert!(rules.status.to_desk() && rules.status.to_psa() && rules.any_field_to_desk());
        assert!(!FieldRules::default().any_field_to_desk());
    }

    #[test]
    fn a_reverse_table_naming_a_status_zendesk_cannot_take_is_refused() {
        let err = serde_json::from_value::<Mappings>(
            serde_json::json!({"status_to_desk": {"Complete": "new"}}),
        )
        .unwrap_err();
        assert!(err.to_string().contains("unknown variant `new`"), "{err}");
        let defaults: Mappings = serde_json::from_value(serde_json::json!({})).unwrap();
        assert_eq!(defaults.status_to_desk["Complete"], DeskStatus::Solved);
    }

    #[test]
    fn autotask_note_and_ticket_settings_default_safely_and_take_labels_or_numbers() {
        let defaults: AutotaskSettings =
            toml::from_str("zone_lookup_url = \"https://webservices.autotask.net\"").unwrap();
        assert_eq!(
            defaults.public_note_publish,
            vec![FieldValue::Text("All Autotask Users".into())]
        );
        assert_eq!(
            defaults.internal_note_publish,
            FieldValue::Text("Internal Project Team".into())
        );
        assert!(defaults.ticket_defaults.is_empty());
        assert_eq!(
            defaults,
            AutotaskSettings::new("https://webservices.autotask.net")
        );

        let set: AutotaskSettings = toml::from_str(
            "zone_lookup_url = \"z\"\npublic_note_publish = [1, \"Internal & Co-Managed\"]\n\
             internal_note_publish = 2\n[ticket_defaults]\nbillingCodeID = \"Remote Support\"\nsource = 4\n",
        )
        .unwrap();
        assert_eq!(
            set.public_note_publish,
            vec![
                FieldValue::Number(1),
                FieldValue::Text("Internal & Co-Managed".into())
            ]
        );
        assert_eq!(set.internal_note_publish, FieldValue::Number(2));
        assert_eq!(set.ticket_defaults["source"], FieldValue::Number(4));
        assert_eq!(
            set.ticket_defaults["billingCodeID"].to_string(),
            "\"Remote Support\""
        );
        // The store keeps it as JSON and reads it back unchanged.
        let json = serde_json::to_value(&set).unwrap();
        assert_eq!(json["ticket_defaults"]["source"], 4);
        assert_eq!(
            serde_json::from_value::<AutotaskSettings>(json).unwrap(),
            set
        );

        let err =
            toml::from_str::<AutotaskSettings>("zone_lookup_url = \"z\"\nticket_default = {}")
                .unwrap_err();
        assert!(err.to_string().contains("ticket_default"), "{err}");
    }

    #[test]
    fn the_secrets_document_reads_back_as_the_same_secrets() {
        let secrets: TenantSecrets = serde_json::from_value(serde_json::json!({
            "zendesk_email": "bridge@acme.example",
            "zendesk_api_token": "zd-token",
            "zendesk_webhook_secret": "zd-hook",
            "autotask_username": "api@acme.example",
            "autotask_secret": "at-secret",
            "autotask_integration_code": "AT-CODE",
        }))
        .unwrap();
        assert!(secrets.zendesk_oauth_token.is_empty(), "optional");
        let mut with_oauth = secrets.clone();
        with_oauth.zendesk_oauth_token = Secret::new("oauth-access");
        let document = serde_json::to_value(with_oauth.to_document()).unwrap();
        assert_eq!(document["zendesk_oauth_token"], "oauth-access");
        assert_eq!(
            serde_json::from_value::<TenantSecrets>(document).unwrap(),
            with_oauth
        );
    }

    #[test]
    fn a_secret_never_shows_its_value() {
        let secret = Secret::new("hunter2");
        assert_eq!(format!("{secret} {secret:?}"), "*** Secret(***)");
        assert_eq!(secret.expose(), "hunter2");
    }
}

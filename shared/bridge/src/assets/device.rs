//! A device of the inventory, as a push or an import delivers it, and the
//! per-device validation: a bad device is reported with its reason and the
//! good ones of the same batch are kept (issue 13: "a bad device in a batch
//! does not stop the others").
//!
//! Field names (JSON keys and CSV header cells, snake_case; the camelCase
//! spellings RMM exports use are accepted too): `inventory_id` (required),
//! `name`, `state` (required: `managed`, `discovered` or `unmanaged`),
//! `serial_number`, `warranty_end_date` (`YYYY-MM-DD` or RFC 3339), `make`,
//! `model`, `operating_system`, `bios_name`, `bios_version`, `device_type`,
//! `dns_name`, `drive_info`, `gateway`, `ip_address`, `ram`,
//! `last_logged_user`, `company_hint`, `cluster_id`. Unknown fields are
//! ignored, so an exporter may send more than the bridge reads.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Longest inventory id: it is part of a store key (`DEVICE#<id>`) and of a
/// PSA query, and real RMM ids are short.
pub const MAX_INVENTORY_ID_CHARS: usize = 100;
/// Longest value of any other field. Keeps a device record (pushed values
/// plus the values last written) far below the 400 KB item limit:
/// 20 fields × 2 copies × 2 KB × up to 4 bytes a char is about 320 KB at worst.
pub const MAX_FIELD_CHARS: usize = 2000;

/// Where a device stands in the inventory. Only a managed device is an active
/// configuration item; the others are kept, inactive (never deleted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceState {
    Managed,
    Discovered,
    Unmanaged,
}

impl DeviceState {
    pub fn is_active(self) -> bool {
        self == DeviceState::Managed
    }

    fn parse(text: &str) -> Option<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "managed" => Some(Self::Managed),
            "discovered" => Some(Self::Discovered),
            "unmanaged" => Some(Self::Unmanaged),
            _ => None,
        }
    }
}

/// One device's values as last pushed. Stored in `DEVICE#<inventory id>`
/// with short field names absent when empty, to keep items small.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Device {
    pub inventory_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub state: DeviceState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial_number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warranty_end_date: Option<NaiveDate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub make: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operating_system: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bios_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bios_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drive_info: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ram: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_logged_user: Option<String>,
    /// A PSA company id (a number) the exporter says the device belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub company_hint: Option<String>,
    /// The cluster id tickets carry; resolves the company like tickets do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_id: Option<String>,
}

impl Device {
    /// A managed device with only its id set (tests and callers that fill in
    /// the rest).
    pub fn managed(inventory_id: impl Into<String>) -> Self {
        Self {
            inventory_id: inventory_id.into(),
            name: None,
            state: DeviceState::Managed,
            serial_number: None,
            warranty_end_date: None,
            make: None,
            model: None,
            operating_system: None,
            bios_name: None,
            bios_version: None,
            device_type: None,
            dns_name: None,
            drive_info: None,
            gateway: None,
            ip_address: None,
            ram: None,
            last_logged_user: None,
            company_hint: None,
            cluster_id: None,
        }
    }

    /// The warranty end as the PSA stores it: midnight UTC of that day.
    pub fn warranty_expiration(&self) -> Option<DateTime<Utc>> {
        self.warranty_end_date
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map(|d| d.and_utc())
    }

    /// The device's values for the advanced-mode UDFs, by UDF name
    /// (`config::ASSET_UDFS`), only those that have a value.
    pub fn udf_values(&self) -> Vec<(&'static str, &str)> {
        [
            ("BIOS Name", &self.bios_name),
            ("BIOS Version", &self.bios_version),
            ("Device Type", &self.device_type),
            ("DNS", &self.dns_name),
            ("Drive Info", &self.drive_info),
            ("Gateway", &self.gateway),
            ("IP Address", &self.ip_address),
            ("Make", &self.make),
            ("Model", &self.model),
            ("Operating System", &self.operating_system),
            ("RAM", &self.ram),
            ("Last Logged User", &self.last_logged_user),
        ]
        .into_iter()
        .filter_map(|(udf, value)| value.as_deref().map(|v| (udf, v)))
        .collect()
    }

    /// The company id hint, when it is a positive number.
    pub fn company_hint_id(&self) -> Option<i64> {
        self.company_hint
            .as_deref()
            .and_then(|h| h.trim().parse::<i64>().ok())
            .filter(|id| *id > 0)
    }
}

/// A device of a batch that was not kept, and why (in words for the sender).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RejectedDevice {
    /// Position in the batch, from 0 (CSV: data rows, the header not counted).
    pub index: usize,
    /// The inventory id, when the device named a usable one.
    pub inventory_id: Option<String>,
    pub reason: String,
}

/// A batch read and validated: the good devices, and the bad ones with reasons.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceBatch {
    pub devices: Vec<Device>,
    pub rejected: Vec<RejectedDevice>,
}

/// Why a whole batch is unreadable (as opposed to one bad device in it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    #[error("body is not valid JSON: {0}")]
    Json(String),
    #[error("expected {{\"devices\": [...]}} or a JSON array of devices")]
    Shape,
    #[error("CSV is unreadable: {0}")]
    Csv(String),
    #[error("CSV has no inventory_id column in its header row")]
    CsvNoId,
}

/// The JSON and CSV spellings of each field (the first is the canonical one).
const FIELDS: &[(&str, &[&str])] = &[
    ("inventory_id", &["inventoryId", "device_id", "deviceId"]),
    ("name", &["hostname", "device_name", "deviceName"]),
    ("state", &["status"]),
    ("serial_number", &["serialNumber", "serial"]),
    (
        "warranty_end_date",
        &["warrantyEndDate", "warranty_end", "warranty_expiration"],
    ),
    ("make", &["manufacturer"]),
    ("model", &[]),
    ("operating_system", &["operatingSystem", "os"]),
    ("bios_name", &["biosName"]),
    ("bios_version", &["biosVersion"]),
    ("device_type", &["deviceType"]),
    ("dns_name", &["dnsName", "dns"]),
    ("drive_info", &["driveInfo"]),
    ("gateway", &[]),
    ("ip_address", &["ipAddress", "ip"]),
    ("ram", &[]),
    (
        "last_logged_user",
        &["lastLoggedUser", "last_logged_on_user", "lastLoggedOnUser"],
    ),
    ("company_hint", &["companyHint", "company_id", "companyId"]),
    ("cluster_id", &["clusterId"]),
];

/// The canonical name of a field spelled `key`, if the bridge reads it.
fn canonical(key: &str) -> Option<&'static str> {
    let key = key.trim();
    FIELDS
        .iter()
        .find(|(name, aliases)| *name == key || aliases.contains(&key))
        .map(|(name, _)| *name)
}

/// Reads `{"devices":[…]}` or a bare array of device objects.
pub fn parse_json_batch(body: &[u8]) -> Result<DeviceBatch, BatchError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| BatchError::Json(short(&e.to_string())))?;
    let items = match value {
        Value::Array(items) => items,
        Value::Object(mut object) => match object.remove("devices") {
            Some(Value::Array(items)) => items,
            _ => return Err(BatchError::Shape),
        },
        _ => return Err(BatchError::Shape),
    };
    let mut batch = Batcher::default();
    for (index, item) in items.into_iter().enumerate() {
        let result = match item {
            Value::Object(object) => {
                let mut fields = Vec::with_capacity(object.len());
                let mut bad = None;
                for (key, value) in object {
                    let Some(name) = canonical(&key) else {
                        continue;
                    };
                    match text_of(&value) {
                        Ok(text) => fields.push((name, text)),
                        Err(kind) => {
                            bad.get_or_insert(format!(
                                "{name} must be text or a number, not {kind}"
                            ));
                        }
                    }
                }
                match bad {
                    Some(reason) => Err((id_of(&fields), reason)),
                    None => validate(&fields),
                }
            }
            _ => Err((None, "a device must be a JSON object".to_owned())),
        };
        batch.push(index, result);
    }
    Ok(batch.finish())
}

/// Reads a CSV with a header row naming the fields (see the module doc).
pub fn parse_csv_batch(body: &[u8]) -> Result<DeviceBatch, BatchError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(body);
    let headers: Vec<Option<&'static str>> = reader
        .headers()
        .map_err(|e| BatchError::Csv(short(&e.to_string())))?
        .iter()
        .map(|h| canonical(h.trim_start_matches('\u{feff}')))
        .collect();
    if !headers.contains(&Some("inventory_id")) {
        return Err(BatchError::CsvNoId);
    }
    let mut batch = Batcher::default();
    for (index, record) in reader.records().enumerate() {
        let result = match record {
            Ok(record) => {
                let fields: Vec<(&'static str, Option<String>)> = headers
                    .iter()
                    .zip(record.iter())
                    .filter_map(|(name, cell)| {
                        name.map(|n| (n, Some(cell.to_owned()).filter(|c| !c.is_empty())))
                    })
                    .collect();
                validate(&fields)
            }
            Err(e) => Err((
                None,
                format!("unreadable CSV row: {}", short(&e.to_string())),
            )),
        };
        batch.push(index, result);
    }
    Ok(batch.finish())
}

/// Collects results and rejects a second device with the same inventory id
/// (which of two values would win is not knowable; the sender must decide).
#[derive(Default)]
struct Batcher {
    batch: DeviceBatch,
    seen: std::collections::HashMap<String, usize>,
}

impl Batcher {
    fn push(&mut self, index: usize, result: Result<Device, (Option<String>, String)>) {
        match result {
            Ok(device) => match self.seen.get(&device.inventory_id) {
                Some(first) => self.batch.rejected.push(RejectedDevice {
                    index,
                    inventory_id: Some(device.inventory_id.clone()),
                    reason: format!(
                        "inventory id {:?} already appears at index {first} of this batch",
                        device.inventory_id
                    ),
                }),
                None => {
                    self.seen.insert(device.inventory_id.clone(), index);
                    self.batch.devices.push(device);
                }
            },
            Err((inventory_id, reason)) => self.batch.rejected.push(RejectedDevice {
                index,
                inventory_id,
                reason,
            }),
        }
    }

    fn finish(self) -> DeviceBatch {
        self.batch
    }
}

/// A JSON value as field text: strings trimmed (empty is absent), numbers
/// and booleans as written, null absent. Objects and arrays are errors.
fn text_of(value: &Value) -> Result<Option<String>, &'static str> {
    match value {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s.trim().to_owned()).filter(|s| !s.is_empty())),
        Value::Number(n) => Ok(Some(n.to_string())),
        Value::Bool(b) => Ok(Some(b.to_string())),
        Value::Array(_) => Err("a list"),
        Value::Object(_) => Err("an object"),
    }
}

fn id_of(fields: &[(&'static str, Option<String>)]) -> Option<String> {
    fields
        .iter()
        .find(|(n, _)| *n == "inventory_id")
        .and_then(|(_, v)| v.clone())
        .filter(|id| usable_id(id).is_ok())
}

fn usable_id(id: &str) -> Result<(), String> {
    if id.chars().count() > MAX_INVENTORY_ID_CHARS {
        return Err(format!(
            "inventory_id is longer than {MAX_INVENTORY_ID_CHARS} characters"
        ));
    }
    if id.chars().any(char::is_control) {
        return Err("inventory_id contains control characters".to_owned());
    }
    Ok(())
}

/// One device from its (canonical name, text) pairs.
fn validate(fields: &[(&'static str, Option<String>)]) -> Result<Device, (Option<String>, String)> {
    let get = |name: &str| {
        fields
            .iter()
            .rev()
            .find(|(n, _)| *n == name)
            .and_then(|(_, v)| v.clone())
    };
    let Some(id) = get("inventory_id") else {
        return Err((None, "inventory_id is missing or empty".to_owned()));
    };
    usable_id(&id).map_err(|reason| (None, reason))?;
    let fail = |reason: String| (Some(id.clone()), reason);
    for (name, value) in fields {
        if let Some(value) = value {
            if value.chars().count() > MAX_FIELD_CHARS {
                return Err(fail(format!(
                    "{name} is longer than {MAX_FIELD_CHARS} characters"
                )));
            }
            // Stored JSON escapes a control character into six bytes; only
            // line breaks and tabs (drive lists) are real device data.
            if value
                .chars()
                .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
            {
                return Err(fail(format!("{name} contains control characters")));
            }
        }
    }
    let state = match get("state") {
        None => {
            return Err(fail(
                "state is missing (managed, discovered or unmanaged)".to_owned(),
            ))
        }
        Some(text) => DeviceState::parse(&text).ok_or_else(|| {
            fail(format!(
                "state {:?} is not managed, discovered or unmanaged",
                short(&text)
            ))
        })?,
    };
    let warranty_end_date = match get("warranty_end_date") {
        None => None,
        Some(text) => Some(parse_date(&text).ok_or_else(|| {
            fail(format!(
                "warranty_end_date {:?} is not a date (YYYY-MM-DD or RFC 3339)",
                short(&text)
            ))
        })?),
    };
    let company_hint = get("company_hint");
    if let Some(hint) = &company_hint {
        if hint.trim().parse::<i64>().map_or(true, |id| id <= 0) {
            return Err(fail(format!(
                "company_hint {:?} is not a PSA company id (a positive number)",
                short(hint)
            )));
        }
    }
    Ok(Device {
        inventory_id: id.clone(),
        name: get("name"),
        state,
        serial_number: get("serial_number"),
        warranty_end_date,
        make: get("make"),
        model: get("model"),
        operating_system: get("operating_system"),
        bios_name: get("bios_name"),
        bios_version: get("bios_version"),
        device_type: get("device_type"),
        dns_name: get("dns_name"),
        drive_info: get("drive_info"),
        gateway: get("gateway"),
        ip_address: get("ip_address"),
        ram: get("ram"),
        last_logged_user: get("last_logged_user"),
        company_hint,
        cluster_id: get("cluster_id"),
    })
}

fn parse_date(text: &str) -> Option<NaiveDate> {
    let text = text.trim();
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .or_else(|| {
            DateTime::parse_from_rfc3339(text)
                .ok()
                .map(|d| d.with_timezone(&Utc).date_naive())
        })
        // `2027-03-01T00:00:00` without a zone: taken as UTC.
        .or_else(|| {
            chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S")
                .ok()
                .map(|d| d.date())
        })
}

/// What the sender put in, cut short for messages and logs.
fn short(text: &str) -> String {
    match text.char_indices().nth(60) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_batches_in_both_shapes_keep_good_devices_and_report_bad_ones() {
        let body = br#"{"devices":[
            {"inventory_id":"dev-1","name":"FS01","state":"Managed","serial_number":"SN1",
             "warranty_end_date":"2027-03-01","ram":16384,"company_hint":"29683616","extra":[1]},
            {"name":"no id","state":"managed"},
            {"inventory_id":"dev-3","state":"retired"},
            {"inventory_id":"dev-4","state":"unmanaged","warranty_end_date":"soon"},
            {"inventory_id":"dev-1","state":"managed"},
            {"inventory_id":"dev-6","state":"discovered","ip_address":{"v4":"10.0.0.1"}},
            7
        ]}"#;
        let batch = parse_json_batch(body).unwrap();
        assert_eq!(batch.devices.len(), 1);
        let dev = &batch.devices[0];
        assert_eq!(dev.ram.as_deref(), Some("16384"));
        assert_eq!(dev.company_hint_id(), Some(29683616));
        assert_eq!(
            dev.warranty_expiration().unwrap().to_rfc3339(),
            "2027-03-01T00:00:00+00:00"
        );
        let reasons: Vec<(usize, Option<&str>)> = batch
            .rejected
            .iter()
            .map(|r| (r.index, r.inventory_id.as_deref()))
            .collect();
        assert_eq!(
            reasons,
            vec![
                (1, None),
                (2, Some("dev-3")),
                (3, Some("dev-4")),
                (4, Some("dev-1")),
                (5, Some("dev-6")),
                (6, None)
            ]
        );
        assert!(batch.rejected[1].reason.contains("retired"));
        assert!(batch.rejected[3]
            .reason
            .contains("already appears at index 0"));

        let bare = parse_json_batch(br#"[{"inventoryId":"a","status":"managed"}]"#).unwrap();
        assert_eq!(bare.devices[0].inventory_id, "a");
        assert_eq!(parse_json_batch(b"{\"x\":1}"), Err(BatchError::Shape));
        assert!(matches!(parse_json_batch(b"{"), Err(BatchError::Json(_))));
    }

    #[test]
    fn csv_batches_read_by_header_names() {
        let body = "\u{feff}inventory_id,name,state,serial_number,warranty_end_date,ip_address\n\
                    dev-1,FS01,managed,SN1,2027-03-01T00:00:00Z,10.0.0.5\n\
                    dev-2,\"PC, front desk\",discovered,,,\n\
                    ,nameless,managed,,,\n";
        let batch = parse_csv_batch(body.as_bytes()).unwrap();
        assert_eq!(batch.devices.len(), 2);
        assert_eq!(batch.devices[1].name.as_deref(), Some("PC, front desk"));
        assert_eq!(batch.devices[1].serial_number, None);
        assert_eq!(batch.rejected.len(), 1);
        assert_eq!(batch.rejected[0].index, 2);
        assert_eq!(
            parse_csv_batch(b"name,state\nx,managed\n"),
            Err(BatchError::CsvNoId)
        );
    }
}

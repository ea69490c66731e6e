//! Mapping tables: Zendesk values to Autotask picklist values, and mapping
//! suggestions that pair values by normalized name for an admin to confirm.

use std::collections::BTreeMap;

use crate::error::SyncError;
use crate::model::PicklistValue;

/// Looks a Zendesk value up in a tenant's table (case-insensitive keys).
pub fn map_desk_value<'m>(
    table: &'static str,
    map: &'m BTreeMap<String, String>,
    desk_value: &str,
) -> Result<&'m str, SyncError> {
    map.get(desk_value)
        .or_else(|| {
            map.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(desk_value))
                .map(|(_, v)| v)
        })
        .map(String::as_str)
        .ok_or_else(|| SyncError::MissingMapping {
            table,
            value: desk_value.to_owned(),
        })
}

/// Looks a PSA picklist value up in a reverse table (PSA value → desk value),
/// whose keys are picklist labels or numbers, as in the forward tables.
pub fn map_psa_value<'m, V>(
    table: &'static str,
    reverse: &'m BTreeMap<String, V>,
    psa_value: i64,
    values: &[PicklistValue],
) -> Result<&'m V, SyncError> {
    let label = values
        .iter()
        .find(|v| v.value == psa_value)
        .map(|v| v.label.as_str());
    let wanted = label.map(normalize);
    reverse
        .iter()
        .find(|(key, _)| {
            let key = key.trim();
            key.parse::<i64>().ok() == Some(psa_value)
                || wanted.as_deref() == Some(normalize(key).as_str())
        })
        .map(|(_, desk)| desk)
        .ok_or_else(|| SyncError::MissingMapping {
            table,
            value: match label {
                Some(label) => label.to_owned(),
                None => psa_value.to_string(),
            },
        })
}

/// Resolves a configured PSA value (a picklist label such as "In Progress",
/// or its numeric value) against the live picklist. Inactive values are
/// refused: Autotask rejects them on write.
pub fn resolve_picklist(
    table: &'static str,
    wanted: &str,
    values: &[PicklistValue],
) -> Result<i64, SyncError> {
    let wanted_trimmed = wanted.trim();
    let by_number = wanted_trimmed
        .parse::<i64>()
        .ok()
        .and_then(|n| values.iter().find(|v| v.value == n));
    let found = by_number.or_else(|| {
        let key = normalize(wanted_trimmed);
        values.iter().find(|v| normalize(&v.label) == key)
    });
    match found {
        Some(v) if v.is_active => Ok(v.value),
        _ => Err(SyncError::MissingMapping {
            table,
            value: format!("{wanted} (not an active Autotask {table} value)"),
        }),
    }
}

/// Lower-case, alphanumerics only: "Waiting-Customer" == "waiting customer".
pub fn normalize(label: &str) -> String {
    label
        .chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// Pairs each Zendesk value with the PSA label of the same normalized name,
/// if there is one. An admin confirms or edits the result.
pub fn suggest(
    desk_values: &[&str],
    psa_values: &[PicklistValue],
) -> BTreeMap<String, Option<String>> {
    desk_values
        .iter()
        .map(|desk| {
            let key = normalize(desk);
            let label = psa_values
                .iter()
                .filter(|v| v.is_active)
                .find(|v| normalize(&v.label) == key)
                .map(|v| v.label.clone());
            ((*desk).to_owned(), label)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn picklist() -> Vec<PicklistValue> {
        [
            (1, "New", true),
            (5, "Complete", true),
            (8, "In Progress", true),
            (9, "Old", false),
        ]
        .into_iter()
        .map(|(value, label, is_active)| PicklistValue {
            value,
            label: label.into(),
            is_active,
        })
        .collect()
    }

    #[test]
    fn labels_and_numbers_resolve() {
        assert_eq!(
            resolve_picklist("status", "in-progress", &picklist()).unwrap(),
            8
        );
        assert_eq!(resolve_picklist("status", "5", &picklist()).unwrap(), 5);
    }

    #[test]
    fn unknown_and_inactive_values_are_missing_mappings() {
        for wanted in ["Nope", "Old", "9", "77"] {
            let err = resolve_picklist("status", wanted, &picklist()).unwrap_err();
            assert!(
                matches!(
                    err,
                    SyncError::MissingMapping {
                        table: "status",
                        ..
                    }
                ),
                "{wanted}"
            );
            assert!(!err.is_retryable());
        }
    }

    #[test]
    fn desk_values_map_case_insensitively_and_missing_ones_say_which_table() {
        let map: BTreeMap<String, String> = [("urgent".to_owned(), "Critical".to_owned())].into();
        assert_eq!(
            map_desk_value("priority", &map, "URGENT").unwrap(),
            "Critical"
        );
        let err = map_desk_value("priority", &map, "low").unwrap_err();
        assert_eq!(
            err.to_string(),
            "no priority mapping for \"low\"; add it to the tenant's priority table"
        );
    }

    #[test]
    fn psa_values_map_back_by_label_or_number_and_missing_ones_name_the_table() {
        let reverse: BTreeMap<String, &str> = [
            ("in-progress".to_owned(), "open"),
            ("5".to_owned(), "solved"),
        ]
        .into();
        assert_eq!(
            *map_psa_value("status_to_desk", &reverse, 8, &picklist()).unwrap(),
            "open"
        );
        assert_eq!(
            *map_psa_value("status_to_desk", &reverse, 5, &picklist()).unwrap(),
            "solved"
        );
        let err = map_psa_value("status_to_desk", &reverse, 1, &picklist()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "no status_to_desk mapping for \"New\"; add it to the tenant's status_to_desk table"
        );
        assert!(!err.is_retryable());
    }

    #[test]
    fn suggestions_pair_by_normalized_name_only() {
        let s = suggest(&["new", "in_progress", "solved"], &picklist());
        assert_eq!(s["new"].as_deref(), Some("New"));
        assert_eq!(s["in_progress"].as_deref(), Some("In Progress"));
        assert_eq!(s["solved"], None);
    }
}

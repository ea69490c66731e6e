//! ConnectWise PSA's preparation checklist and where its tenants live
//! (DESIGN.md "The admin console"; fact sheet `connectwise-psa.md`).

use super::{ChecklistItem, LiveCheck};

pub const AVAILABLE: bool = true;

pub const CHECKLIST: &[ChecklistItem] = &[
    ChecklistItem {
        id: "api_member",
        title: "An API member with its key pair, and the integration's clientId",
        how: "System > Members > API Members: add a member (license class API) for the \
              bridge, then under its API Keys add a key pair and keep the public and private \
              key (the private key is shown once). The clientId is issued for the integration \
              at developer.connectwise.com/ClientID.",
        live: LiveCheck::ApiUser,
    },
    ChecklistItem {
        id: "security_role",
        title: "A security role with Service Desk, Companies and System rights",
        how: "System > Security Roles: give the API member's role Service Desk (service \
              tickets and boards: add, edit, inquire), Companies (companies and \
              configurations: inquire) and System (table setup, for callbacks) rights.",
        live: LiveCheck::Permissions,
    },
    ChecklistItem {
        id: "board",
        title: "The service board tickets from Zendesk go to, with a default team and its statuses",
        how: "Service Desk > Service Board: the board must be active, have a team marked as \
              default, and have the statuses you will map (e.g. \"Waiting Customer\"). You \
              pick the board under Mappings; statuses belong to a board in ConnectWise.",
        live: LiveCheck::Board,
    },
    ChecklistItem {
        id: "callbacks",
        title: "ConnectWise can reach the bridge's callback address",
        how: "The console registers a ticket callback to the tenant's ConnectWise URL (shown \
              on the ConnectWise page) itself. ConnectWise must be able to reach that address: \
              an on-premise server needs outbound HTTPS to it.",
        live: LiveCheck::None,
    },
];

/// ConnectWise's cloud regions, as the connection page offers them:
/// `(region, label)`; the site is `https://{region}.myconnectwise.net`.
pub const REGIONS: &[(&str, &str)] = &[
    ("na", "North America (na.myconnectwise.net)"),
    ("eu", "Europe (eu.myconnectwise.net)"),
    ("au", "Australia (au.myconnectwise.net)"),
    ("aus", "Australia, second region (aus.myconnectwise.net)"),
    ("za", "South Africa (za.myconnectwise.net)"),
];

/// The region choice that means "my own server".
pub const ON_PREMISE: &str = "onprem";

/// The site of a cloud region.
pub fn cloud_site(region: &str) -> Option<String> {
    REGIONS
        .iter()
        .find(|(r, _)| *r == region)
        .map(|(r, _)| format!("https://{r}.myconnectwise.net"))
}

/// The cloud region a stored site is, or [`ON_PREMISE`].
pub fn region_of(site: &str) -> &'static str {
    REGIONS
        .iter()
        .find(|(r, _)| cloud_site(r).as_deref() == Some(site.trim_end_matches('/')))
        .map(|(r, _)| *r)
        .unwrap_or(ON_PREMISE)
}

/// The description the bridge's callback is registered with; it tells the
/// ConnectWise admin who made it (at most 100 characters).
pub fn callback_description(tenant: &str) -> String {
    let description = format!("psa-bridge {tenant}");
    description.chars().take(100).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_map_to_cloud_sites_and_back() {
        assert_eq!(
            cloud_site("eu").as_deref(),
            Some("https://eu.myconnectwise.net")
        );
        assert_eq!(cloud_site("onprem"), None);
        assert_eq!(region_of("https://aus.myconnectwise.net/"), "aus");
        assert_eq!(region_of("https://cw.msp.example"), ON_PREMISE);
        assert_eq!(region_of(""), ON_PREMISE);
    }

    #[test]
    fn the_callback_description_fits_connectwise() {
        assert_eq!(callback_description("acme"), "psa-bridge acme");
        assert!(callback_description(&"x".repeat(200)).chars().count() <= 100);
    }
}

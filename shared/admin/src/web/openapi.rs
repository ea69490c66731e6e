//! The OpenAPI document of the JSON API, written by hand: the API is small,
//! and a hand-written document keeps the build free of a macro framework.
//! `ROUTES` is the list the document is built from; the tests check it
//! against the router, so a route added without its entry fails a test.

use serde_json::{json, Map, Value};

/// Method, path (as mounted under the console), summary, request body
/// schema name (if any).
pub const ROUTES: &[(&str, &str, &str, Option<&str>)] = &[
    (
        "post",
        "/api/login",
        "Sign in; sets the session cookie",
        Some("Login"),
    ),
    ("post", "/api/logout", "Sign out", None),
    (
        "post",
        "/api/password",
        "Change the password (opens a new session)",
        Some("PasswordChange"),
    ),
    (
        "post",
        "/api/forgot",
        "Mail a temporary password (same answer for any address)",
        Some("Forgot"),
    ),
    (
        "get",
        "/api/me",
        "Who is signed in, and the CSRF token",
        None,
    ),
    (
        "post",
        "/api/invitations",
        "Invite a tenant admin (operators)",
        Some("Invitation"),
    ),
    ("get", "/api/openapi.json", "This document", None),
    ("get", "/api/tenants", "Tenants the caller may see", None),
    (
        "post",
        "/api/tenants",
        "Create an inactive tenant (operators)",
        Some("NewTenant"),
    ),
    (
        "get",
        "/api/tenants/{tenant}",
        "Dashboard: active or why not, last sweep, counts, errors",
        None,
    ),
    (
        "get",
        "/api/tenants/{tenant}/checklist",
        "Preparation checklist with live results",
        None,
    ),
    (
        "post",
        "/api/tenants/{tenant}/checklist",
        "Confirm exactly the listed items",
        Some("ChecklistConfirm"),
    ),
    (
        "get",
        "/api/tenants/{tenant}/zendesk",
        "Zendesk connection (secrets masked)",
        None,
    ),
    (
        "post",
        "/api/tenants/{tenant}/zendesk",
        "Connect Zendesk with an API token (verified live)",
        Some("ZendeskToken"),
    ),
    (
        "post",
        "/api/tenants/{tenant}/zendesk/oauth",
        "Start Connect with OAuth: the authorize URL",
        Some("OAuthStart"),
    ),
    (
        "post",
        "/api/tenants/{tenant}/zendesk/oauth/finish",
        "Finish OAuth with the code and state",
        Some("OAuthFinish"),
    ),
    (
        "get",
        "/api/tenants/{tenant}/autotask",
        "Autotask connection (secrets masked)",
        None,
    ),
    (
        "post",
        "/api/tenants/{tenant}/autotask",
        "Verify and store Autotask credentials",
        Some("AutotaskCredentials"),
    ),
    (
        "get",
        "/api/tenants/{tenant}/connectwise",
        "ConnectWise connection and callback (keys masked)",
        None,
    ),
    (
        "post",
        "/api/tenants/{tenant}/connectwise",
        "Verify and store ConnectWise keys, site and company",
        Some("ConnectWiseCredentials"),
    ),
    (
        "post",
        "/api/tenants/{tenant}/connectwise/callback",
        "Register the ConnectWise ticket callback (idempotent)",
        None,
    ),
    (
        "get",
        "/api/tenants/{tenant}/mappings",
        "Mapping rows from live values, with suggestions (ConnectWise: ?board= picks the board whose statuses are offered)",
        None,
    ),
    (
        "post",
        "/api/tenants/{tenant}/mappings",
        "Save mappings (validated against live values)",
        Some("MappingsUpdate"),
    ),
    (
        "post",
        "/api/tenants/{tenant}/activate",
        "Run every check; activate when all pass",
        None,
    ),
    (
        "get",
        "/api/tenants/{tenant}/log",
        "Sync log (filters: level, ticket, since, until, limit)",
        None,
    ),
    (
        "post",
        "/api/tenants/{tenant}/sync",
        "Sweep this tenant now",
        None,
    ),
    (
        "get",
        "/api/tenants/{tenant}/dead-letters",
        "Dead-lettered jobs with reasons",
        None,
    ),
    (
        "post",
        "/api/tenants/{tenant}/dead-letters/{id}/replay",
        "Replay one dead-lettered job",
        None,
    ),
    (
        "get",
        "/api/tenants/{tenant}/webhooks",
        "Inbound webhook URLs and their secrets (masked)",
        None,
    ),
    (
        "post",
        "/api/tenants/{tenant}/webhooks/rotate",
        "Rotate an inbound secret (shown once)",
        Some("Rotate"),
    ),
    (
        "post",
        "/api/tenants/{tenant}/webhooks/register",
        "Register the webhooks the APIs allow (Zendesk's; Autotask's Ticket and TicketNote webhooks; ConnectWise's callback) and keep their secrets in the secrets store (idempotent; 422 says why not, the manual steps stay)",
        None,
    ),
    (
        "get",
        "/api/tenants/{tenant}/assets",
        "Asset sync: settings, the last run's summary and the last summary line",
        None,
    ),
    (
        "post",
        "/api/tenants/{tenant}/assets/check",
        "Check the asset setup: what the PSA lacks and where to create it (reads only)",
        None,
    ),
    (
        "post",
        "/api/tenants/{tenant}/assets/sync",
        "Run asset sync now; its summary (422 with the missing setup, nothing written)",
        None,
    ),
];

fn object(props: &[(&str, &str)], required: &[&str]) -> Value {
    let properties: Map<String, Value> = props
        .iter()
        .map(|(name, ty)| {
            let schema = match *ty {
                "string[]" => json!({"type": "array", "items": {"type": "string"}}),
                "integer[]" => json!({"type": "array", "items": {"type": "integer"}}),
                "map" => json!({"type": "object", "additionalProperties": {}}),
                ty => json!({ "type": ty }),
            };
            ((*name).to_owned(), schema)
        })
        .collect();
    json!({"type": "object", "properties": properties, "required": required})
}

fn schemas() -> Value {
    json!({
        "Login": object(&[("email", "string"), ("password", "string")], &["email", "password"]),
        "PasswordChange": object(&[("current_password", "string"), ("new_password", "string")], &["current_password", "new_password"]),
        "Forgot": object(&[("email", "string")], &["email"]),
        "Invitation": object(&[("email", "string"), ("tenant", "string")], &["email", "tenant"]),
        "NewTenant": object(&[("id", "string"), ("name", "string"), ("psa", "string"), ("zendesk_url", "string")], &["id", "name"]),
        "ChecklistConfirm": object(&[("confirmed", "string[]")], &["confirmed"]),
        "ZendeskToken": object(&[("base_url", "string"), ("email", "string"), ("token", "string")], &["base_url", "email"]),
        "OAuthStart": object(&[("base_url", "string")], &["base_url"]),
        "OAuthFinish": object(&[("code", "string"), ("state", "string")], &["code", "state"]),
        "AutotaskCredentials": object(&[("username", "string"), ("secret", "string"), ("integration_code", "string")], &["username"]),
        "ConnectWiseCredentials": object(&[
            ("region", "string"), ("site", "string"), ("company_id", "string"),
            ("public_key", "string"), ("private_key", "string"), ("client_id", "string"),
        ], &["company_id"]),
        "MappingsUpdate": object(&[
            ("queue_id", "integer"), ("status", "map"), ("priority", "map"),
            ("status_to_desk", "map"), ("priority_to_desk", "map"),
            ("public_note_publish", "integer[]"), ("internal_note_publish", "integer"),
            ("default_company_id", "integer"), ("companies", "map"),
        ], &[]),
        "Rotate": object(&[("kind", "string"), ("secret", "string")], &["kind"]),
        "Error": object(&[("error", "string"), ("code", "string"), ("retryable", "boolean")], &["error", "code"]),
    })
}

/// The document served at `GET /api/openapi.json`.
pub fn document() -> Value {
    let mut paths = Map::new();
    for (method, path, summary, body) in ROUTES {
        let mut op = json!({
            "summary": summary,
            "responses": {
                "200": {"description": "OK"},
                "default": {"description": "An error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
            },
        });
        let params: Vec<Value> = ["tenant", "id"]
            .iter()
            .filter(|p| path.contains(&format!("{{{p}}}")))
            .map(|p| json!({"name": p, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        let mut params = params;
        if *method == "get" && path.ends_with("/mappings") {
            params.push(json!({"name": "board", "in": "query", "required": false, "schema": {"type": "integer"}, "description": "ConnectWise service board whose statuses the rows offer (default: the stored board)"}));
        }
        if !params.is_empty() {
            op["parameters"] = Value::Array(params);
        }
        if let Some(schema) = body {
            op["requestBody"] = json!({"required": true, "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}});
        }
        if *method != "get" && !matches!(*path, "/api/login" | "/api/forgot") {
            op["security"] = json!([{"session": [], "csrf": []}]);
        }
        let entry = paths.entry((*path).to_owned()).or_insert_with(|| json!({}));
        entry[*method] = op;
    }
    json!({
        "openapi": "3.1.0",
        "info": {"title": "psa-bridge admin API", "version": env!("CARGO_PKG_VERSION")},
        "servers": [{"url": "/admin"}],
        "paths": paths,
        "components": {
            "schemas": schemas(),
            "securitySchemes": {
                "session": {"type": "apiKey", "in": "cookie", "name": crate::web::SESSION_COOKIE},
                "csrf": {"type": "apiKey", "in": "header", "name": crate::web::CSRF_HEADER},
            },
        },
    })
}

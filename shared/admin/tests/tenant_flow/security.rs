//! Tenant isolation and secrets through the router: another tenant's
//! routes answer 404, posts without a CSRF token change nothing, no secret
//! leaks into a response, a store item or the log, and the OpenAPI
//! document lists every API route.

use super::*;

/// Every tenant route of the API and the pages, with `{tenant}` to fill.
fn tenant_routes() -> Vec<(Method, String)> {
    let mut routes: Vec<(Method, String)> = admin::web::openapi::ROUTES
        .iter()
        .filter(|(_, path, _, _)| path.contains("{tenant}"))
        .map(|(m, p, _, _)| {
            (
                if *m == "get" {
                    Method::GET
                } else {
                    Method::POST
                },
                format!("/admin{}", p.replace("{id}", "x-m1")),
            )
        })
        .collect();
    for page in [
        "",
        "/checklist",
        "/zendesk",
        "/autotask",
        "/connectwise",
        "/mappings",
        "/mappings?board=1",
        "/log",
        "/dead-letters",
        "/webhooks",
        "/assets",
        "/zendesk/oauth/finish?code=c&state=s",
    ] {
        routes.push((Method::GET, format!("/admin/tenants/{{tenant}}{page}")));
    }
    for post in [
        "/activate",
        "/sync",
        "/checklist",
        "/zendesk",
        "/zendesk/oauth",
        "/autotask",
        "/connectwise",
        "/connectwise/callback",
        "/mappings",
        "/dead-letters/x-m1/replay",
        "/webhooks/rotate",
        "/assets/check",
        "/assets/sync",
    ] {
        routes.push((Method::POST, format!("/admin/tenants/{{tenant}}{post}")));
    }
    routes
}

#[tokio::test]
async fn a_tenant_admin_gets_404_on_every_route_of_another_tenant() {
    let w = world().await;
    let h = &w.h;
    let a = tenant_with_admin(h, "acme").await;
    let _b = tenant_with_admin(h, "globex").await;
    for (method, path) in tenant_routes() {
        let path = path.replace("{tenant}", "globex");
        let resp = if path.starts_with("/admin/api/") {
            call(
                h,
                &a,
                method.clone(),
                &path,
                (method == Method::POST).then(|| json!({})),
            )
            .await
        } else if method == Method::POST {
            h.form(&path, Some(&a.0), &[("csrf", &a.1)]).await
        } else {
            h.get(&path, Some(&a.0)).await
        };
        assert_eq!(
            resp.status,
            StatusCode::NOT_FOUND,
            "{method} {path}: {}",
            resp.body
        );
        assert!(!resp.body.contains("globex Ltd"), "{path}");
    }
    let list = call(h, &a, Method::GET, "/admin/api/tenants", None)
        .await
        .json();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["id"], "acme");
    let resp = call(
        h,
        &a,
        Method::POST,
        "/admin/api/tenants",
        Some(json!({"id": "x", "name": "X"})),
    )
    .await;
    assert_eq!(resp.status, StatusCode::FORBIDDEN);
    assert!(w.ops.swept.lock().unwrap().is_empty() && w.ops.replayed.lock().unwrap().is_empty());
    assert!(
        !w.assets.called(),
        "no asset check or run for another tenant"
    );
}

#[tokio::test]
async fn tenant_posts_without_a_csrf_token_are_403_and_change_nothing() {
    let w = world().await;
    let h = &w.h;
    let a = tenant_with_admin(h, "acme").await;
    let before = h.items().await;
    for (method, path) in tenant_routes() {
        if method != Method::POST {
            continue;
        }
        let path = path.replace("{tenant}", "acme");
        let resp = if path.starts_with("/admin/api/") {
            h.api(Method::POST, &path, Some(&a.0), None, Some(json!({})))
                .await
        } else {
            h.form(&path, Some(&a.0), &[("confirmed", "callout")]).await
        };
        assert_eq!(resp.status, StatusCode::FORBIDDEN, "{path}: {}", resp.body);
    }
    let op = h.api_login(OPERATOR, OPERATOR_PASSWORD).await;
    let resp = h
        .api(
            Method::POST,
            "/admin/api/tenants",
            Some(&op.0),
            None,
            Some(json!({"id": "x", "name": "X"})),
        )
        .await;
    assert_eq!(resp.status, StatusCode::FORBIDDEN);
    let after: Vec<String> = h
        .items()
        .await
        .into_iter()
        .filter(|i| !i.starts_with("SESSION#"))
        .collect();
    let before: Vec<String> = before
        .into_iter()
        .filter(|i| !i.starts_with("SESSION#"))
        .collect();
    assert_eq!(before, after);
    assert!(w.ops.swept.lock().unwrap().is_empty());
    assert!(
        !w.assets.called(),
        "no asset check or run without a CSRF token"
    );
}

#[tokio::test]
async fn no_secret_in_any_response_store_item_or_log_line_after_onboarding() {
    let w = world().await;
    let admin = onboard(&w, "acme").await;
    let h = &w.h;
    for path in [
        "",
        "/checklist",
        "/zendesk",
        "/autotask",
        "/mappings",
        "/webhooks",
    ] {
        h.get(&format!("/admin/tenants/acme{path}"), Some(&admin.0))
            .await;
        call(
            h,
            &admin,
            Method::GET,
            &format!("/admin/api/tenants/acme{path}"),
            None,
        )
        .await;
    }
    let mut secrets = w.secrets.values();
    secrets.extend([
        OAUTH_CLIENT_SECRET.to_owned(),
        "wrong-secret-000".to_owned(),
    ]);
    let rotated = w.secrets.stored.lock().unwrap()["acme"]
        .autotask_webhook_secret
        .expose()
        .to_owned();
    let seen = h.seen.lock().unwrap().clone();
    let items = h.items().await;
    let logs = String::from_utf8(logs().lock().unwrap().clone()).unwrap();
    for secret in &secrets {
        // The rotated secret is shown once, in the rotation's own answer.
        let shown_in: Vec<&String> = seen
            .iter()
            .filter(|r| r.contains(secret.as_str()))
            .collect();
        let allowed = if *secret == rotated { 1 } else { 0 };
        assert!(
            shown_in.len() <= allowed,
            "{secret} in responses: {shown_in:?}"
        );
        assert!(
            !items.iter().any(|i| i.contains(secret.as_str())),
            "{secret} in a store item"
        );
        assert!(!logs.contains(secret.as_str()), "{secret} in the log");
    }
}

#[tokio::test]
async fn openapi_lists_every_api_route_and_a_missing_port_is_not_available() {
    let w = world().await;
    let h = &w.h;
    let op = h.api_login(OPERATOR, OPERATOR_PASSWORD).await;
    let doc = call(h, &op, Method::GET, "/admin/api/openapi.json", None)
        .await
        .json();
    let paths = doc["paths"].as_object().unwrap();
    for path in [
        "/api/login",
        "/api/me",
        "/api/invitations",
        "/api/tenants",
        "/api/tenants/{tenant}/mappings",
        "/api/tenants/{tenant}/connectwise",
        "/api/tenants/{tenant}/connectwise/callback",
        "/api/tenants/{tenant}/dead-letters/{id}/replay",
        "/api/tenants/{tenant}/assets",
        "/api/tenants/{tenant}/assets/check",
        "/api/tenants/{tenant}/assets/sync",
        "/api/openapi.json",
    ] {
        assert!(paths.contains_key(path), "{path}");
    }
    // Every listed route answers (not 405/404 from the router itself).
    for (method, path, _, _) in admin::web::openapi::ROUTES {
        let path = format!(
            "/admin{}",
            path.replace("{tenant}", "nosuch").replace("{id}", "x")
        );
        let method = if *method == "get" {
            Method::GET
        } else {
            Method::POST
        };
        let resp = call(
            h,
            &op,
            method.clone(),
            &path,
            (method == Method::POST).then(|| json!({})),
        )
        .await;
        assert_ne!(resp.status, StatusCode::METHOD_NOT_ALLOWED, "{path}");
        if resp.status == StatusCode::NOT_FOUND {
            assert_eq!(resp.json()["code"], "not_found", "{path} is routed");
        }
    }

    // A console without ports still creates tenants; live pages say why not.
    let bare = Harness::new().await;
    let op = bare.api_login(OPERATOR, OPERATOR_PASSWORD).await;
    call(
        &bare,
        &op,
        Method::POST,
        "/admin/api/tenants",
        Some(json!({"id": "acme", "name": "Acme"})),
    )
    .await;
    let resp = call(
        &bare,
        &op,
        Method::GET,
        "/admin/api/tenants/acme/dead-letters",
        None,
    )
    .await;
    assert_eq!(resp.status, StatusCode::NOT_IMPLEMENTED);
    assert!(resp.body.contains("not available in this deployment"));
    let page = bare
        .get("/admin/tenants/acme/dead-letters", Some(&op.0))
        .await;
    assert!(
        page.body.contains("not available in this deployment"),
        "{}",
        page.body
    );
    let resp = call(
        &bare,
        &op,
        Method::POST,
        "/admin/api/tenants",
        Some(json!({"id": "cw", "name": "CW", "psa": "connectwise"})),
    )
    .await;
    assert_eq!(resp.status, StatusCode::CREATED, "{}", resp.body);
    assert_eq!(resp.json()["psa"], "connectwise");
    let resp = call(
        &bare,
        &op,
        Method::GET,
        "/admin/api/tenants/cw/connectwise",
        None,
    )
    .await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.body);
    assert_eq!(resp.json()["private_key"], "not set");
    let resp = call(
        &bare,
        &op,
        Method::POST,
        "/admin/api/tenants",
        Some(json!({"id": "halo", "name": "Halo", "psa": "halopsa"})),
    )
    .await;
    assert_eq!(resp.status, StatusCode::UNPROCESSABLE_ENTITY);
}

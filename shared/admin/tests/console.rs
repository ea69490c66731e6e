//! The console through its real HTTP layer (see `support` for the harness).

mod support;
mod tenant_flow;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use bridge::ports::Store;
use serde_json::json;

use support::{cookie_has_security_attributes, logs, Harness, Resp, OPERATOR, OPERATOR_PASSWORD};

// ---- tests ---------------------------------------------------------------

#[tokio::test]
async fn invite_then_forced_password_change_then_sign_in_with_the_new_password() {
    let h = Harness::new().await;

    // The operator invites through the pages.
    let resp = h
        .form(
            "/admin/login",
            None,
            &[("email", OPERATOR), ("password", OPERATOR_PASSWORD)],
        )
        .await;
    assert_eq!(resp.status, StatusCode::SEE_OTHER);
    assert_eq!(resp.location(), "/admin");
    let operator = resp.session();
    let home = h.get("/admin", Some(&operator)).await;
    assert_eq!(home.status, StatusCode::OK);
    assert!(
        home.body.contains("an <strong>operator</strong>"),
        "{}",
        home.body
    );
    let form = h.get("/admin/invite", Some(&operator)).await;
    let csrf = form.csrf_field();
    let resp = h
        .form(
            "/admin/invite",
            Some(&operator),
            &[
                ("csrf", &csrf),
                ("email", "Ann@Acme.example"),
                ("tenant", "acme"),
            ],
        )
        .await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.body);
    assert!(resp.body.contains("Invitation mailed to ann@acme.example"));

    // The mail holds the temporary password; signing in with it leads to
    // the password change, and every other page leads there too.
    let temp = h.temp_password_mailed_to("ann@acme.example");
    let resp = h
        .form(
            "/admin/login",
            None,
            &[("email", "ann@acme.example"), ("password", &temp)],
        )
        .await;
    assert_eq!(resp.status, StatusCode::SEE_OTHER);
    assert_eq!(resp.location(), "/admin/password");
    let ann = resp.session();
    for page in ["/admin", "/admin/invite"] {
        let resp = h.get(page, Some(&ann)).await;
        assert_eq!(resp.status, StatusCode::SEE_OTHER, "{page}");
        assert_eq!(resp.location(), "/admin/password", "{page}");
    }
    let me = h.get("/admin/api/me", Some(&ann)).await.json();
    assert_eq!(me["must_change_password"], true);
    let resp = h
        .api(
            Method::POST,
            "/admin/api/invitations",
            Some(&ann),
            Some(me["csrf_token"].as_str().unwrap()),
            Some(json!({"email": "x@acme.example", "tenant": "acme"})),
        )
        .await;
    assert_eq!(resp.status, StatusCode::FORBIDDEN);
    assert_eq!(resp.json()["code"], "must_change_password");

    // Too short first, then a good one.
    let page = h.get("/admin/password", Some(&ann)).await;
    assert!(page.body.contains("Choose your own password"));
    let csrf = page.csrf_field();
    let resp = h
        .form(
            "/admin/password",
            Some(&ann),
            &[
                ("csrf", &csrf),
                ("current_password", &temp),
                ("new_password", "short"),
                ("confirm_password", "short"),
            ],
        )
        .await;
    assert_eq!(resp.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(resp.body.contains("at least 12 characters"));
    let new_password = "ann-chose-this-one";
    let resp = h
        .form(
            "/admin/password",
            Some(&ann),
            &[
                ("csrf", &csrf),
                ("current_password", &temp),
                ("new_password", new_password),
                ("confirm_password", new_password),
            ],
        )
        .await;
    assert_eq!(resp.status, StatusCode::SEE_OTHER, "{}", resp.body);
    assert_eq!(resp.location(), "/admin");
    let renewed = resp.session();
    assert_ne!(renewed, ann, "a password change opens a new session");
    assert_eq!(
        h.get("/admin", Some(&ann)).await.location(),
        "/admin/login",
        "the session from before the change is over"
    );
    let home = h.get("/admin", Some(&renewed)).await;
    assert_eq!(home.status, StatusCode::OK);
    assert!(
        home.body.contains(r#"<strong id="tenant">acme</strong>"#),
        "{}",
        home.body
    );

    // Sign out, in again with the new password; the mailed one is spent.
    let resp = h
        .form(
            "/admin/logout",
            Some(&renewed),
            &[("csrf", &home.csrf_field())],
        )
        .await;
    assert_eq!(resp.location(), "/admin/login");
    let resp = h
        .api(
            Method::POST,
            "/admin/api/login",
            None,
            None,
            Some(json!({"email": "ann@acme.example", "password": temp})),
        )
        .await;
    assert_eq!(resp.status, StatusCode::UNAUTHORIZED);
    let (cookie, _) = h.api_login("ann@acme.example", new_password).await;
    let me = h.get("/admin/api/me", Some(&cookie)).await.json();
    assert_eq!(me["must_change_password"], false);
    assert_eq!(me["role"], "tenant_admin");
    assert_eq!(me["tenant"], "acme");
}

#[tokio::test]
async fn missing_or_wrong_csrf_is_403_and_changes_nothing() {
    let h = Harness::new().await;
    let (cookie, csrf) = h.api_login(OPERATOR, OPERATOR_PASSWORD).await;
    let invite = json!({"email": "bob@globex.example", "tenant": "globex"});

    for token in [None, Some("wrong-token"), Some("")] {
        let resp = h
            .api(
                Method::POST,
                "/admin/api/invitations",
                Some(&cookie),
                token,
                Some(invite.clone()),
            )
            .await;
        assert_eq!(resp.status, StatusCode::FORBIDDEN, "{token:?}");
        assert_eq!(resp.json()["code"], "csrf");
    }
    for token in [None, Some("wrong-token")] {
        let csrf: Vec<(&str, &str)> = token.map(|t| ("csrf", t)).into_iter().collect();
        let mut invite = csrf.clone();
        invite.extend([("email", "bob@globex.example"), ("tenant", "globex")]);
        let resp = h.form("/admin/invite", Some(&cookie), &invite).await;
        assert_eq!(resp.status, StatusCode::FORBIDDEN, "{token:?}");
        let resp = h.form("/admin/logout", Some(&cookie), &csrf).await;
        assert_eq!(resp.status, StatusCode::FORBIDDEN, "{token:?}");
    }
    assert!(h.mails_to("bob@globex.example").is_empty());
    assert_eq!(
        h.get("/admin/api/me", Some(&cookie)).await.status,
        StatusCode::OK
    );

    // The right token passes.
    let resp = h
        .api(
            Method::POST,
            "/admin/api/invitations",
            Some(&cookie),
            Some(&csrf),
            Some(invite),
        )
        .await;
    assert_eq!(resp.status, StatusCode::CREATED);

    // Without a session, a state change is refused before any handler.
    let resp = h
        .api(Method::POST, "/admin/api/logout", None, Some(&csrf), None)
        .await;
    assert_eq!(resp.status, StatusCode::UNAUTHORIZED);

    // The session-less login form: refused when a browser says another site sent it.
    let login = serde_urlencoded::to_string([("email", OPERATOR), ("password", OPERATOR_PASSWORD)])
        .unwrap();
    for (name, value, expected) in [
        ("origin", "https://evil.example", StatusCode::FORBIDDEN),
        ("sec-fetch-site", "cross-site", StatusCode::FORBIDDEN),
        ("origin", "http://localhost", StatusCode::SEE_OTHER),
        ("sec-fetch-site", "same-origin", StatusCode::SEE_OTHER),
    ] {
        let req = Request::post("/admin/login")
            .header(header::HOST, "localhost")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(name, value)
            .body(Body::from(login.clone()))
            .unwrap();
        assert_eq!(h.send(req).await.status, expected, "{name}: {value}");
    }
}

#[tokio::test]
async fn five_failures_lock_the_account_for_fifteen_minutes() {
    let h = Harness::new().await;
    let attempt = |password: &'static str| {
        let h = &h;
        async move {
            h.api(
                Method::POST,
                "/admin/api/login",
                None,
                None,
                Some(json!({"email": OPERATOR, "password": password})),
            )
            .await
        }
    };
    let unknown = h
        .api(
            Method::POST,
            "/admin/api/login",
            None,
            None,
            Some(json!({"email": "nobody@example.com", "password": "whatever-it-is"})),
        )
        .await;
    assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);
    h.pause.0.lock().unwrap().clear();

    for _ in 0..5 {
        let resp = attempt("not-the-password").await;
        assert_eq!(resp.status, StatusCode::UNAUTHORIZED);
        assert_eq!(resp.body, unknown.body, "one answer for every failure");
    }
    let locked = attempt(OPERATOR_PASSWORD).await;
    assert_eq!(locked.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        locked.body, unknown.body,
        "a locked account answers the same"
    );
    let ms: Vec<u128> = h
        .pause
        .0
        .lock()
        .unwrap()
        .iter()
        .map(|d| d.as_millis())
        .collect();
    assert_eq!(
        ms,
        [250, 500, 1000, 2000, 4000, 4000],
        "delays grow with failures"
    );

    h.clock.advance(chrono::Duration::minutes(14));
    assert_eq!(
        attempt(OPERATOR_PASSWORD).await.status,
        StatusCode::UNAUTHORIZED
    );
    h.clock.advance(chrono::Duration::minutes(1));
    assert_eq!(attempt(OPERATOR_PASSWORD).await.status, StatusCode::OK);
    // The count starts over after a success.
    attempt("not-the-password").await;
    assert_eq!(attempt(OPERATOR_PASSWORD).await.status, StatusCode::OK);
}

#[tokio::test]
async fn forgot_password_answers_alike_and_its_temporary_password_works_beside_for_30_minutes() {
    let h = Harness::new().await;
    let strip_date = |r: &Resp| {
        let mut headers = r.headers.clone();
        headers.remove(header::DATE);
        (r.status, format!("{headers:?}"), r.body.clone())
    };
    for email in [OPERATOR, "nobody@example.com"] {
        assert!(h.mails_to(email).is_empty());
    }
    let api = |email: &'static str| {
        let h = &h;
        async move {
            h.api(
                Method::POST,
                "/admin/api/forgot",
                None,
                None,
                Some(json!({"email": email})),
            )
            .await
        }
    };
    let known = api(OPERATOR).await;
    let unknown = api("nobody@example.com").await;
    assert_eq!(known.status, StatusCode::ACCEPTED);
    assert_eq!(strip_date(&known), strip_date(&unknown));
    let known_page = h.form("/admin/forgot", None, &[("email", OPERATOR)]).await;
    let unknown_page = h
        .form("/admin/forgot", None, &[("email", "nobody@example.com")])
        .await;
    assert_eq!(known_page.status, StatusCode::OK);
    assert_eq!(strip_date(&known_page), strip_date(&unknown_page));
    assert!(known_page.set_cookie().is_none());

    assert_eq!(h.mails_to(OPERATOR).len(), 2);
    assert!(h.mails_to("nobody@example.com").is_empty());
    let temp = h.temp_password_mailed_to(OPERATOR);

    // Both passwords work; the temporary one then asks for a new password.
    let (cookie, _) = h.api_login(OPERATOR, OPERATOR_PASSWORD).await;
    assert_eq!(
        h.get("/admin/api/me", Some(&cookie)).await.json()["must_change_password"],
        false
    );
    let (cookie, _) = h.api_login(OPERATOR, &temp).await;
    assert_eq!(
        h.get("/admin/api/me", Some(&cookie)).await.json()["must_change_password"],
        true
    );

    // A second request replaced the first mail's password.
    let first_mail = h.mails_to(OPERATOR)[0].clone();
    assert!(!first_mail.contains(&temp));
    let marker = "temporary password: ";
    let start = first_mail.find(marker).unwrap() + marker.len();
    let replaced = first_mail[start..].split_whitespace().next().unwrap();
    let resp = h
        .api(
            Method::POST,
            "/admin/api/login",
            None,
            None,
            Some(json!({"email": OPERATOR, "password": replaced})),
        )
        .await;
    assert_eq!(resp.status, StatusCode::UNAUTHORIZED);

    // Still good at 29 minutes, gone at 30.
    h.clock.advance(chrono::Duration::minutes(29));
    let (_, _) = h.api_login(OPERATOR, &temp).await;
    h.clock.advance(chrono::Duration::minutes(1));
    let late = h
        .api(
            Method::POST,
            "/admin/api/login",
            None,
            None,
            Some(json!({"email": OPERATOR, "password": temp})),
        )
        .await;
    assert_eq!(
        late.status,
        StatusCode::UNAUTHORIZED,
        "expired after 30 minutes"
    );
    h.api_login(OPERATOR, OPERATOR_PASSWORD).await;
}

#[tokio::test]
async fn sessions_rotate_at_login_end_at_logout_and_expire() {
    let h = Harness::new().await;
    let (first, _) = h.api_login(OPERATOR, OPERATOR_PASSWORD).await;
    // Signing in again from the same browser (which presents its cookie).
    let resp = h
        .api(
            Method::POST,
            "/admin/api/login",
            Some(&first),
            None,
            Some(json!({"email": OPERATOR, "password": OPERATOR_PASSWORD})),
        )
        .await;
    assert_eq!(resp.status, StatusCode::OK);
    let second = resp.session();
    let csrf = resp.json()["csrf_token"].as_str().unwrap().to_owned();
    assert_ne!(first, second, "a new token at every login");
    assert_eq!(
        h.get("/admin/api/me", Some(&first)).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        h.get("/admin/api/me", Some(&second)).await.status,
        StatusCode::OK
    );
    assert_eq!(h.store.scan_sort_key("SESSION").await.unwrap().len(), 1);

    let out = h
        .api(
            Method::POST,
            "/admin/api/logout",
            Some(&second),
            Some(&csrf),
            None,
        )
        .await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    assert!(out.set_cookie().unwrap().contains("Max-Age=0"));
    assert_eq!(
        h.get("/admin/api/me", Some(&second)).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert!(h.store.scan_sort_key("SESSION").await.unwrap().is_empty());
    assert_eq!(
        h.get("/admin", Some(&second)).await.location(),
        "/admin/login"
    );

    let (third, _) = h.api_login(OPERATOR, OPERATOR_PASSWORD).await;
    h.clock.advance(chrono::Duration::hours(8));
    assert_eq!(
        h.get("/admin/api/me", Some(&third)).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn session_cookie_is_httponly_secure_samesite_strict_on_the_admin_path() {
    let h = Harness::new().await;
    let page = h
        .form(
            "/admin/login",
            None,
            &[("email", OPERATOR), ("password", OPERATOR_PASSWORD)],
        )
        .await;
    cookie_has_security_attributes(page.set_cookie().unwrap());
    let api = h
        .api(
            Method::POST,
            "/admin/api/login",
            None,
            None,
            Some(json!({"email": OPERATOR, "password": OPERATOR_PASSWORD})),
        )
        .await;
    let set = api.set_cookie().unwrap();
    cookie_has_security_attributes(set);
    assert!(set.contains("Max-Age=28800"), "{set}");
    assert_eq!(api.headers.get_all(header::SET_COOKIE).iter().count(), 1);
    assert_eq!(api.headers.get(header::CACHE_CONTROL).unwrap(), "no-store");
    // The login page sets no cookie before a login.
    assert!(h.get("/admin/login", None).await.set_cookie().is_none());
}

#[tokio::test]
async fn a_tenant_admin_gets_404_for_another_tenant_and_cannot_invite() {
    let h = Harness::new().await;
    let temp = h.invite("ann@acme.example", "acme").await;
    let (cookie, csrf) = h.api_login("ann@acme.example", &temp).await;
    let resp = h
        .api(
            Method::POST,
            "/admin/api/password",
            Some(&cookie),
            Some(&csrf),
            Some(json!({"current_password": temp, "new_password": "ann-chose-this-one"})),
        )
        .await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.body);
    let ann = resp.session();
    let csrf = resp.json()["csrf_token"].as_str().unwrap().to_owned();

    let own = h.get("/admin/api/tenants/acme/probe", Some(&ann)).await;
    assert_eq!(
        (own.status, own.body.as_str()),
        (StatusCode::OK, "tenant acme")
    );
    let other = h.get("/admin/api/tenants/globex/probe", Some(&ann)).await;
    assert_eq!(other.status, StatusCode::NOT_FOUND);
    let malformed = h.get("/admin/api/tenants/NOPE/probe", Some(&ann)).await;
    assert_eq!(
        other.body, malformed.body,
        "another tenant looks like no tenant"
    );

    let (operator, _) = h.api_login(OPERATOR, OPERATOR_PASSWORD).await;
    let resp = h
        .get("/admin/api/tenants/globex/probe", Some(&operator))
        .await;
    assert_eq!(resp.status, StatusCode::OK, "operators see every tenant");
    let anonymous = h.get("/admin/api/tenants/acme/probe", None).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);

    let resp = h
        .api(
            Method::POST,
            "/admin/api/invitations",
            Some(&ann),
            Some(&csrf),
            Some(json!({"email": "eve@globex.example", "tenant": "globex"})),
        )
        .await;
    assert_eq!(resp.status, StatusCode::FORBIDDEN);
    assert_eq!(resp.json()["code"], "operator_only");
    assert_eq!(
        h.get("/admin/invite", Some(&ann)).await.status,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn operators_are_created_once_with_a_long_enough_password() {
    let h = Harness::new().await;
    let accounts = h.state.accounts();
    assert!(matches!(
        accounts.create_operator(OPERATOR, "another-password").await,
        Err(admin::AdminError::UserExists)
    ));
    assert!(matches!(
        accounts
            .create_operator("OPS@Example.com ", "another-password")
            .await,
        Err(admin::AdminError::UserExists)
    ));
    assert!(matches!(
        accounts
            .create_operator("new@example.com", "too-short")
            .await,
        Err(admin::AdminError::Invalid(_))
    ));
    let resp = h.get("/admin/api/me", None).await;
    assert_eq!(resp.json()["code"], "unauthenticated");
    let (cookie, csrf) = h.api_login(OPERATOR, OPERATOR_PASSWORD).await;
    let resp = h
        .api(
            Method::POST,
            "/admin/api/invitations",
            Some(&cookie),
            Some(&csrf),
            Some(json!({"email": OPERATOR, "tenant": "acme"})),
        )
        .await;
    assert_eq!(resp.status, StatusCode::CONFLICT);
}

#[tokio::test]
async fn no_password_or_token_in_any_response_store_item_or_log_line() {
    let h = Harness::new().await;
    let temp = h.invite("ann@acme.example", "acme").await;
    let (cookie, csrf) = h.api_login("ann@acme.example", &temp).await;
    let chosen = "ann-chose-this-one";
    let resp = h
        .api(
            Method::POST,
            "/admin/api/password",
            Some(&cookie),
            Some(&csrf),
            Some(json!({"current_password": temp, "new_password": chosen})),
        )
        .await;
    assert_eq!(resp.status, StatusCode::OK);
    let renewed = resp.session();
    h.api(
        Method::POST,
        "/admin/api/forgot",
        None,
        None,
        Some(json!({"email": "ann@acme.example"})),
    )
    .await;
    let reset_temp = h.temp_password_mailed_to("ann@acme.example");
    h.api_login("ann@acme.example", &reset_temp).await;
    // Failures and lockouts log too.
    for _ in 0..6 {
        h.api(
            Method::POST,
            "/admin/api/login",
            None,
            None,
            Some(json!({"email": "ann@acme.example", "password": "wrong-password-1"})),
        )
        .await;
    }
    h.form(
        "/admin/login",
        None,
        &[("email", OPERATOR), ("password", OPERATOR_PASSWORD)],
    )
    .await;

    let tokens: Vec<String> = [cookie, renewed]
        .iter()
        .map(|c| c.trim_start_matches("psab_session=").to_owned())
        .collect();
    let secrets: Vec<&str> = [
        OPERATOR_PASSWORD,
        temp.as_str(),
        chosen,
        reset_temp.as_str(),
        "wrong-password-1",
    ]
    .into_iter()
    .chain(tokens.iter().map(String::as_str))
    .collect();
    let responses = h.seen.lock().unwrap().join("\n");
    let items = h.items().await.join("\n");
    assert!(items.contains("$argon2id$"), "hashes are stored: {items}");
    let logs = String::from_utf8(logs().lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("mail written to the outbox"),
        "logs are captured"
    );
    for secret in &secrets {
        assert!(!responses.contains(secret), "a response holds a secret");
        assert!(!items.contains(secret), "a store item holds a secret");
        assert!(!logs.contains(secret), "a log line holds a secret");
    }
}

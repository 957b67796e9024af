//! End to end in real headless Chromium: setup → sign-out → sign-in → invite → (the invitee
//! accepts) → role change in a second tab that the first tab sees live → audit log → verify.

use crate::harness::{TestServer, PASSWORD};
use crate::webdriver::Browser;
use serde_json::json;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(10);

async fn wait_for_url(b: &Browser, suffix: &str) {
    let started = std::time::Instant::now();
    loop {
        let url = b.current_url().await.unwrap();
        if url.ends_with(suffix) {
            return;
        }
        assert!(started.elapsed() < WAIT, "expected URL ending {suffix}, still at {url}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn wait_for_script(b: &Browser, script: &str, expected: serde_json::Value) {
    let started = std::time::Instant::now();
    loop {
        let v = b.execute(script, vec![]).await.unwrap();
        if v == expected {
            return;
        }
        assert!(started.elapsed() < WAIT, "{script} gave {v}, expected {expected}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_sign_in_invite_role_change_and_audit_in_chromium() {
    let ts = TestServer::boot().await;
    let b = Browser::launch().await.expect("chromium and chromedriver must be installed (scripts/test.sh does it)");

    // First run: the printed setup link.
    b.goto(&ts.url(&format!("/setup?token={}", ts.setup_token()))).await.unwrap();
    b.find("#setup-name").await.unwrap().send_keys("Olive Owner").await.unwrap();
    b.find("#setup-email").await.unwrap().send_keys("owner@example.com").await.unwrap();
    b.find("#setup-password").await.unwrap().send_keys(PASSWORD).await.unwrap();
    b.find("#setup-form button[type=submit]").await.unwrap().click().await.unwrap();
    wait_for_url(&b, "/dashboard/default").await;
    b.wait_for_text("main h1", "Default", WAIT).await.unwrap();

    // Sign out, then sign in through the form; a wrong password first shows the error.
    b.find("button[data-action='POST /api/auth/sign-out']").await.unwrap().click().await.unwrap();
    wait_for_url(&b, "/sign-in").await;
    b.find("#sign-in-email").await.unwrap().send_keys("owner@example.com").await.unwrap();
    b.find("#sign-in-password").await.unwrap().send_keys("Wrong-password-1").await.unwrap();
    b.find("#sign-in-form button[type=submit]").await.unwrap().click().await.unwrap();
    b.wait_for_text("#sign-in-form .form-error", "invalid email or password", WAIT).await.unwrap();
    // So far the only console entry is the network log of that deliberate 401.
    let errors = b.console_errors().await.unwrap();
    assert!(errors.iter().all(|e| e.contains("/api/auth/sign-in") && e.contains("401")), "console errors: {errors:?}");
    let pw = b.find("#sign-in-password").await.unwrap();
    pw.clear().await.unwrap();
    pw.send_keys(PASSWORD).await.unwrap();
    b.find("#sign-in-form button[type=submit]").await.unwrap().click().await.unwrap();
    wait_for_url(&b, "/dashboard/default").await;

    // Invite someone as Editor; the link is shown to the inviter.
    b.goto(&ts.url("/dashboard/default/members")).await.unwrap();
    b.find("#invite-email").await.unwrap().send_keys("eve@example.com").await.unwrap();
    b.execute("const s = document.querySelector('#invite-role'); s.value = 'editor'; return s.value;", vec![]).await.unwrap();
    b.find("#invite-form button[type=submit]").await.unwrap().click().await.unwrap();
    wait_for_script(&b, "return document.querySelector('#invite-result').hidden;", json!(false)).await;
    let link = b.execute("return document.querySelector('#invite-link').value;", vec![]).await.unwrap();
    let link = link.as_str().unwrap().to_owned();
    assert!(link.contains("/invite/"), "{link}");
    b.wait_for_text("#invitations", "eve@example.com", WAIT).await.unwrap();

    // The invitee accepts from their own device; this tab updates live.
    let token = link.rsplit('/').next().unwrap();
    let r = ts.anonymous().post(&format!("/api/invitations/{token}/accept"), json!({"name": "Eve", "password": PASSWORD})).await;
    assert_eq!(r.status(), 200);
    b.wait_for_text("#members", "eve@example.com", WAIT).await.unwrap();
    let first_tab = b.window_handles().await.unwrap()[0].clone();

    // A second tab changes Eve's role; the first tab follows without reloading.
    let marker = "return document.querySelector('#members').dataset.marker = 'first-render';";
    b.execute(marker, vec![]).await.unwrap();
    let second = b.new_window().await.unwrap();
    b.switch_to(&second).await.unwrap();
    b.goto(&ts.url("/dashboard/default/members")).await.unwrap();
    b.find("tr[data-email='eve@example.com'] select").await.unwrap();
    b.execute(
        "const s = document.querySelector(\"tr[data-email='eve@example.com'] select\"); s.value = 'developer'; s.dispatchEvent(new Event('change', {bubbles: true})); return true;",
        vec![],
    )
    .await
    .unwrap();
    b.wait_for_text("#toast", "Role changed", WAIT).await.unwrap();
    b.switch_to(&first_tab).await.unwrap();
    wait_for_script(&b, "return document.querySelector(\"tr[data-email='eve@example.com'] select\").value;", json!("developer")).await;
    let url = b.current_url().await.unwrap();
    assert!(url.ends_with("/dashboard/default/members"), "no navigation happened: {url}");

    // The audit log shows all of it, and the chain verifies.
    b.goto(&ts.url("/dashboard/default/audit")).await.unwrap();
    for action in ["setup_completed", "sign_in_failed", "member_invited", "invitation_accepted", "role_changed"] {
        b.wait_for_text("#audit-entries", action, WAIT).await.unwrap();
    }
    b.find("#verify-audit").await.unwrap().click().await.unwrap();
    b.wait_for_text("#verify-result", "Intact", WAIT).await.unwrap();

    // Filtering by category keeps only matching rows.
    b.goto(&ts.url("/dashboard/default/audit?category=member")).await.unwrap();
    let auth_rows = b.execute("return document.querySelectorAll(\"#audit-entries tr[data-action^='sign_in']\").length;", vec![]).await.unwrap();
    assert_eq!(auth_rows, json!(0));

    let errors = b.console_errors().await.unwrap();
    assert!(errors.is_empty(), "console errors: {errors:?}");
    b.quit().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_settings_and_password_forms_in_chromium() {
    let ts = TestServer::boot().await;
    let owner = ts.owner().await;
    let b = Browser::launch().await.expect("chromium and chromedriver must be installed (scripts/test.sh does it)");
    b.goto(&ts.url("/sign-in")).await.unwrap();
    b.find("#sign-in-email").await.unwrap().send_keys(&owner.email).await.unwrap();
    b.find("#sign-in-password").await.unwrap().send_keys(PASSWORD).await.unwrap();
    b.find("#sign-in-form button[type=submit]").await.unwrap().click().await.unwrap();
    wait_for_url(&b, "/dashboard/default").await;

    // A new API key is shown once, works as a Bearer token, and appears in the list.
    b.goto(&ts.url("/dashboard/default/api-keys")).await.unwrap();
    b.find("#key-name").await.unwrap().send_keys("nightly export").await.unwrap();
    b.find("#key-form button[type=submit]").await.unwrap().click().await.unwrap();
    wait_for_script(&b, "return document.querySelector('#new-key').hidden;", json!(false)).await;
    let secret = b.execute("return document.querySelector('#new-key-secret').value;", vec![]).await.unwrap();
    let secret = secret.as_str().unwrap().to_owned();
    assert!(secret.starts_with("tale_"), "{secret}");
    b.wait_for_text("#api-keys", "nightly export", WAIT).await.unwrap();
    let me = reqwest::Client::new().get(ts.url("/api/me")).bearer_auth(&secret).send().await.unwrap();
    assert_eq!(me.status(), 200);

    // Settings: numbers, checkboxes and the comma list round-trip through the form.
    b.goto(&ts.url("/dashboard/default/settings")).await.unwrap();
    let min = b.find("#s-min").await.unwrap();
    min.clear().await.unwrap();
    min.send_keys("10").await.unwrap();
    b.find("#s-special").await.unwrap().click().await.unwrap();
    let backoff = b.find("#s-backoff").await.unwrap();
    backoff.clear().await.unwrap();
    backoff.send_keys("2, 20, 200").await.unwrap();
    b.find("#settings-form button[type=submit]").await.unwrap().click().await.unwrap();
    b.wait_for_text("#toast", "Settings saved", WAIT).await.unwrap();
    let (_, saved) = owner.json(reqwest::Method::GET, "/api/orgs/default/settings", None).await;
    assert_eq!(saved["passwordPolicy"]["minLength"], 10);
    assert_eq!(saved["passwordPolicy"]["requireSpecial"], true);
    assert_eq!(saved["loginPolicy"]["backoffSecs"], json!([2, 20, 200]));
    // An invalid value is refused with the server's message next to the form.
    let min = b.find("#s-min").await.unwrap();
    b.execute("document.querySelector('#s-min').removeAttribute('min'); return true;", vec![]).await.unwrap();
    min.clear().await.unwrap();
    min.send_keys("3").await.unwrap();
    b.find("#settings-form button[type=submit]").await.unwrap().click().await.unwrap();
    b.wait_for_text("#settings-form .form-error", "minLength must be between 6 and 128", WAIT).await.unwrap();

    // The new policy applies to the password form on the account page.
    b.goto(&ts.url("/account")).await.unwrap();
    b.find("#current-password").await.unwrap().send_keys(PASSWORD).await.unwrap();
    b.find("#new-password").await.unwrap().send_keys("Short-1").await.unwrap();
    b.find("#password-form button[type=submit]").await.unwrap().click().await.unwrap();
    b.wait_for_text("#password-form .form-error", "at least 10 characters", WAIT).await.unwrap();
    let _ = b.console_errors().await.unwrap(); // the two refusals above log their 4xx responses
    let newpw = b.find("#new-password").await.unwrap();
    newpw.clear().await.unwrap();
    newpw.send_keys("Much-longer-pass-1!").await.unwrap();
    b.find("#password-form button[type=submit]").await.unwrap().click().await.unwrap();
    b.wait_for_text("#toast", "Password changed", WAIT).await.unwrap();
    ts.sign_in(&owner.email, "Much-longer-pass-1!").await;

    // The instance Owner creates a second organisation from the overview and lands in it.
    b.goto(&ts.url("/dashboard/default")).await.unwrap();
    b.find("#org-name").await.unwrap().send_keys("Research Lab").await.unwrap();
    b.find("#org-slug").await.unwrap().send_keys("research").await.unwrap();
    b.find("#org-form button[type=submit]").await.unwrap().click().await.unwrap();
    wait_for_url(&b, "/dashboard/research").await;
    b.wait_for_text("main h1", "Research Lab", WAIT).await.unwrap();
    b.find("#org-switch").await.unwrap();

    let errors = b.console_errors().await.unwrap();
    assert!(errors.is_empty(), "console errors: {errors:?}");
    b.quit().await.unwrap();
}

//! The real `tale` binary as operators script it: exact command forms, exit codes, messages,
//! the single-server lock, bad data dirs, graceful shutdown.

use crate::harness::{test_tmp, PASSWORD};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// No test downloads the embedding model from the public index.
const NO_MODEL_FETCH: (&str, &str) = ("TALE_EMBEDDING_INDEX_URL", "off");

fn tale(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tale")).args(args).env_remove("RUST_LOG").env(NO_MODEL_FETCH.0, NO_MODEL_FETCH.1).output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn spawn_serve(dir: &Path, port: u16, extra: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_tale"))
        .env(NO_MODEL_FETCH.0, NO_MODEL_FETCH.1)
        .args(["serve", "--data-dir", dir.to_str().unwrap(), "--listen", &format!("127.0.0.1:{port}")])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

async fn wait_ready(port: u16) {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(20) {
        if let Ok(r) = reqwest::get(format!("http://127.0.0.1:{port}/readyz")).await
            && r.status() == 200 {
                return;
            }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("server on {port} never became ready");
}

fn sigterm(child: &Child) {
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
}

#[test]
fn help_lists_the_commands() {
    let out = tale(&["--help"]);
    assert!(out.status.success());
    let help = text(&out.stdout);
    for cmd in ["serve", "admin", "doctor"] {
        assert!(help.contains(cmd), "{help}");
    }
    let admin = text(&tale(&["admin", "--help"]).stdout);
    for cmd in ["create-user", "set-role", "reset-password", "api-key", "verify-audit"] {
        assert!(admin.contains(cmd), "{admin}");
    }
}

#[test]
fn admin_commands_in_their_exact_forms() {
    let dir = tempfile::tempdir_in(test_tmp()).unwrap();
    let d = dir.path().join("data");
    let d = d.to_str().unwrap();
    let out = tale(&["admin", "create-user", "--data-dir", d, "--email", "ops@example.com", "--password", PASSWORD, "--role", "admin"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("first account must be the Owner"), "{}", text(&out.stderr));

    let out = tale(&["admin", "create-user", "--data-dir", d, "--email", "boss@example.com", "--password", PASSWORD, "--role", "owner"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = tale(&["admin", "create-user", "--data-dir", d, "--email", "ops@example.com", "--password", PASSWORD, "--role", "admin"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = tale(&["admin", "create-user", "--data-dir", d, "--email", "ops@example.com", "--password", PASSWORD, "--role", "member"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("already exists"), "{}", text(&out.stderr));
    let out = tale(&["admin", "create-user", "--data-dir", d, "--email", "weak@example.com", "--password", "weak", "--role", "member"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).starts_with("error: password needs"), "{}", text(&out.stderr));
    let out = tale(&["admin", "create-user", "--data-dir", d, "--email", "x@example.com", "--password", PASSWORD, "--role", "king"]);
    assert!(text(&out.stderr).contains("unknown role 'king'"));

    let out = tale(&["admin", "set-role", "--data-dir", d, "--email", "ops@example.com", "--role", "owner"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let changes = text(&out.stdout);
    assert!(changes.contains("ops@example.com: admin -> owner") && changes.contains("boss@example.com: owner -> admin"), "{changes}");
    let out = tale(&["admin", "set-role", "--data-dir", d, "--email", "nobody@example.com", "--role", "member"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("user not found"));

    let out = tale(&["admin", "reset-password", "--data-dir", d, "--email", "boss@example.com"]);
    assert!(out.status.success());
    let generated = text(&out.stdout).trim().to_owned();
    assert!(generated.len() >= 16, "{generated}");

    let out = tale(&["admin", "api-key", "create", "--data-dir", d, "--email", "boss@example.com"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let key = text(&out.stdout);
    assert_eq!(key.lines().count(), 1, "only the key on stdout");
    assert!(key.trim().starts_with("tale_"));

    let out = tale(&["admin", "verify-audit", "--data-dir", d]);
    assert!(out.status.success());
    assert!(text(&out.stdout).contains("chain intact"));
}

#[tokio::test]
async fn serve_logs_json_refuses_a_second_server_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir_in(test_tmp()).unwrap();
    let port = free_port();
    let mut first = spawn_serve(dir.path(), port, &["--log-format", "json"]);
    wait_ready(port).await;

    let out = tale(&["serve", "--data-dir", dir.path().to_str().unwrap(), "--listen", &format!("127.0.0.1:{}", free_port())]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("already running on data dir") && err.contains(&format!("pid {}", first.id())), "{err}");
    // The first server is unharmed.
    assert_eq!(reqwest::get(format!("http://127.0.0.1:{port}/readyz")).await.unwrap().status(), 200);

    // Admin commands work next to the running server.
    let d = dir.path().to_str().unwrap();
    let out = tale(&["admin", "create-user", "--data-dir", d, "--email", "o@example.com", "--password", PASSWORD, "--role", "owner"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let key = text(&tale(&["admin", "api-key", "create", "--data-dir", d, "--email", "o@example.com"]).stdout).trim().to_owned();
    let me = reqwest::Client::new().get(format!("http://127.0.0.1:{port}/api/me")).bearer_auth(&key).send().await.unwrap();
    assert_eq!(me.status(), 200);

    sigterm(&first);
    let status = first.wait().unwrap();
    assert!(status.success(), "graceful exit: {status:?}");
    let mut logs = String::new();
    for line in BufReader::new(first.stderr.take().unwrap()).lines() {
        logs.push_str(&line.unwrap());
        logs.push('\n');
    }
    let ready = logs.lines().find(|l| l.contains("Tale is ready")).unwrap_or_else(|| panic!("{logs}"));
    let parsed: serde_json::Value = serde_json::from_str(ready).unwrap();
    assert_eq!(parsed["level"], "INFO");
    assert!(logs.contains("shutting down"));
    assert!(!logs.contains(&key) && !logs.contains(PASSWORD), "secrets never logged");

    // The lock was released: a new server starts on the same data dir with the data intact.
    let mut again = spawn_serve(dir.path(), port, &[]);
    wait_ready(port).await;
    let me = reqwest::Client::new().get(format!("http://127.0.0.1:{port}/api/me")).bearer_auth(&key).send().await.unwrap();
    assert_eq!(me.status(), 200);
    sigterm(&again);
    assert!(again.wait().unwrap().success());
}

#[test]
fn corrupt_database_is_a_clear_error() {
    let dir = tempfile::tempdir_in(test_tmp()).unwrap();
    std::fs::write(dir.path().join("tale.db"), vec![7u8; 4096]).unwrap();
    let out = tale(&["serve", "--data-dir", dir.path().to_str().unwrap(), "--listen", "127.0.0.1:0"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("is not a Tale database"), "{err}");
    assert_eq!(std::fs::read(dir.path().join("tale.db")).unwrap(), vec![7u8; 4096], "nothing overwritten");
    let out = tale(&["doctor", "--data-dir", dir.path().to_str().unwrap(), "--listen", "127.0.0.1:0"]);
    assert_eq!(out.status.code(), Some(1));
    let report = text(&out.stdout);
    assert!(report.contains("FAIL") && report.contains("fix: restore tale.db"), "{report}");
}

/// A directory nobody (not even root) can write: a read-only tmpfs when we may mount, else 0555.
fn read_only_dir(path: &Path) -> bool {
    std::fs::create_dir_all(path).unwrap();
    let mounted = Command::new("mount").args(["-t", "tmpfs", "-o", "ro,size=1m", "tmpfs"]).arg(path).status().is_ok_and(|s| s.success());
    if !mounted {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o555)).unwrap();
    }
    mounted
}

#[test]
fn read_only_data_dir_is_a_clear_error() {
    let dir = tempfile::tempdir_in(test_tmp()).unwrap();
    let ro = dir.path().join("ro");
    let mounted = read_only_dir(&ro);
    let out = tale(&["serve", "--data-dir", ro.to_str().unwrap(), "--listen", "127.0.0.1:0"]);
    if mounted {
        let _ = Command::new("umount").arg(&ro).status();
    }
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("is not writable"), "{err}");
}

#[test]
fn doctor_passes_on_a_fresh_setup_and_names_a_busy_port() {
    let dir = tempfile::tempdir_in(test_tmp()).unwrap();
    let d = dir.path().join("data");
    let out = tale(&["doctor", "--data-dir", d.to_str().unwrap(), "--listen", "127.0.0.1:0"]);
    assert!(out.status.success(), "{}", text(&out.stdout));
    assert!(text(&out.stdout).contains("all checks passed"));
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let out = tale(&["doctor", "--data-dir", d.to_str().unwrap(), "--listen", &addr]);
    assert_eq!(out.status.code(), Some(1));
    let report = text(&out.stdout);
    assert!(report.contains(&format!("FAIL   cannot listen on {addr}")) && report.contains("fix: stop the program"), "{report}");
}

#[test]
fn doctor_names_a_bad_provider_file_and_the_field() {
    let dir = tempfile::tempdir_in(test_tmp()).unwrap();
    let providers = dir.path().join("config/providers");
    std::fs::create_dir_all(&providers).unwrap();
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/tale-examples/providers");
    std::fs::copy(examples.join("openrouter.json"), providers.join("openrouter.json")).unwrap();
    std::fs::write(providers.join("local.json"), r#"{"displayName":"Local","baseUrl":"http://localhost:11434/v1","models":[{"id":"m","displayName":"M","tags":["chatt"]}]}"#).unwrap();
    let out = tale(&["doctor", "--data-dir", dir.path().to_str().unwrap(), "--listen", "127.0.0.1:0"]);
    assert_eq!(out.status.code(), Some(1));
    let report = text(&out.stdout);
    assert!(report.contains("1 provider file(s) load"), "{report}");
    assert!(report.contains("local.json: models[0].tags[0]: unknown tag \"chatt\""), "{report}");
}

/// `kill -9` mid-answer: after a restart the answer is marked interrupted and keeps what was
/// persisted, which is all but the last second or so of what had streamed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_keeps_the_streamed_answer_and_marks_it_interrupted() {
    use serde_json::{json, Value};
    use tale_testkit::{Script, ScriptedProvider};
    let dir = tempfile::tempdir_in(test_tmp()).unwrap();
    let data = dir.path().join("data");
    let upstream = ScriptedProvider::start().await;
    crate::chatkit::write_provider_in(&data.join("config"), &upstream);
    crate::chatkit::write_agent_in(&data.join("config"), "helper", json!({}));
    let out = tale(&["admin", "create-user", "--data-dir", data.to_str().unwrap(), "--email", "o@example.com", "--password", PASSWORD, "--role", "owner"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let port = free_port();
    let start = |data: &Path| {
        Command::new(env!("CARGO_BIN_EXE_tale"))
            .env(NO_MODEL_FETCH.0, NO_MODEL_FETCH.1)
            .args(["serve", "--data-dir", data.to_str().unwrap(), "--listen", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let sign_in = || async {
        let client = crate::harness::client();
        let r = client.post(format!("http://127.0.0.1:{port}/api/auth/sign-in")).json(&json!({"email": "o@example.com", "password": PASSWORD})).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let csrf = r.json::<Value>().await.unwrap()["csrfToken"].as_str().unwrap().to_owned();
        (client, csrf)
    };

    let mut server = start(&data);
    wait_ready(port).await;
    let (client, csrf) = sign_in().await;
    let story: String = (0..400).map(|i| format!("w{i:03} ")).collect();
    upstream.push(Script::paced(&story, Duration::from_millis(20)));
    let r = client
        .post(format!("http://127.0.0.1:{port}/api/orgs/default/threads"))
        .header("x-csrf-token", &csrf)
        .json(&json!({"agent": "helper", "message": "A long story"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let turn: Value = r.json().await.unwrap();
    let (thread, answer) = (turn["thread"]["id"].as_str().unwrap().to_owned(), turn["answer"]["id"].as_str().unwrap().to_owned());
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let view: Value = client.get(format!("http://127.0.0.1:{port}/api/orgs/default/threads/{thread}")).send().await.unwrap().json().await.unwrap();
    let seen = view["messages"][1]["content"].as_str().unwrap().to_owned();
    assert!(view["live"].as_bool().unwrap() && seen.len() > 200, "streaming when killed: {} chars", seen.len());
    server.kill().unwrap();
    server.wait().unwrap();

    let mut server = start(&data);
    wait_ready(port).await;
    let (client, csrf) = sign_in().await;
    let view: Value = client.get(format!("http://127.0.0.1:{port}/api/orgs/default/threads/{thread}")).send().await.unwrap().json().await.unwrap();
    let kept = &view["messages"][1];
    assert_eq!(kept["id"], answer.as_str());
    assert_eq!(kept["status"], "interrupted");
    assert!(kept["error"].as_str().unwrap().contains("regenerate"), "{kept}");
    let kept_text = kept["content"].as_str().unwrap();
    assert!(seen.starts_with(kept_text), "what was saved is what was streamed");
    // Deltas arrive every 20 ms with 5 characters; batches are written every 500 ms.
    let lost = seen.len() - kept_text.len();
    assert!(lost <= 5 * 60, "lost {lost} characters, more than about a second of the answer");
    let run: Value = client.get(format!("http://127.0.0.1:{port}/api/orgs/default/runs/{}", kept["runId"].as_str().unwrap())).send().await.unwrap().json().await.unwrap();
    assert_eq!(run["run"]["status"], "interrupted");

    // The interrupted answer can be regenerated on the restarted server.
    upstream.push(Script::text("A short story."));
    let r = client
        .post(format!("http://127.0.0.1:{port}/api/orgs/default/threads/{thread}/messages/{answer}/regenerate"))
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let regenerated: Value = r.json().await.unwrap();
    let id = regenerated["answer"]["id"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let view: Value = client.get(format!("http://127.0.0.1:{port}/api/orgs/default/threads/{thread}")).send().await.unwrap().json().await.unwrap();
        if view["messages"][1]["id"] == id.as_str() && view["messages"][1]["status"] == "complete" {
            assert_eq!(view["messages"][1]["content"], "A short story.");
            break;
        }
        assert!(Instant::now() < deadline, "regenerated answer did not finish: {view}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    sigterm(&server);
    assert!(server.wait().unwrap().success());
}

/// `tale knowledge add|search` in their exact forms, without a server (indexing in the command)
/// and with one (the server's workers index what the command queues).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn knowledge_add_and_search_with_and_without_a_server() {
    let dir = tempfile::tempdir_in(test_tmp()).unwrap();
    let data = dir.path().join("data");
    let d = data.to_str().unwrap();
    let out = tale(&["admin", "create-user", "--data-dir", d, "--email", "o@example.com", "--password", PASSWORD, "--role", "owner"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let docs = dir.path().join("docs");
    std::fs::create_dir_all(docs.join("guides")).unwrap();
    std::fs::write(docs.join("ownership.md"), "# Ownership\n\nEach value in Rust has an owner; when the owner goes out of scope, the value is dropped.").unwrap();
    std::fs::write(docs.join("guides/async.html"), "<html><head><title>Async</title></head><body><main><h1>Futures</h1><p>An executor polls futures until they complete.</p></main></body></html>").unwrap();
    std::fs::write(docs.join("guides/tool.exe"), b"MZ\x00\x01 not a document").unwrap();
    std::fs::write(docs.join("empty.txt"), b"").unwrap();
    std::fs::write(docs.join(".hidden.md"), "# Hidden").unwrap();

    let out = tale(&["knowledge", "add", "--data-dir", d, docs.to_str().unwrap()]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "a failed document makes the exit code 1: {stdout} {}", text(&out.stderr));
    assert!(stdout.contains("2 indexed, 2 failed"), "{stdout}");
    assert!(stdout.contains("tool.exe: 'tool.exe' is not a supported file type"), "{stdout}");
    assert!(stdout.contains("empty.txt: the file is empty"), "{stdout}");

    let out = tale(&["knowledge", "search", "--data-dir", d, "--json", "who owns a value"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("search runs BM25-only: the local embedding model is not in"), "{}", text(&out.stderr));
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let first = &rows[0];
    assert_eq!(first["document"], "ownership.md");
    assert_eq!(first["title"], "Ownership");
    assert!(first["score"].as_f64().unwrap() > 0.0);
    assert!(first["text"].as_str().unwrap().contains("Each value in Rust has an owner"));
    assert!(first.get("section").is_some() && first.get("page").is_some());
    let out = tale(&["knowledge", "search", "--data-dir", d, "--limit", "1", "executor futures"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success() && stdout.starts_with("1. async.html"), "{stdout}");

    // With a server running, the command queues and the server indexes.
    let port = free_port();
    let mut server = Command::new(env!("CARGO_BIN_EXE_tale"))
        .env(NO_MODEL_FETCH.0, NO_MODEL_FETCH.1)
        .args(["serve", "--data-dir", d, "--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_ready(port).await;
    std::fs::write(dir.path().join("borrowing.md"), "# Borrowing\n\nReferences let you use a value without taking ownership of it.").unwrap();
    let out = tale(&["knowledge", "add", "--data-dir", d, "--folder", "/book", dir.path().join("borrowing.md").to_str().unwrap()]);
    assert!(out.status.success(), "{} {}", text(&out.stdout), text(&out.stderr));
    assert!(text(&out.stdout).contains("1 indexed, 0 failed"));
    let out = tale(&["knowledge", "search", "--data-dir", d, "--json", "references borrowing"]);
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows[0]["document"], "borrowing.md");
    assert_eq!(rows[0]["folder"], "/book");
    let out = tale(&["knowledge", "add", "--data-dir", d, "/no/such/path"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("/no/such/path does not exist"));
    sigterm(&server);
    assert!(server.wait().unwrap().success());
}

//! `tale doctor`: checks what `tale serve` needs and says what is wrong and how to fix it.

use crate::cli::ServeArgs;
use crate::datadir::{self, ServerLock};
use crate::settings;
use std::os::unix::fs::PermissionsExt;
use tale_core::config::Config;

struct Report {
    failures: usize,
}

impl Report {
    fn ok(&self, what: &str) {
        println!("ok     {what}");
    }
    fn warn(&self, what: &str, fix: &str) {
        println!("warn   {what}\n       fix: {fix}");
    }
    fn fail(&mut self, what: &str, fix: &str) {
        self.failures += 1;
        println!("FAIL   {what}\n       fix: {fix}");
    }
}

/// Returns the process exit code: 0 when nothing failed.
pub async fn run(args: &ServeArgs) -> i32 {
    let mut r = Report { failures: 0 };
    let config = match settings::load(&args.common, Some(args), &settings::process_env) {
        Ok(c) => {
            r.ok("configuration parses");
            c
        }
        Err(e) => {
            r.fail(&format!("configuration: {e:#}"), "correct the flag, environment variable or config file named above");
            return 1;
        }
    };
    check_data_dir(&mut r, &config);
    let server_running = ServerLock::held_by_other(&config.data_dir);
    match &server_running {
        Some(pid) => r.ok(&format!("a tale server is running on this data dir (pid {pid})")),
        None => r.ok("no other server holds this data dir"),
    }
    check_database(&mut r, &config).await;
    check_port(&mut r, &config, server_running.is_some()).await;
    check_config_dir(&mut r, &config);
    check_secret(&mut r, &config);
    if !config.is_https() && !config.listen.ip().is_loopback() {
        r.warn(
            &format!("listening on {} over plain HTTP: session cookies are not marked Secure", config.listen),
            "put Tale behind a TLS proxy and set SITE_URL=https://...",
        );
    }
    if r.failures == 0 {
        println!("\nall checks passed");
        0
    } else {
        println!("\n{} problem(s) found", r.failures);
        1
    }
}

fn check_data_dir(r: &mut Report, config: &Config) {
    let dir = &config.data_dir;
    if !dir.exists() {
        r.warn(&format!("data dir {} does not exist yet", dir.display()), "`tale serve` creates it on first start");
        return;
    }
    match datadir::prepare(dir) {
        Ok(()) => r.ok(&format!("data dir {} is writable", dir.display())),
        Err(e) => r.fail(&format!("{e:#}"), &format!("run `chown -R $(id -u) {0}` and `chmod u+rwx {0}`, or choose another --data-dir", dir.display())),
    }
    if let Ok(meta) = std::fs::metadata(dir)
        && meta.permissions().mode() & 0o007 != 0 {
            r.warn(&format!("data dir {} is readable by every user", dir.display()), &format!("chmod 700 {}", dir.display()));
        }
}

async fn check_database(r: &mut Report, config: &Config) {
    let path = config.database_path();
    if !path.exists() {
        r.ok("database will be created on first start");
        return;
    }
    match crate::server::open_store(config).await {
        Ok(store) => {
            use tale_core::store::AccountStore;
            match store.count_users().await {
                Ok(0) => r.warn("database opens and is current, but has no accounts", "open the setup link printed by `tale serve`, or run `tale admin create-user --role owner`"),
                Ok(n) => r.ok(&format!("database opens and is current ({n} accounts)")),
                Err(e) => r.fail(&format!("database query failed: {e}"), "restore the data dir from a backup"),
            }
            store.close().await;
        }
        Err(e) => r.fail(&format!("{e:#}"), "restore tale.db from a backup, or move it aside to start empty"),
    }
}

async fn check_port(r: &mut Report, config: &Config, ours: bool) {
    match tokio::net::TcpListener::bind(config.listen).await {
        Ok(_) => r.ok(&format!("{} is free to listen on", config.listen)),
        Err(_) if ours => r.ok(&format!("{} is in use by the running tale server", config.listen)),
        Err(e) => r.fail(&format!("cannot listen on {}: {e}", config.listen), "stop the program using that port, or pass --listen with another address"),
    }
}

fn check_config_dir(r: &mut Report, config: &Config) {
    let dir = &config.config_dir;
    match std::fs::read_dir(dir) {
        Ok(_) => {
            r.ok(&format!("config dir {} is readable", dir.display()));
            check_providers(r, config);
            check_agents(r, config);
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => r.warn(
            &format!("config dir {} does not exist", dir.display()),
            "create it (providers/ and agents/ go inside) or point TALE_CONFIG_DIR at an existing Tale config directory",
        ),
        Err(e) => r.fail(&format!("config dir {}: {e}", dir.display()), "make it readable by the user running tale"),
    }
}

/// Every provider file of the default organisation must load; each bad one is named with why.
fn check_providers(r: &mut Report, config: &Config) {
    let dir = tale_llm::loader::providers_dir(&config.config_dir, "default");
    if !dir.exists() {
        return;
    }
    let set = tale_llm::load_providers(&dir);
    r.ok(&format!("{} provider file(s) load from {}", set.providers.len(), dir.display()));
    for p in &set.providers {
        for w in &p.warnings {
            r.warn(&format!("{}/{}.json: {w}", dir.display(), p.slug), "remove the key, or check its spelling");
        }
    }
    for skipped in &set.skipped {
        r.fail(&format!("skipped {skipped}"), "correct the file; the other providers still load");
    }
}

/// Agent files of the default organisation: bad files fail, unknown tools and keys warn.
fn check_agents(r: &mut Report, config: &Config) {
    let dir = tale_agent::config::agents_dir(&config.config_dir, "default");
    if !dir.exists() {
        return;
    }
    let set = tale_agent::load_agents(&dir);
    r.ok(&format!("{} agent file(s) load from {}", set.agents.len(), dir.display()));
    for a in &set.agents {
        for w in &a.warnings {
            r.warn(&format!("{}/{}.json: {w}", dir.display(), a.slug), "remove it, or check its spelling");
        }
    }
    for skipped in &set.skipped {
        r.fail(&format!("skipped {skipped}"), "correct the file; the other agents still load");
    }
}

fn check_secret(r: &mut Report, config: &Config) {
    if let Some(s) = &config.secret {
        if s.expose().len() < 16 {
            r.fail("TALE_SECRET is shorter than 16 characters", "set it to the output of `openssl rand -base64 32`");
        } else {
            r.ok("TALE_SECRET is set");
        }
        return;
    }
    let path = config.data_dir.join(datadir::SECRET_FILE);
    match std::fs::metadata(&path) {
        Ok(meta) if meta.permissions().mode() & 0o077 != 0 => {
            r.fail(&format!("{} can be read by other users", path.display()), &format!("chmod 600 {}", path.display()))
        }
        Ok(_) => r.ok(&format!("instance secret kept in {}", path.display())),
        Err(_) => r.ok("instance secret will be generated on first start"),
    }
}

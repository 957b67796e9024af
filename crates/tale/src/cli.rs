//! The command line: raw flags only. Turning them into a `Config` happens in `settings`.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(name = "tale", version, about = "Tale: a self-hosted AI platform in one binary", long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run every role in one process on the embedded store.
    Serve(ServeArgs),
    /// Operator commands that work with or without a running server on the same data dir.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Check the data dir, database, port, config dir and secrets, and say how to fix problems.
    Doctor(ServeArgs),
    /// The knowledge base: add documents, search. Works with or without a running server.
    Knowledge {
        #[command(subcommand)]
        command: KnowledgeCommand,
    },
    /// Provider secrets files in SOPS format, encrypted to age recipients.
    Secrets {
        #[command(subcommand)]
        command: SecretsCommand,
    },
}

#[derive(Subcommand, Debug)]
pub enum KnowledgeCommand {
    /// Add files or folders (recursively), wait until each is indexed or failed, print a
    /// summary; exit 1 if any failed.
    Add {
        #[command(flatten)]
        common: CommonArgs,
        /// Files or folders
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Knowledge folder to add into; subfolders of added folders are kept below it
        #[arg(long, default_value = "/")]
        folder: String,
        /// Organisation slug
        #[arg(long, default_value = "default")]
        org: String,
    },
    /// Search the knowledge base and print the best passages.
    Search {
        #[command(flatten)]
        common: CommonArgs,
        #[arg(long, default_value_t = 5)]
        limit: usize,
        /// An array of objects: document, title, section, page, score, text
        #[arg(long)]
        json: bool,
        #[arg(long, default_value = "default")]
        org: String,
        query: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum SecretsCommand {
    /// Encrypt a plaintext secrets file in place, to one or more age recipients.
    Encrypt {
        /// An age recipient (age1...); repeat or separate with commas for several
        #[arg(long = "age", value_name = "RECIPIENT", required = true, value_delimiter = ',')]
        recipients: Vec<String>,
        file: std::path::PathBuf,
    },
    /// Print the decrypted JSON on stdout (keys from SOPS_AGE_KEY / SOPS_AGE_KEY_FILE).
    Decrypt { file: std::path::PathBuf },
    /// Decrypt into a private temporary file, open $EDITOR, and re-encrypt to the same recipients.
    Edit { file: std::path::PathBuf },
}

#[derive(Args, Debug, Clone, Default)]
pub struct CommonArgs {
    /// Where Tale keeps its data [env: TALE_DATA_DIR] [default: ./tale-data]
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// A TOML configuration file [env: TALE_CONFIG_FILE]
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Log format [env: TALE_LOG_FORMAT] [default: human]
    #[arg(long, value_enum)]
    pub log_format: Option<LogFormatArg>,
}

#[derive(Args, Debug, Clone, Default)]
pub struct ServeArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Address to listen on [env: TALE_LISTEN] [default: 127.0.0.1:3000]
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// The externally visible URL, port included [env: SITE_URL]
    #[arg(long, value_name = "URL")]
    pub site_url: Option<String>,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormatArg {
    Human,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum AdminCommand {
    /// Create an account. The first account must be the Owner and creates the default organisation.
    CreateUser {
        #[command(flatten)]
        common: CommonArgs,
        #[arg(long)]
        email: String,
        #[arg(long)]
        password: String,
        /// owner, admin, developer, editor, member or disabled
        #[arg(long)]
        role: String,
        /// Display name [default: the part of the e-mail before @]
        #[arg(long)]
        name: Option<String>,
        /// Organisation slug
        #[arg(long, default_value = "default")]
        org: String,
    },
    /// Change a member's role; `owner` transfers ownership (the previous Owner becomes Admin).
    SetRole {
        #[command(flatten)]
        common: CommonArgs,
        #[arg(long)]
        email: String,
        #[arg(long)]
        role: String,
        #[arg(long, default_value = "default")]
        org: String,
    },
    /// Set a new password (printed once when generated), end the user's sessions, lift any lockout.
    ResetPassword {
        #[command(flatten)]
        common: CommonArgs,
        #[arg(long)]
        email: String,
        /// Use this password instead of generating one
        #[arg(long)]
        password: Option<String>,
    },
    /// Personal API keys.
    ApiKey {
        #[command(subcommand)]
        command: ApiKeyCommand,
    },
    /// Check every organisation's audit hash chain and report the first broken link.
    VerifyAudit {
        #[command(flatten)]
        common: CommonArgs,
    },
}

#[derive(Subcommand, Debug)]
pub enum ApiKeyCommand {
    /// Create a key for a user and print it once on stdout.
    Create {
        #[command(flatten)]
        common: CommonArgs,
        #[arg(long)]
        email: String,
        #[arg(long, default_value = "default")]
        org: String,
        #[arg(long, default_value = "created by tale admin")]
        name: String,
    },
}

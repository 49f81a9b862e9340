//! The command line: `hookd serve`, `hookd migrate`, `hookd token create|list|revoke`,
//! `hookd prune`, `hookd verify`, `hookd apply`, `hookd main-key generate`,
//! `hookd rotate-main-key`, and for developers `hookd listen`, `hookd send`, `hookd tail`
//! ([`dev`]).

use std::path::PathBuf;

mod dev;
mod progress;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::app::{Server, open_store};
use crate::config::{Config, Overrides, Role};
use crate::telemetry;

#[derive(Debug, Parser)]
#[command(
    name = "hookd",
    version,
    about = "Webhook delivery service with a Svix-compatible API"
)]
pub struct Cli {
    /// Configuration file (TOML); see config.default.toml for the options. [env: HOOKD_CONFIG]
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Directory for the embedded database. [env: HOOKD_DATA_DIR] [default: ./hookd-data]
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the service (migrates the store first).
    Serve {
        /// Address to listen on. [env: HOOKD_LISTEN] [default: 127.0.0.1:8071]
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
        /// What this node does: api, worker or all. [env: HOOKD_ROLE] [default: all]
        #[arg(long, value_enum, value_name = "ROLE")]
        role: Option<Role>,
        /// A declarative file (YAML, TOML or JSON) applied once the API listens, again on
        /// SIGHUP and on `POST /api/v1/hookd/reload` (never pruning). Needs admin_token.
        #[arg(long, value_name = "FILE")]
        apply: Option<PathBuf>,
    },
    /// Make hookd hold what a declarative file (YAML, TOML or JSON) says: event types,
    /// applications and their endpoints, operational webhook endpoints.
    Apply(ApplyArgs),
    /// Apply database migrations and exit.
    Migrate,
    /// Delete messages older than a number of days, with their deliveries and attempts, in
    /// small batches (messages with deliveries still pending are kept).
    Prune {
        /// Delete messages created more than this many days ago.
        #[arg(long, value_name = "DAYS")]
        older_than_days: u32,
        /// Really delete: without it, the command only says what it would do.
        #[arg(long)]
        yes: bool,
    },
    /// Manage admin API tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// The main key that endpoint secrets and headers are encrypted with at rest.
    MainKey {
        #[command(subcommand)]
        command: MainKeyCommand,
    },
    /// Re-encrypt every endpoint secret and header under main_key: those stored in plaintext
    /// and those under a key of previous_main_keys (which must still be configured). Runs
    /// while hookd serves, in short batches; running it again rewrites nothing.
    RotateMainKey {
        /// Endpoints per transaction.
        #[arg(long, default_value_t = crate::main_key::ROTATE_BATCH, value_name = "N")]
        batch: usize,
    },
    /// Check a saved request's signature as a receiver would, and say why it fails.
    ///
    /// The file holds the request's headers (`Name: value`, one per line; a first line
    /// such as `POST /hook HTTP/1.1` is skipped), an empty line, and the body exactly as
    /// received. Exits 0 when it verifies, 1 when it does not.
    Verify(VerifyArgs),
    /// A local receiver for developers: prints each request (headers, the body as pretty
    /// JSON) and whether its signature verifies with --secret.
    Listen(dev::ListenArgs),
    /// Send one message (HOOKD_URL and HOOKD_TOKEN, or --url and --token).
    Send(dev::SendArgs),
    /// Follow an application's new messages and their attempts as they happen.
    Tail(dev::TailArgs),
    /// Send an endpoint its messages of a time range again (bulk replay), or only those it
    /// never had (--missing), or its failed deliveries (--failed), following the background
    /// task until it is done.
    Replay(dev::ReplayArgs),
}

#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// The saved request, or - for standard input.
    #[arg(value_name = "REQUEST_FILE")]
    pub request: PathBuf,
    /// The endpoint's secret (`whsec_…` or `whsk_…`), as `GET …/endpoint/{id}/secret` shows
    /// it (`key`); or, for the standard scheme's v1a signatures, the public key of a `whsk_`
    /// secret (`whpk_…`, `publicKey` there).
    #[arg(long, value_name = "SECRET", required_unless_present = "secret_file")]
    pub secret: Option<String>,
    /// A file holding the secret (kept out of the shell history); surrounding whitespace is
    /// ignored.
    #[arg(long, value_name = "FILE", conflicts_with = "secret")]
    pub secret_file: Option<PathBuf>,
    #[command(flatten)]
    pub check: SchemeArgs,
    /// Check as of this unix time instead of now (for a request saved earlier).
    #[arg(long, value_name = "UNIX_SECONDS")]
    pub now: Option<i64>,
}

/// How a receiver checks signatures: `hookd verify` and `hookd listen`.
#[derive(Debug, Clone, clap::Args)]
pub struct SchemeArgs {
    /// The endpoint's signature scheme: standard, stripe or hmac-sha256.
    #[arg(long, default_value = "standard")]
    pub scheme: String,
    /// stripe and hmac-sha256: the signature header (default: the scheme's).
    #[arg(long, value_name = "NAME")]
    pub header: Option<String>,
    /// hmac-sha256: the text before the MAC (default `sha256=`).
    #[arg(long)]
    pub prefix: Option<String>,
    /// hmac-sha256: hex or base64 (default hex).
    #[arg(long)]
    pub encoding: Option<String>,
    /// hmac-sha256: the timestamp header, when the endpoint sends one.
    #[arg(long, value_name = "NAME")]
    pub timestamp_header: Option<String>,
    /// How far the signed timestamp may be from now, in seconds.
    #[arg(long, default_value_t = 300, value_name = "SECONDS")]
    pub tolerance: i64,
}

impl SchemeArgs {
    pub fn scheme(&self) -> anyhow::Result<crate::domain::SignatureScheme> {
        crate::domain::SignatureScheme::parse(crate::domain::SignatureSpec {
            scheme: self.scheme.clone(),
            header: self.header.clone(),
            prefix: self.prefix.clone(),
            encoding: self.encoding.clone(),
            timestamp_header: self.timestamp_header.clone(),
        })
        .map_err(|e| anyhow::anyhow!("--{}: {e}", kebab(e.field)))
    }
}

#[derive(Debug, clap::Args)]
pub struct ApplyArgs {
    /// The file; its extension (.yaml, .yml, .toml, .json) says its format.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Print the changes (create/update/delete, with the fields that change) and make none.
    #[arg(long)]
    pub dry_run: bool,
    /// Also delete what the file's sections no longer list (event types are archived).
    #[arg(long)]
    pub prune: bool,
    /// hookd's address. [env: HOOKD_URL] [default: http:// and the configured listen]
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// An API token. [env: HOOKD_TOKEN] [default: the configured admin_token]
    #[arg(long, value_name = "TOKEN")]
    pub token: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum MainKeyCommand {
    /// Print a new random main key (32 bytes, base64), for main_key.
    Generate,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create an API token and print it (only its hash is stored). Without --ability it is
    /// an admin token.
    Create(TokenCreateArgs),
    /// List the stored tokens (never the tokens themselves), with their last use.
    List,
    /// Revoke a token by its id (`tok_…`): it stops working within about a second on every
    /// node.
    Revoke {
        #[arg(value_name = "TOKEN_ID")]
        id: String,
    },
}

#[derive(Debug, clap::Args)]
pub struct TokenCreateArgs {
    /// What the token is for, to tell it by in lists.
    #[arg(long, default_value = "admin")]
    pub name: String,
    /// What the token may do (repeat it, or separate with commas): admin, app:read,
    /// app:write, event-type:read, event-type:write, endpoint:read, endpoint:write,
    /// secret:read, secret:rotate, message:read, message:create, message:write,
    /// attempt:create. Default: admin.
    #[arg(long = "ability", value_name = "ABILITY", value_delimiter = ',')]
    pub abilities: Vec<String>,
    /// The one application (id or uid) the token is limited to.
    #[arg(long, value_name = "APP")]
    pub app: Option<String>,
    /// When it stops working: a duration from now (`90d`, `12h`, `30m`, `600s`) or an
    /// RFC 3339 time. Default: never.
    #[arg(long, value_name = "WHEN")]
    pub expires: Option<String>,
    /// Requests per hour (0: no limit). Default: the token_rate_limit option.
    #[arg(long, value_name = "PER_HOUR")]
    pub rate_limit: Option<u32>,
}

async fn list_tokens(store: &dyn crate::store::Store) -> anyhow::Result<()> {
    let mut page = crate::store::PageQuery {
        limit: 250,
        cursor: crate::store::Cursor::Start,
        order: crate::store::Order::Ascending,
    };
    println!("ID\tNAME\tABILITIES\tAPP\tEXPIRES\tLAST USED");
    loop {
        let tokens = store.list_tokens(&page).await?;
        let Some(last) = tokens.last() else {
            return Ok(());
        };
        page.cursor = crate::store::Cursor::After(last.id.to_string());
        let time = |t: Option<chrono::DateTime<chrono::Utc>>| {
            t.map_or("-".to_owned(), |t| {
                t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            })
        };
        for t in &tokens {
            println!(
                "{}\t{}\t{}\t{}\t{}\t{}",
                t.id,
                t.name,
                t.abilities.to_stored().replace(' ', ","),
                t.app_id.as_ref().map_or("-", |a| a.as_str()),
                time(t.expires_at),
                time(t.last_used_at),
            );
        }
        if tokens.len() < page.limit {
            return Ok(());
        }
    }
}

/// `--expires`: a duration from `now` or an RFC 3339 time.
fn expiry(
    text: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<chrono::DateTime<chrono::Utc>> {
    let text = text.trim();
    if let Ok(at) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(at.with_timezone(&chrono::Utc));
    }
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: i64 = number.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
        anyhow::anyhow!(
            "--expires {text:?}: give a duration such as 90d, 12h, 30m or 600s, or an RFC 3339 time"
        )
    })?;
    let seconds = match unit {
        "d" => 86_400,
        "h" => 3_600,
        "m" => 60,
        "s" => 1,
        _ => anyhow::bail!("--expires {text:?}: the unit must be d, h, m or s"),
    };
    n.checked_mul(seconds)
        .and_then(chrono::TimeDelta::try_seconds)
        .and_then(|d| now.checked_add_signed(d))
        .ok_or_else(|| anyhow::anyhow!("--expires {text:?} is too far away"))
}

async fn create_token(
    store: &dyn crate::store::Store,
    args: &TokenCreateArgs,
) -> anyhow::Result<String> {
    use crate::domain::{Abilities, Ability, AppKey};
    let abilities = if args.abilities.is_empty() {
        Abilities::of([Ability::Admin])
    } else {
        let parsed = args
            .abilities
            .iter()
            .map(|a| {
                Ability::parse(a.trim()).ok_or_else(|| {
                    anyhow::anyhow!(
                        "--ability {a:?} is not one of: {}",
                        Ability::ALL.map(Ability::as_str).join(", ")
                    )
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Abilities::of(parsed)
    };
    let app_id = match &args.app {
        None => None,
        Some(app) => {
            let key = AppKey::parse(app).map_err(|e| anyhow::anyhow!("--app {app:?}: {e}"))?;
            let found = store.get_application(&key).await?;
            Some(
                found
                    .ok_or_else(|| anyhow::anyhow!("--app: there is no application {app:?}"))?
                    .id,
            )
        }
    };
    let expires_at = args
        .expires
        .as_deref()
        .map(|e| expiry(e, crate::domain::time::now()))
        .transpose()?;
    let named = crate::api::NamedToken {
        name: args.name.clone(),
        abilities,
        app_id,
        expires_at,
        rate_limit: args.rate_limit,
    };
    named.check().map_err(|e| anyhow::anyhow!("{}", e.body()))?;
    let (new, token) = crate::api::new_token(|hash, hint| named.into_new(hash, hint));
    let stored = store
        .insert_token(new)
        .await
        .context("cannot store the token")?;
    eprintln!(
        "created {} ({}: {})",
        stored.id,
        stored.name,
        stored.abilities.to_stored()
    );
    Ok(token)
}

impl Cli {
    fn load_config(&self, listen: Option<String>, role: Option<Role>) -> anyhow::Result<Config> {
        self.load_config_applying(listen, role, None)
    }

    fn load_config_applying(
        &self,
        listen: Option<String>,
        role: Option<Role>,
        apply_file: Option<PathBuf>,
    ) -> anyhow::Result<Config> {
        let env: Vec<(String, String)> = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect();
        let file = self
            .config
            .clone()
            .or_else(|| std::env::var_os("HOOKD_CONFIG").map(PathBuf::from));
        let overrides = Overrides {
            listen,
            data_dir: self.data_dir.clone(),
            role,
            apply_file,
        };
        Ok(Config::load(file.as_deref(), env, &overrides)?)
    }
}

/// Messages deleted per transaction by `hookd prune`: small enough to hold locks briefly.
const PRUNE_BATCH: usize = 1000;

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match &cli.command {
        Command::Serve {
            listen,
            role,
            apply,
        } => {
            let config = cli.load_config_applying(listen.clone(), *role, apply.clone())?;
            telemetry::init(&config);
            tracing::info!(?config, "starting hookd {}", env!("CARGO_PKG_VERSION"));
            // Before starting: a SIGHUP during the first apply must not end hookd.
            let mut hangups = Hangups::new();
            let server = Server::start(config).await?;
            let shutdown = shutdown_signal();
            tokio::pin!(shutdown);
            loop {
                tokio::select! {
                    _ = &mut shutdown => break,
                    _ = hangups.recv() => server.reload().await,
                }
            }
            tracing::info!("shutting down");
            server.stop().await
        }
        Command::Migrate => {
            let config = cli.load_config(None, None)?;
            telemetry::init(&config);
            open_store(&config).await?;
            println!("migrations applied");
            Ok(())
        }
        Command::Prune {
            older_than_days,
            yes,
        } => {
            let config = cli.load_config(None, None)?;
            telemetry::init(&config);
            let before =
                crate::domain::time::now() - chrono::TimeDelta::days(i64::from(*older_than_days));
            if !yes {
                println!(
                    "would delete the messages created before {before} that have nothing left \
                     to deliver, with their attempts; run again with --yes to delete them"
                );
                return Ok(());
            }
            let store = open_store(&config).await?;
            let mut deleted = 0;
            let mut progress = progress::Progress::on_terminal("messages deleted");
            loop {
                let batch = store
                    .prune_messages(before, PRUNE_BATCH)
                    .await
                    .context("pruning messages failed")?;
                match batch {
                    Some(0) => break,
                    Some(n) => {
                        deleted += n;
                        progress.add(n);
                    }
                    // A serving node is pruning a batch (its `retention_days`): take turns.
                    None => tokio::time::sleep(std::time::Duration::from_millis(200)).await,
                }
            }
            progress.finish();
            println!("deleted {deleted} messages created before {before}");
            Ok(())
        }
        Command::Token { command } => {
            let config = cli.load_config(None, None)?;
            telemetry::init(&config);
            let store = open_store(&config).await?;
            match command {
                TokenCommand::Create(args) => println!("{}", create_token(&*store, args).await?),
                TokenCommand::List => list_tokens(&*store).await?,
                TokenCommand::Revoke { id } => {
                    let id = crate::domain::TokenId::parse(id)
                        .ok_or_else(|| anyhow::anyhow!("{id:?} is not a token id (tok_…)"))?;
                    if !store.delete_token(&id).await? {
                        anyhow::bail!("there is no token {id}");
                    }
                    eprintln!("revoked {id}");
                }
            }
            Ok(())
        }
        Command::MainKey {
            command: MainKeyCommand::Generate,
        } => {
            println!("{}", crate::signing::at_rest::generate_main_key());
            Ok(())
        }
        Command::RotateMainKey { batch } => {
            if *batch == 0 {
                anyhow::bail!("--batch must be at least 1");
            }
            let config = cli.load_config(None, None)?;
            telemetry::init(&config);
            let store = open_store(&config).await?;
            let mut progress = progress::Progress::on_terminal("values re-encrypted");
            let rotated =
                crate::main_key::rotate_main_key(&*store, &config, *batch, |n| progress.add(n))
                    .await?;
            progress.finish();
            println!(
                "re-encrypted {} values under the current main key",
                rotated.rewritten
            );
            if rotated.skipped > 0 {
                println!(
                    "{} endpoints were written while the command ran and were left as written; \
                     run it again to check them",
                    rotated.skipped
                );
            }
            Ok(())
        }
        Command::Verify(args) => verify(args),
        Command::Listen(args) => dev::listen(args).await,
        Command::Send(args) => {
            let config = cli.load_config(None, None)?;
            dev::send(args, dev::api_target(&args.api, &config)?).await
        }
        Command::Tail(args) => {
            let config = cli.load_config(None, None)?;
            dev::tail(args, dev::api_target(&args.api, &config)?).await
        }
        Command::Replay(args) => {
            let config = cli.load_config(None, None)?;
            dev::replay(args, dev::api_target(&args.api, &config)?).await
        }
        Command::Apply(args) => apply(&cli, args).await,
    }
}

/// `hookd apply`: checks the whole file first (every error, with its line), then applies it
/// through the API.
async fn apply(cli: &Cli, args: &ApplyArgs) -> anyhow::Result<()> {
    use crate::declare;

    let config = cli.load_config(None, None)?;
    let desired = declare::load(&args.file, config.https_only).map_err(|errors| {
        anyhow::anyhow!(
            "{} is invalid ({} errors), nothing was applied:\n{}",
            args.file.display(),
            errors.len(),
            declare::render_errors(&errors)
        )
    })?;
    let (url, token) = dev::api_target(
        &dev::ApiArgs {
            url: args.url.clone(),
            token: args.token.clone(),
        },
        &config,
    )?;
    let client = declare::Client::new(&url, &token)?;
    let mut progress = progress::Progress::on_terminal("changes made");
    let plan = declare::apply_reporting(
        &client,
        &desired,
        args.dry_run,
        args.prune,
        &mut |done, total| progress.set(done as u64, Some(total as u64)),
    )
    .await;
    if !args.dry_run {
        progress.finish();
    }
    let plan = plan?;
    println!("{}", declare::render(&plan, args.dry_run));
    Ok(())
}

/// SIGHUPs, as a stream to wait on (one that never yields where there are none).
struct Hangups(#[cfg(unix)] Option<tokio::signal::unix::Signal>);

impl Hangups {
    fn new() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Hangups(signal(SignalKind::hangup()).ok())
        }
        #[cfg(not(unix))]
        Hangups()
    }

    async fn recv(&mut self) {
        #[cfg(unix)]
        if let Some(s) = &mut self.0 {
            s.recv().await;
            return;
        }
        std::future::pending::<()>().await
    }
}

/// `hookd verify`: the verdict on a saved request, with a hint when a final newline that
/// an editor added is all that stands between the file and a match.
fn verify(args: &VerifyArgs) -> anyhow::Result<()> {
    use std::io::Read;

    use crate::signing::{VerifyKey, parse_saved_request, verify_request};

    let secret_text = match (&args.secret, &args.secret_file) {
        (Some(s), _) => s.clone(),
        (None, Some(path)) => std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the secret from {}", path.display()))?,
        (None, None) => anyhow::bail!("give the secret with --secret or --secret-file"),
    };
    let secret = VerifyKey::parse(secret_text.trim()).context("--secret")?;
    let scheme = args.check.scheme()?;
    let mut raw = Vec::new();
    if args.request.as_os_str() == "-" {
        std::io::stdin().read_to_end(&mut raw)?;
    } else {
        raw = std::fs::read(&args.request)
            .with_context(|| format!("cannot read {}", args.request.display()))?;
    }
    let (headers, body) = parse_saved_request(&raw)
        .map_err(|why| anyhow::anyhow!("{}: {why}", args.request.display()))?;
    let now = args
        .now
        .unwrap_or_else(|| crate::domain::time::now().timestamp());
    let tolerance = args.check.tolerance;
    match verify_request(&scheme, &secret, &headers, body, now, tolerance) {
        Ok(how) => {
            println!("verified: {how}");
            Ok(())
        }
        Err(why) => {
            let trimmed = body
                .strip_suffix(b"\n")
                .map(|b| b.strip_suffix(b"\r").unwrap_or(b));
            if let Some(trimmed) = trimmed {
                if verify_request(&scheme, &secret, &headers, trimmed, now, tolerance).is_ok() {
                    anyhow::bail!(
                        "not verified as saved, but it verifies without the file's final newline: the body must be exactly the bytes received ({why})"
                    );
                }
            }
            anyhow::bail!("not verified: {why}")
        }
    }
}

/// `timestampHeader` as its command-line flag, `timestamp-header`.
fn kebab(field: &str) -> String {
    field
        .chars()
        .flat_map(|c| {
            let lower = c.to_ascii_lowercase();
            (c.is_ascii_uppercase().then_some('-').into_iter()).chain(std::iter::once(lower))
        })
        .collect()
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_valid() {
        Cli::command().debug_assert();
    }

    #[test]
    fn parses_the_documented_commands() {
        let cli = Cli::try_parse_from([
            "hookd",
            "serve",
            "--listen",
            "0.0.0.0:1",
            "--data-dir",
            "/d",
        ])
        .unwrap();
        assert!(matches!(
            cli.command,
            Command::Serve {
                listen: Some(_),
                role: None,
                apply: None
            }
        ));
        let worker = Cli::try_parse_from(["hookd", "serve", "--role", "worker"]).unwrap();
        assert!(matches!(
            worker.command,
            Command::Serve {
                role: Some(Role::Worker),
                ..
            }
        ));
        assert!(Cli::try_parse_from(["hookd", "serve", "--role", "boss"]).is_err());
        assert_eq!(cli.data_dir, Some(PathBuf::from("/d")));
        assert!(Cli::try_parse_from(["hookd", "token", "create"]).is_ok());
        let Command::Token {
            command: TokenCommand::Create(args),
        } = Cli::try_parse_from([
            "hookd",
            "token",
            "create",
            "--name",
            "ci",
            "--ability",
            "app:read,message:create",
            "--ability",
            "endpoint:read",
            "--app",
            "shop",
            "--expires",
            "30d",
        ])
        .unwrap()
        .command
        else {
            panic!("not token create");
        };
        assert_eq!(
            args.abilities,
            ["app:read", "message:create", "endpoint:read"]
        );
        assert_eq!(args.app.as_deref(), Some("shop"));
        assert!(Cli::try_parse_from(["hookd", "migrate", "--config", "x.toml"]).is_ok());
        assert!(Cli::try_parse_from(["hookd", "frobnicate"]).is_err());
        assert!(matches!(
            Cli::try_parse_from(["hookd", "prune", "--older-than-days", "30"])
                .unwrap()
                .command,
            Command::Prune {
                older_than_days: 30,
                yes: false
            }
        ));
        assert!(Cli::try_parse_from(["hookd", "prune"]).is_err());
        let Command::Apply(apply) = Cli::try_parse_from([
            "hookd",
            "apply",
            "hookd.yaml",
            "--dry-run",
            "--prune",
            "--url",
            "http://h:1",
            "--token",
            "t",
        ])
        .unwrap()
        .command
        else {
            panic!("not apply")
        };
        assert!(apply.dry_run && apply.prune);
        assert_eq!(apply.url.as_deref(), Some("http://h:1"));
        assert!(
            Cli::try_parse_from(["hookd", "apply"]).is_err(),
            "the file is required"
        );
        let serve = Cli::try_parse_from(["hookd", "serve", "--apply", "f.toml"]).unwrap();
        assert!(matches!(
            serve.command,
            Command::Serve { apply: Some(_), .. }
        ));
    }
}

#[cfg(test)]
mod expiry_tests {
    use super::expiry;

    #[test]
    fn expires_takes_durations_and_times() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .unwrap()
            .to_utc();
        assert_eq!(
            expiry("30d", now).unwrap().to_rfc3339(),
            "2026-01-31T00:00:00+00:00"
        );
        assert_eq!(
            expiry("12h", now).unwrap().to_rfc3339(),
            "2026-01-01T12:00:00+00:00"
        );
        assert_eq!(
            expiry("2027-02-03T04:05:06Z", now).unwrap().to_rfc3339(),
            "2027-02-03T04:05:06+00:00"
        );
        for bad in ["", "d", "0d", "5y", "soon", "99999999999999999d"] {
            assert!(expiry(bad, now).is_err(), "{bad}");
        }
    }
}

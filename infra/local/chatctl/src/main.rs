//! `chatctl`: the local stack's set-up and a small Kafka client for the terminal.
//!
//! Set-up goes through Kafka's own admin protocol (the AdminClient of the librdkafka we link),
//! so it works the same on any Kafka: the local broker, MSK, Confluent, Redpanda. Watching and
//! feeding topics needs no Java or kcat on the laptop. All settings come from the same
//! environment variables as the functions.

mod records;
mod setup;
mod smoke;
mod stats;
mod watch;

use std::process::ExitCode;

use chat_core::config::Config;
use clap::{Parser, Subcommand};

/// The local stack's set-up, and a Kafka and WebSocket client for the terminal.
#[derive(Parser, Debug)]
#[command(
    name = "chatctl",
    after_help = "Configuration: the functions' environment variables (KAFKA_BOOTSTRAP_SERVERS, \
                  KAFKA_SECURITY, CHAT_TOPIC, DEAD_LETTER_TOPIC, DYNAMODB_ENDPOINT, AWS_REGION, \
                  the table names); see docs/configuration.md."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug, PartialEq, Eq)]
enum Command {
    /// Check Kafka and DynamoDB; create the chat and dead-letter topics, the tables and the
    /// original four users where missing.
    Setup {
        /// Partitions of a chat topic created now (an existing one keeps its count).
        #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(i32).range(1..=1024))]
        partitions: i32,
    },
    /// Put the original four users and their groups into the users table, and nothing else:
    /// for a deployed stack's directory (its table named by USERS_TABLE, AWS credentials from
    /// the environment or profile).
    Seed,
    /// List topics and their partition counts.
    Topics,
    /// Create a topic unless it exists.
    CreateTopic {
        topic: String,
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(i32).range(1..=1024))]
        partitions: i32,
    },
    /// Print the users table as JSON lines.
    Users,
    /// Sign up a user as the user pool's triggers do on AWS: a chat user with a group of their
    /// own; prints a token of the local issuer for them (the user on standard error).
    UserAdd {
        name: String,
        /// The token's lifetime in seconds.
        #[arg(long, default_value_t = 3600, value_parser = clap::value_parser!(u64).range(1..=86_400))]
        ttl: u64,
    },
    /// Send each line of standard input as one record.
    Produce {
        /// Default: CHAT_TOPIC.
        topic: Option<String>,
        /// Default: the line's `group_id`, else no key.
        #[arg(long)]
        key: Option<String>,
    },
    /// Print records as JSON lines until Ctrl-C, `--count` records, or `--idle-ms` without one.
    Consume {
        /// Default: CHAT_TOPIC.
        topic: Option<String>,
        #[arg(long)]
        from_beginning: bool,
        #[arg(long)]
        count: Option<u64>,
        #[arg(long, value_name = "MS")]
        idle_ms: Option<u64>,
    },
    /// Prints a token of the local issuer for a user (for `Authorization: Bearer` and
    /// `?token=`), making the issuer's key pair first if there is none.
    Token {
        user_id: String,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 3600, value_parser = clap::value_parser!(u64).range(1..=86_400))]
        ttl: u64,
    },
    /// Makes the local issuer's key pair if there is none (the stack does, on first run).
    IssuerKeys,
    /// Subscribe to a group over WebSocket and print every frame until Ctrl-C.
    Watch {
        group_id: String,
        #[arg(long, default_value = "ws://127.0.0.1:8000")]
        url: String,
        #[arg(long)]
        count: Option<u64>,
    },
    /// Sign in to a Cognito user pool's app client with a password (USER_PASSWORD_AUTH) and
    /// print the ID token. The password comes from CHAT_PASSWORD, else a line of standard input.
    Login {
        #[arg(long)]
        client_id: String,
        #[arg(long)]
        username: String,
    },
    /// Check a running stack as a user would (send, history, edit, delete, subscribe and
    /// receive, refused impersonation and foreign group), one line per check, cleaning up what
    /// it made. The ID tokens of two users of one group come from SMOKE_TOKEN_A (who may edit
    /// and delete) and SMOKE_TOKEN_B.
    Smoke {
        /// The HTTP API's base URL (the stack's HttpApiUrl output).
        #[arg(long)]
        api: String,
        /// The WebSocket API's URL (the stack's WebSocketUrl output).
        #[arg(long)]
        websocket: String,
    },
    /// Print the functions' CloudWatch metrics (their EMF log lines): requests by route and
    /// status, and the stream processor's records, pushes, batch time and lag.
    Stats {
        /// The folder of the functions' logs.
        #[arg(long, default_value = ".data/dev/api")]
        logs: std::path::PathBuf,
        /// Only lines of the last SECONDS; 0 for all.
        #[arg(long, default_value_t = 300)]
        seconds: u64,
    },
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("chatctl: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> Result<(), String> {
    if let Command::Stats { logs, seconds } = &command {
        // Needs no configuration: it only reads logs.
        return stats::stats(logs, *seconds);
    }
    let config = Config::from_env().map_err(|e| e.to_string())?;
    match command {
        Command::Setup { partitions } => setup::setup(&config, partitions).await,
        Command::Seed => setup::seed(&config).await,
        Command::Topics => setup::topics(&config),
        Command::CreateTopic { topic, partitions } => {
            setup::create_topic(&config, &topic, partitions).await
        }
        Command::Users => setup::users(&config).await,
        Command::UserAdd { name, ttl } => {
            let user_id = setup::user_add(&config, &name).await?;
            let token = local_issuer(&config)?.token(user_id, std::time::Duration::from_secs(ttl));
            println!("{token}");
            Ok(())
        }
        Command::Produce { topic, key } => records::produce(&config, topic, key).await,
        Command::Consume {
            topic,
            from_beginning,
            count,
            idle_ms,
        } => records::consume(&config, topic, from_beginning, count, idle_ms).await,
        Command::Watch {
            group_id,
            url,
            count,
        } => watch::watch(&group_id, &url, count).await,
        Command::Token { user_id, ttl } => {
            let user_id = user_id.parse().map_err(|e| format!("{e}"))?;
            let token = local_issuer(&config)?.token(user_id, std::time::Duration::from_secs(ttl));
            println!("{token}");
            Ok(())
        }
        Command::IssuerKeys => local_issuer(&config).map(|_| ()),
        Command::Login {
            client_id,
            username,
        } => {
            let password = match std::env::var("CHAT_PASSWORD") {
                Ok(p) if !p.is_empty() => p,
                _ => {
                    let mut line = String::new();
                    std::io::stdin()
                        .read_line(&mut line)
                        .map_err(|e| format!("cannot read the password: {e}"))?;
                    line.trim_end_matches(['\r', '\n']).to_owned()
                }
            };
            let token =
                smoke::login(&client_id, &username, &password, &config.dynamodb.region).await?;
            println!("{token}");
            Ok(())
        }
        Command::Smoke { api, websocket } => {
            let token = |name: &str| {
                std::env::var(name)
                    .ok()
                    .filter(|t| !t.trim().is_empty())
                    .map(|t| t.trim().to_owned())
                    .ok_or_else(|| {
                        format!(
                            "{name} must hold a user's ID token (docs/deploy.md: the smoke test)"
                        )
                    })
            };
            smoke::smoke(smoke::Target {
                api,
                websocket,
                token_a: token("SMOKE_TOKEN_A")?,
                token_b: token("SMOKE_TOKEN_B")?,
            })
            .await
        }
        Command::Stats { .. } => unreachable!("handled above"),
    }
}

/// The local issuer: its keys in `AUTH_KEY_DIR` (default `.data/dev/auth`, where `make dev`
/// keeps them), its name and audience those of `make dev` unless set.
fn local_issuer(config: &Config) -> Result<chat_auth::LocalIssuer, String> {
    let dir = std::env::var("AUTH_KEY_DIR").unwrap_or_else(|_| ".data/dev/auth".into());
    let issuer = config.auth.issuer.as_deref().unwrap_or(LOCAL_ISSUER);
    let audience = config.auth.audience.as_deref().unwrap_or(LOCAL_AUDIENCE);
    chat_auth::LocalIssuer::open_or_create(std::path::Path::new(&dir), issuer, audience)
}

/// `make dev`'s issuer and audience.
const LOCAL_ISSUER: &str = "http://127.0.0.1:8000/auth";
const LOCAL_AUDIENCE: &str = "chat-local";

/// Why Kafka could not be used, and what to start.
fn kafka_unreachable(config: &Config, e: impl std::fmt::Display) -> String {
    format!(
        "Kafka is not reachable at {} ({e}); start the local stack with `make dev`, or set \
         KAFKA_BOOTSTRAP_SERVERS to a running broker",
        config.kafka.bootstrap_servers
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Command, String> {
        Cli::try_parse_from(std::iter::once("chatctl").chain(args.iter().copied()))
            .map(|cli| cli.command)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn commands_parse_topics_flags_and_numbers() {
        assert_eq!(
            parse(&[
                "consume",
                "chat",
                "--from-beginning",
                "--count",
                "3",
                "--idle-ms",
                "250"
            ]),
            Ok(Command::Consume {
                topic: Some("chat".into()),
                from_beginning: true,
                count: Some(3),
                idle_ms: Some(250),
            })
        );
        assert_eq!(
            parse(&["setup", "--partitions", "8"]),
            Ok(Command::Setup { partitions: 8 })
        );
        assert_eq!(parse(&["setup"]), Ok(Command::Setup { partitions: 4 }));
    }

    #[test]
    fn bad_options_are_explained() {
        for (args, why) in [
            (&["consume", "--count"][..], "a value is required"),
            (&["consume", "--count", "many"][..], "invalid digit"),
            (&["setup", "--partitions", "0"][..], "not in 1..=1024"),
            (&["setup", "--partitions", "5000"][..], "not in 1..=1024"),
            (&["setup", "--bogus"][..], "unexpected argument"),
            (&["consume", "a", "b"][..], "unexpected argument"),
            (&["watch"][..], "required"),
            (&["nonsense"][..], "unrecognized subcommand"),
        ] {
            let err = parse(args).expect_err(why);
            assert!(err.contains(why), "{args:?}: {err}");
        }
    }
}

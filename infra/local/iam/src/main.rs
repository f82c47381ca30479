//! `local-iam serve`: the checking service in front of DynamoDB Local (see the library).
//! `local-iam env FUNCTION`: the credentials FUNCTION signs with locally, as `NAME=value` lines.
//! `local-iam roles`: every function's statements as the local stack resolves them.
//! `local-iam parameter NAME`: a template parameter's local value (the WebSocket stage's name).
//!
//! Configuration of `serve`: `LOCAL_IAM_LISTEN` (`127.0.0.1:8100`), `LOCAL_IAM_UPSTREAM`
//! (DynamoDB Local's URL), `LOCAL_IAM_TEMPLATE` (the template after the SAM transform, from
//! `check_template.py --expand`), `LOCAL_IAM` (`on`, or `off` to only log refusals), and the
//! variables the functions read (table and topic names), for what the resources are called.

use std::path::PathBuf;
use std::sync::Arc;

use local_iam::template::Locals;
use local_iam::{Iam, Mode};

fn fail(message: impl std::fmt::Display) -> ! {
    eprintln!("local-iam: {message}");
    std::process::exit(1)
}

fn load() -> Iam {
    let path = std::env::var("LOCAL_IAM_TEMPLATE")
        .map(PathBuf::from)
        .unwrap_or_else(|_| fail("LOCAL_IAM_TEMPLATE must name the expanded template"));
    let mode = Mode::from_env().unwrap_or_else(|e| fail(e));
    Iam::load(&path, Locals::from_env(), mode).unwrap_or_else(|e| fail(e))
}

#[tokio::main]
async fn main() {
    chat_lambda::init_logging();
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["serve"] => serve().await,
        ["env", function] => {
            let (key, secret) = local_iam::identity::function_credentials(function);
            println!("AWS_ACCESS_KEY_ID={key}");
            println!("AWS_SECRET_ACCESS_KEY={secret}");
        }
        ["parameter", name] => match load().parameter(name) {
            Some(value) => println!("{value}"),
            None => fail(format!("the template has no parameter {name}")),
        },
        ["roles"] => {
            let iam = load();
            for (function, role) in &iam.roles.by_function {
                println!("{function} ({})", role.name);
                for s in &role.statements {
                    println!(
                        "  {:?} {}{:?} on {}{:?}{}",
                        s.effect,
                        if s.not_action { "NOT " } else { "" },
                        s.actions,
                        if s.not_resource { "NOT " } else { "" },
                        s.resources,
                        s.condition
                            .as_ref()
                            .map(|c| format!(" if {c}"))
                            .unwrap_or_default()
                    );
                }
            }
        }
        _ => fail("usage: local-iam serve | env FUNCTION | roles | parameter NAME"),
    }
}

async fn serve() {
    let iam = load();
    if !iam.trigger_problems.is_empty() {
        let problems = iam.trigger_problems.join("; ");
        match iam.mode {
            Mode::Enforce => fail(format!(
                "AWS would not enable the Kafka trigger: {problems}"
            )),
            Mode::LogOnly => {
                tracing::warn!(%problems, "LOCAL_IAM=off: AWS would not enable the Kafka trigger")
            }
        }
    }
    let listen = std::env::var("LOCAL_IAM_LISTEN").unwrap_or_else(|_| "127.0.0.1:8100".into());
    let upstream = std::env::var("LOCAL_IAM_UPSTREAM")
        .unwrap_or_else(|_| fail("LOCAL_IAM_UPSTREAM must name DynamoDB Local's URL"));
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .unwrap_or_else(|e| fail(format!("cannot listen on {listen}: {e}")));
    match iam.mode {
        Mode::Enforce => tracing::info!(
            %listen, %upstream, functions = iam.roles.by_function.len(),
            "checking every call against the template's policies"
        ),
        Mode::LogOnly => tracing::warn!(
            %listen, %upstream,
            "LOCAL_IAM=off: calls the template does not allow are NOT refused, only logged"
        ),
    }
    let service = Arc::new(local_iam::server::Service::new(iam, &upstream));
    local_iam::server::serve(listener, service).await;
}

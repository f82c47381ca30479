//! What each `make` target does once the tools are installed and the workspace is built.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::checks::{
    check_formatting, check_shell_scripts, check_template, prune_target, run_tests, run_web_tests,
};
use crate::process::{fail, free_port, Failure, Readiness, Spec};
use crate::stack::{scratch_dir, Exports, Functions, Ports, Stack};
use crate::supervisor::Supervisor;
use crate::tools::Tools;
use crate::{say, warn};

/// The chat topic's partitions.
fn partitions() -> String {
    std::env::var("CHAT_PARTITIONS").unwrap_or_else(|_| "4".into())
}

/// Formatting and the tests that need no service: no Java, npm or broker involved.
pub fn check() -> Result<(), Failure> {
    let tools = Tools::from_env()?;
    check_formatting(&tools)?;
    check_shell_scripts(&tools)?;
    prune_target(&tools);
    say("cargo test of everything that needs no service");
    let args: Vec<String> = [
        "--workspace",
        "--lib",
        "--bins",
        "--test",
        "template_api",
        "--test",
        "template_resources",
        "--test",
        "docs",
        "--test",
        "layout",
    ]
    .map(String::from)
    .to_vec();
    run_tests(&tools, &Exports::default(), &args)
}

/// Dev data made on Tansu, the broker used before Apache Kafka: message ids come from the
/// log's offsets, which a new broker would hand out again, so its tables go aside with it.
fn set_aside_tansu_data(root: &Path) -> Result<(), Failure> {
    let dev = root.join(".data/dev");
    if !dev.join("kafka/tansu.db").exists() {
        return Ok(());
    }
    let aside = root.join(format!(".data/dev-tansu-{}", uuid::Uuid::new_v4().simple()));
    std::fs::rename(&dev, &aside).map_err(|e| Failure(format!("{}: {e}", dev.display())))?;
    say(&format!(
        "the dev data was made on Tansu; moved it to {} and starting afresh on Apache Kafka",
        aside.display()
    ));
    Ok(())
}

pub fn dev() -> Result<(), Failure> {
    let tools = Tools::from_env()?;
    prune_target(&tools);
    set_aside_tansu_data(&tools.root)?;
    let supervisor = Supervisor::new()?;
    let mut stack = Stack::new(&tools, &supervisor);
    let ports = Ports::dev()?;
    let data = tools.root.join(".data/dev");
    let functions = match var("CHAT_FUNCTIONS_PROFILE").as_deref() {
        Some("release") => Functions::Optimized("release"),
        Some("local-release") => Functions::Optimized("local-release"),
        _ => Functions::Watch,
    };
    stack.optimize_stand_ins(functions);
    stack.bring_up(&ports, &data, true)?;
    stack.chatctl_shown(&["setup", "--partitions", &partitions()])?;
    stack.start_api(&ports, &data, functions)?;
    // For make bench, which measures this stack and says how its functions ran.
    let mode_file = data.join(FUNCTIONS_MODE_FILE);
    std::fs::write(&mode_file, functions.describe())
        .map_err(|e| Failure(format!("{}: {e}", mode_file.display())))?;
    say(&format!("the functions: {}", functions.describe()));
    let exports = &stack.exports;
    let api = exports.get("CHAT_API_URL").unwrap_or_default();
    let target = tools.target_dir.display();
    eprintln!(
        "
  Chat API             {api}   (try: curl {api}/users/)
  WebSocket            ws://127.0.0.1:{}/subscribe/{{group_id}}
  Lambda Invoke API    {}   (cargo lambda; the functions reload on change unless PROFILE is set)
  Kafka (bootstrap)    {}   the functions: {} (MSK IAM)
  DynamoDB             {}   (DynamoDB Local behind local IAM)
  local IAM            LOCAL_IAM={}: each function's calls checked against infra/template.yaml
  data and logs        {} (kept between runs)

  Watch the topic:     {target}/debug/chatctl consume --from-beginning
  Ctrl-C stops what this run started.
",
        ports.api,
        exports.get("LAMBDA_INVOKE_URL").unwrap_or_default(),
        exports.get("KAFKA_BOOTSTRAP_SERVERS").unwrap_or_default(),
        exports
            .get("CHAT_KAFKA_IAM_BOOTSTRAP")
            .unwrap_or_else(|| "the same".into()),
        exports.get("DYNAMODB_ENDPOINT").unwrap_or_default(),
        exports.get("LOCAL_IAM").unwrap_or_default(),
        data.display(),
    );
    for warning in &stack.unchecked {
        warn(warning);
    }
    if !supervisor.started_any() {
        say("every service was already running (another make dev owns them); nothing to wait for");
        return Ok(());
    }
    supervisor.watch(&data)
}

/// A throw-away stack (its data in memory where the machine has a tmpfs; removed when the run
/// passes, kept with the services' logs when it fails), then every check against it, or
/// `command` alone.
pub fn test(command: &[String]) -> Result<(), Failure> {
    let tools = Tools::from_env()?;
    check_formatting(&tools)?;
    check_shell_scripts(&tools)?;
    prune_target(&tools);
    let data = scratch_dir("chat-test")?;
    let supervisor = Supervisor::new()?;
    let result = run_test_stack(&tools, &supervisor, &data, command);
    supervisor.stop_all();
    match (&result, std::env::var_os("CHAT_KEEP_TEST_DATA")) {
        (Ok(()), None) => {
            let _ = std::fs::remove_dir_all(&data);
        }
        _ => say(&format!(
            "the services' data and logs are kept in {}",
            data.display()
        )),
    }
    result
}

fn run_test_stack(
    tools: &Tools,
    supervisor: &Supervisor,
    data: &Path,
    command: &[String],
) -> Result<(), Failure> {
    let mut stack = Stack::new(tools, supervisor);
    set_test_send_limit(&mut stack);
    let ports = Ports::free(true)?;
    stack.bring_up(&ports, data, true)?;
    stack
        .exports
        .set("CHAT_TEST_DATA", data.display().to_string());
    if let Some((program, args)) = command.split_first() {
        let status = stack
            .command(program)
            .args(args)
            .status()
            .map_err(|e| Failure(format!("cannot run {program}: {e}")))?;
        return if status.success() {
            Ok(())
        } else {
            fail(format!("{program} failed"))
        };
    }
    stack.chatctl_shown(&["setup", "--partitions", &partitions()])?;
    stack.start_api(&ports, data, Functions::Prebuilt)?;
    check_template(tools)?;
    // CARGO_TEST_ARGS picks some tests (e.g. '-p e2e-tests --test faults'); default: all.
    let picked = std::env::var("CARGO_TEST_ARGS")
        .ok()
        .filter(|v| !v.is_empty());
    let args: Vec<String> = picked
        .as_deref()
        .unwrap_or("--workspace --all-targets")
        .split_whitespace()
        .map(String::from)
        .collect();
    say(&format!("cargo test {}", args.join(" ")));
    let tests = run_tests(tools, &stack.exports, &args);
    if picked.is_some() {
        return tests;
    }
    let web = run_web_tests(tools, &stack.exports);
    // The suite a deployed stack proves itself with, against this stack's token-verifying
    // address.
    say("make smoke's suite against this stack in jwt mode");
    let smoke = smoke_against(
        &stack,
        &stack.exports.get("CHAT_API_URL_JWT").unwrap_or_default(),
        &stack.chatctl(&["token", "2"])?,
        &stack.chatctl(&["token", "1"])?,
    );
    tests.and(web).and(smoke)
}

fn smoke_against(stack: &Stack, api: &str, token_a: &str, token_b: &str) -> Result<(), Failure> {
    let websocket = api.replacen("http", "ws", 1);
    let status = stack
        .command(stack.tools.binary("chatctl"))
        .args(["smoke", "--api", api, "--websocket", &websocket])
        .env("SMOKE_TOKEN_A", token_a)
        .env("SMOKE_TOKEN_B", token_b)
        .status()
        .map_err(|e| Failure(format!("cannot run chatctl smoke: {e}")))?;
    if !status.success() {
        return fail("the smoke suite failed");
    }
    Ok(())
}

/// The per-user send limit of the test stacks: a larger burst than the default (20), so that
/// the fuzzer's sends as the seed users reach the edits and deletions they link to (the
/// tests pass at the default too); the rate stays a person's (10 a second), so
/// `tests/abuse.rs` still floods far beyond it. An exported `RATE_LIMIT_SEND` wins.
pub const TEST_SEND_LIMIT: &str = "100:100";

fn set_test_send_limit(stack: &mut Stack) {
    let limit = std::env::var("RATE_LIMIT_SEND").unwrap_or_else(|_| TEST_SEND_LIMIT.into());
    stack.exports.set("RATE_LIMIT_SEND", limit);
}

/// Throw-away services for running `cargo test` by hand: prints the variables to export.
pub fn services() -> Result<(), Failure> {
    let tools = Tools::from_env()?;
    let data = scratch_dir("chat-services")?;
    let supervisor = Supervisor::new()?;
    let mut stack = Stack::new(&tools, &supervisor);
    set_test_send_limit(&mut stack);
    let ports = Ports::free(true)?;
    stack.bring_up(&ports, &data, false)?;
    stack.chatctl_shown(&["setup", "--partitions", &partitions()])?;
    stack.start_api(&ports, &data, Functions::Prebuilt)?;
    println!("{}", stack.exports.shell_line());
    say("Ctrl-C stops these services");
    supervisor.watch(&data)
}

pub fn kafka_tool(tool: &str, args: &[String]) -> Result<(), Failure> {
    let tools = Tools::from_env()?;
    let status = crate::kafka::tool(&tools, tool, args)?;
    if !status.success() {
        return fail(format!("kafka {tool} failed"));
    }
    Ok(())
}

/// An output of a deployed CloudFormation stack, through the AWS CLI.
fn stack_output(stack: &str, key: &str) -> Result<String, Failure> {
    let output = Command::new("aws")
        .args(["cloudformation", "describe-stacks", "--stack-name", stack])
        .args(["--output", "text", "--query"])
        .arg(format!(
            "Stacks[0].Outputs[?OutputKey=='{key}'].OutputValue"
        ))
        .output()
        .map_err(|e| {
            Failure(format!(
                "the AWS CLI is needed to read the stack's outputs: {e}"
            ))
        })?;
    if !output.status.success() {
        return fail(format!("cannot read the outputs of stack {stack}"));
    }
    let value = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    Ok(if value == "None" {
        String::new()
    } else {
        value
    })
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn required(name: &str, why: &str) -> Result<String, Failure> {
    var(name).ok_or_else(|| Failure(format!("set {name} {why}")))
}

/// A stack proves itself: `chatctl smoke` with two users' ID tokens. Against a deployed stack
/// (its outputs, and Cognito sign-in of SMOKE_USER_A/SMOKE_USER_B with SMOKE_PASSWORD_A/
/// SMOKE_PASSWORD_B), against any URLs (SMOKE_API, SMOKE_WEBSOCKET, and SMOKE_TOKEN_A/
/// SMOKE_TOKEN_B), or by default against `AUTH_MODE=jwt make dev` with tokens of its local
/// issuer (users 2 and 1, Bob and Alice).
pub fn smoke(deployed: Option<&str>) -> Result<(), Failure> {
    let tools = Tools::from_env()?;
    let supervisor = Supervisor::new()?;
    let mut stack = Stack::new(&tools, &supervisor);
    let (api, websocket, a, b) = if let Some(name) = deployed {
        let api = stack_output(name, "HttpApiUrl")?;
        let websocket = stack_output(name, "WebSocketUrl")?;
        let (a, b) = match (var("SMOKE_TOKEN_A"), var("SMOKE_TOKEN_B")) {
            (Some(a), Some(b)) => (a, b),
            _ => {
                let client = stack_output(name, "UserPoolClientId")?;
                if client.is_empty() {
                    return fail(format!(
                        "stack {name} has no user pool: give SMOKE_TOKEN_A and SMOKE_TOKEN_B"
                    ));
                }
                let login = |user: &str, password: &str| -> Result<String, Failure> {
                    let output = Command::new(tools.binary("chatctl"))
                        .args(["login", "--client-id", &client, "--username", user])
                        .env("CHAT_PASSWORD", password)
                        .stderr(Stdio::inherit())
                        .output()
                        .map_err(|e| Failure(e.to_string()))?;
                    if !output.status.success() {
                        return fail(format!("signing in as {user} failed"));
                    }
                    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
                };
                let why = "(docs/deploy.md)";
                (
                    login(
                        &required("SMOKE_USER_A", why)?,
                        &required("SMOKE_PASSWORD_A", why)?,
                    )?,
                    login(
                        &required("SMOKE_USER_B", why)?,
                        &required("SMOKE_PASSWORD_B", why)?,
                    )?,
                )
            }
        };
        (api, websocket, a, b)
    } else if let Some(api) = var("SMOKE_API") {
        let websocket = required("SMOKE_WEBSOCKET", "with SMOKE_API")?;
        (
            api,
            websocket,
            required("SMOKE_TOKEN_A", "with SMOKE_API")?,
            required("SMOKE_TOKEN_B", "with SMOKE_API")?,
        )
    } else {
        let port = Ports::dev()?.api;
        let api = format!("http://127.0.0.1:{port}");
        if !crate::process::listening(port) {
            return fail(format!(
                "no chat API answers at {api}: start AUTH_MODE=jwt make dev first (or give STACK=name)"
            ));
        }
        stack.exports.set(
            "AUTH_KEY_DIR",
            tools.root.join(".data/dev/auth").display().to_string(),
        );
        stack.exports.set("AUTH_ISSUER", format!("{api}/auth"));
        stack.exports.set("AUTH_AUDIENCE", "chat-local");
        let a = var("SMOKE_TOKEN_A").map_or_else(|| stack.chatctl(&["token", "2"]), Ok)?;
        let b = var("SMOKE_TOKEN_B").map_or_else(|| stack.chatctl(&["token", "1"]), Ok)?;
        (api.clone(), format!("ws://127.0.0.1:{port}"), a, b)
    };
    let status = stack
        .command(tools.binary("chatctl"))
        .args(["smoke", "--api", &api, "--websocket", &websocket])
        .env("SMOKE_TOKEN_A", a)
        .env("SMOKE_TOKEN_B", b)
        .status()
        .map_err(|e| Failure(format!("cannot run chatctl smoke: {e}")))?;
    if !status.success() {
        return fail("the smoke suite failed");
    }
    Ok(())
}

/// Where make dev writes how it runs the functions, in its data folder.
const FUNCTIONS_MODE_FILE: &str = "functions-mode";

/// Side by side against the running make dev: our stack and the peer (the original app's
/// architecture, on the same broker), the cases of infra/local/bench/bench.py, one table.
pub fn bench() -> Result<(), Failure> {
    let tools = Tools::from_env()?;
    let supervisor = Supervisor::new()?;
    let mut stack = Stack::new(&tools, &supervisor);
    let dev = Ports::dev()?;
    let api = var("CHAT_API_URL").unwrap_or_else(|| format!("http://127.0.0.1:{}", dev.api));
    let kafka =
        var("KAFKA_BOOTSTRAP_SERVERS").unwrap_or_else(|| format!("127.0.0.1:{}", dev.kafka.client));
    stack.exports.set("KAFKA_BOOTSTRAP_SERVERS", kafka.clone());
    if reqwest_get(&format!("{api}/users/")).is_err() {
        return fail(format!(
            "no chat API answers at {api}: start make dev first (or set CHAT_API_URL)"
        ));
    }
    // The peer's topics, one per group as the original app had them.
    for topic in ["group_1", "group_2"] {
        stack
            .chatctl(&["create-topic", topic])
            .map_err(|_| Failure(format!("cannot create the peer's topics on {kafka}")))?;
    }
    let dir = scratch_dir("chat-bench")?;
    let port = free_port()?;
    let bench_dir = tools.root.join("infra/local/bench");
    supervisor.start(
        Spec::new("peer", &dir, tools.bench_venv.join("bin/uvicorn"))
            .args(["peer:app", "--host", "127.0.0.1", "--log-level", "warning"])
            .args(["--port".to_owned(), port.to_string()])
            .envs(&stack.exports.0)
            .env("FETCH_WAIT_MS", "5")
            .env("PYTHONPATH", bench_dir.display().to_string())
            .ready_on(Readiness::Port(port)),
    )?;
    say(&format!(
        "benchmarking {api} and the peer on :{port}, alternating (a few minutes)"
    ));
    let mode = std::fs::read_to_string(tools.root.join(".data/dev").join(FUNCTIONS_MODE_FILE))
        .unwrap_or_else(|_| "unknown (no make dev of this checkout)".into());
    say(&format!("ours: the functions as {mode}"));
    let status = Command::new(tools.bench_venv.join("bin/python"))
        .current_dir(&bench_dir)
        .args(["bench.py", "--mode", &mode, "--ours", &api, "--peer"])
        .arg(format!("http://127.0.0.1:{port}"))
        .arg("--save")
        .arg(tools.root.join(".data/dev/bench"))
        .args(["--scale", &var("BENCH_SCALE").unwrap_or_else(|| "1".into())])
        .envs(&stack.exports.0)
        .status()
        .map_err(|e| Failure(e.to_string()))?;
    if !status.success() {
        return fail("the benchmark failed");
    }
    say(
        "what an operation uses of what AWS bills, and the monthly bill it makes (chat-bench cost)",
    );
    let status = Command::new(tools.target_dir.join("debug/chat-bench"))
        .current_dir(&tools.root)
        .args(["--url", &api, "cost"])
        .status()
        .map_err(|e| Failure(format!("cannot run chat-bench: {e}")))?;
    if !status.success() {
        return fail("chat-bench cost failed");
    }
    Ok(())
}

fn reqwest_get(url: &str) -> Result<(), Failure> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure(e.to_string()))?;
    runtime.block_on(async {
        reqwest::Client::new()
            .get(url)
            .timeout(std::time::Duration::from_secs(5))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| Failure(e.to_string()))
    })
}

/// The stand-in <curl/curl.h> of the arm64 cross-build (see the header), copied to a path that
/// is the same for every clone: a path inside the clone would make each new clone rebuild the
/// C libraries that read it.
fn cross_build_include(tools: &Tools) -> Result<std::path::PathBuf, Failure> {
    let dir = tools.tools_dir.join("build-include");
    let io = |e: std::io::Error| Failure(format!("{}: {e}", dir.display()));
    std::fs::create_dir_all(dir.join("curl")).map_err(io)?;
    let source = tools.root.join("infra/build/include/curl/curl.h");
    let target = dir.join("curl/curl.h");
    let same = std::fs::read(&source).ok() == std::fs::read(&target).ok();
    if !same {
        std::fs::copy(&source, &target).map_err(io)?;
    }
    Ok(dir)
}

/// Release builds of every function for arm64 Lambda, all in one build (each function links
/// only what its crates depend on), then each bootstrap's size as built and as a deployment
/// zip would carry it.
pub fn build() -> Result<(), Failure> {
    let tools = Tools::from_env()?;
    let include = cross_build_include(&tools)?;
    let started = std::time::Instant::now();
    let functions = tools.functions();
    say("cargo lambda build --release --arm64 (every function)");
    let mut command = Command::new("cargo");
    command
        .current_dir(&tools.root)
        .env(
            "PATH",
            tools.path_with(&[
                &tools.cargo_lambda_venv.join("bin"),
                &tools.cmake_venv.join("bin"),
            ]),
        )
        .args(["lambda", "build", "--quiet", "--release", "--arm64"])
        // Through cargo's config, not the environment: cargo-lambda 1.9.2 itself panics when
        // C_INCLUDE_PATH is set.
        .arg("--config")
        .arg(format!("env.C_INCLUDE_PATH=\"{}\"", include.display()));
    for function in &functions {
        command.args(["-p", function]);
    }
    let status = command
        .status()
        .map_err(|e| Failure(format!("cannot run cargo lambda: {e}")))?;
    if !status.success() {
        return fail("building the functions failed");
    }
    say(&format!(
        "built in {} s; bootstraps in {}/lambda:",
        started.elapsed().as_secs(),
        tools.target_dir.display()
    ));
    let bootstraps: Vec<String> = functions
        .iter()
        .map(|f| {
            tools
                .target_dir
                .join("lambda")
                .join(f)
                .join("bootstrap")
                .display()
                .to_string()
        })
        .collect();
    let sizes = Command::new("python3")
        .arg("-c")
        .arg(SIZES)
        .args(&bootstraps)
        .status()
        .map_err(|e| Failure(e.to_string()))?;
    if !sizes.success() {
        return fail("a bootstrap is missing or not an arm64 executable");
    }
    Ok(())
}

/// Each bootstrap's size as built and zipped (deflate); each must be an arm64 ELF executable.
const SIZES: &str = r#"
import os, sys, zlib
print(f"{'function':<16} {'bootstrap':>10} {'zipped':>9}")
for path in sys.argv[1:]:
    data = open(path, "rb").read()
    if data[:4] != b"\x7fELF" or int.from_bytes(data[18:20], "little") != 183:  # EM_AARCH64
        sys.exit(f"{path}: not an arm64 ELF executable")
    name = os.path.basename(os.path.dirname(path))
    print(f"{name:<16} {len(data) / 2**20:>8.1f} M {len(zlib.compress(data, 9)) / 2**20:>7.1f} M")
"#;

/// `sam ARGS` with our build tools on PATH: sam runs cargo lambda itself, which panics when
/// C_INCLUDE_PATH is set, so the arm64 C compiler gets the header's directory through its own
/// flags instead.
pub fn sam(args: &[String]) -> Result<(), Failure> {
    let tools = Tools::from_env()?;
    let include = cross_build_include(&tools)?;
    let mut flags = format!("-I{}", include.display());
    if let Some(more) = var("CFLAGS_aarch64_unknown_linux_gnu") {
        flags = format!("{flags} {more}");
    }
    let status = Command::new("sam")
        .current_dir(&tools.root)
        .args(args)
        .env("CFLAGS_aarch64_unknown_linux_gnu", flags)
        .env(
            "PATH",
            tools.path_with(&[
                &tools.cargo_lambda_venv.join("bin"),
                &tools.cmake_venv.join("bin"),
            ]),
        )
        .status()
        .map_err(|_| Failure("the AWS SAM CLI is not installed: https://docs.aws.amazon.com/serverless-application-model/latest/developerguide/install-sam-cli.html".into()))?;
    if !status.success() {
        return fail("sam failed");
    }
    Ok(())
}

/// The page's files as they are uploaded: web/, the API documents, and config.json naming the
/// WebSocket API. The HTTP API needs no URL: CloudFront serves it on the page's own origin.
pub fn stage_web(dir: &Path, websocket_url: &str) -> Result<(), Failure> {
    let tools = Tools::from_env()?;
    let valid = (websocket_url.starts_with("ws://") || websocket_url.starts_with("wss://"))
        && !websocket_url.contains(['"', ' ', '\t', '\n']);
    if !valid {
        return fail(format!("not a WebSocket URL: {websocket_url}"));
    }
    let io = |e: std::io::Error| Failure(format!("{}: {e}", dir.display()));
    std::fs::create_dir_all(dir).map_err(io)?;
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(tools.root.join("web"))
        .map_err(io)?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    files.push(tools.root.join("docs/openapi.json"));
    files.push(tools.root.join("docs/asyncapi.json"));
    for file in files {
        if let Some(name) = file.file_name() {
            std::fs::copy(&file, dir.join(name)).map_err(io)?;
        }
    }
    std::fs::write(
        dir.join("config.json"),
        format!("{{\"websocket\": \"{websocket_url}\"}}\n"),
    )
    .map_err(io)
}

pub fn deploy_web(stack: &str) -> Result<(), Failure> {
    let bucket = stack_output(stack, "WebBucketName")?;
    if bucket.is_empty() {
        return fail(format!(
            "stack {stack} has no WebBucketName output: deploy infra/template.yaml first"
        ));
    }
    let websocket = stack_output(stack, "WebSocketUrl")?;
    let distribution = stack_output(stack, "WebDistributionId")?;
    let url = stack_output(stack, "WebUrl")?;
    let dir = scratch_dir("chat-web")?;
    stage_web(&dir, &websocket)?;
    // Small files, always revalidated: a new page shows on the next load.
    let uploaded = Command::new("aws")
        .args(["s3", "sync"])
        .arg(&dir)
        .arg(format!("s3://{bucket}/"))
        .args(["--delete", "--cache-control", "no-cache"])
        .status()
        .is_ok_and(|s| s.success());
    let _ = std::fs::remove_dir_all(&dir);
    if !uploaded {
        return fail(format!("uploading to s3://{bucket} failed"));
    }
    let invalidated = Command::new("aws")
        .args([
            "cloudfront",
            "create-invalidation",
            "--distribution-id",
            &distribution,
        ])
        .args(["--paths", "/*"])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !invalidated {
        return fail(format!(
            "invalidating CloudFront distribution {distribution} failed"
        ));
    }
    say(&format!("the chat page is at {url}"));
    Ok(())
}

//! The stack, put together: Kafka, DynamoDB Local and local IAM ([`bring_up`]), then the
//! functions, the event source and the API Gateway emulator ([`start_api`]). What the tests
//! and tools need to reach it is collected in [`Exports`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::kafka;
use crate::process::{fail, free_port, Failure, Readiness, Spec};
use crate::supervisor::{Reused, Supervisor};
use crate::tools::Tools;
use crate::{dynamodb, say, warn};

/// Variables for everything the stack runs or hands on (tests, tools): where the services
/// are. Passed to each child explicitly; the supervisor's own environment stays as it was.
#[derive(Debug, Clone, Default)]
pub struct Exports(pub BTreeMap<String, String>);

impl Exports {
    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        self.0.insert(name.to_owned(), value.into());
    }

    /// Ours, else the supervisor's environment.
    pub fn get(&self, name: &str) -> Option<String> {
        self.0
            .get(name)
            .cloned()
            .or_else(|| std::env::var(name).ok())
            .filter(|v| !v.is_empty())
    }

    /// `export A=1 B=2`, for a shell.
    pub fn shell_line(&self) -> String {
        let pairs: Vec<String> = self.0.iter().map(|(k, v)| format!("{k}={v}")).collect();
        format!("export {}", pairs.join(" "))
    }
}

/// The ports of one stack.
pub struct Ports {
    pub kafka: kafka::Ports,
    pub dynamodb: u16,
    pub dynamodb_local: u16,
    pub api: u16,
    pub lambda: u16,
    /// A second address of the gateway that always verifies tokens (make test).
    pub api_jwt: Option<u16>,
}

impl Ports {
    /// `make dev`'s, fixed (each may be moved with its `DEV_*_PORT` variable).
    pub fn dev() -> Result<Self, Failure> {
        let port = |name: &str, default: u16| -> Result<u16, Failure> {
            match std::env::var(name) {
                Ok(v) => v
                    .parse()
                    .map_err(|_| Failure(format!("{name}={v} is not a port"))),
                Err(_) => Ok(default),
            }
        };
        Ok(Self {
            kafka: kafka::Ports {
                client: port("DEV_KAFKA_PORT", 9092)?,
                controller: port("DEV_KAFKA_CONTROLLER_PORT", 9093)?,
                // MSK's port for IAM.
                iam: port("DEV_KAFKA_IAM_PORT", 9098)?,
            },
            dynamodb: port("DEV_DYNAMODB_PORT", 8100)?,
            dynamodb_local: port("DEV_DYNAMODB_LOCAL_PORT", 8101)?,
            api: port("DEV_API_PORT", 8000)?,
            lambda: port("DEV_LAMBDA_PORT", 9000)?,
            api_jwt: None,
        })
    }

    /// Free ones, for a throw-away stack.
    pub fn free(with_jwt_address: bool) -> Result<Self, Failure> {
        Ok(Self {
            kafka: kafka::Ports {
                client: free_port()?,
                controller: free_port()?,
                iam: free_port()?,
            },
            dynamodb: free_port()?,
            dynamodb_local: free_port()?,
            api: free_port()?,
            lambda: free_port()?,
            api_jwt: if with_jwt_address {
                Some(free_port()?)
            } else {
                None
            },
        })
    }
}

/// How the functions run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Functions {
    /// `cargo lambda watch` builds and runs each function itself and restarts it on every
    /// source change (make dev).
    Watch,
    /// The workspace build's binaries, as they are (make test).
    Prebuilt,
    /// Binaries of an optimized cargo profile (`PROFILE=local-release make dev`): the CPU a
    /// function spends per invocation close to the release build's on AWS; not reloaded.
    Optimized(&'static str),
}

impl Functions {
    /// How the functions run, in words (`make bench` states it).
    pub fn describe(self) -> String {
        match self {
            Functions::Watch => "debug builds under cargo lambda watch".into(),
            Functions::Prebuilt => "debug builds".into(),
            Functions::Optimized(profile) => {
                format!("optimized builds, as are the local gateway, IAM and event source (cargo profile {profile})")
            }
        }
    }
}

/// One stack being run.
pub struct Stack<'a> {
    pub tools: &'a Tools,
    pub supervisor: &'a Supervisor,
    pub exports: Exports,
    /// What every function gets besides its credentials: where and how it reaches Kafka.
    function_env: BTreeMap<String, String>,
    /// Warnings repeated in the summary: what the local stack does NOT check in this run.
    pub unchecked: Vec<String>,
    reused: bool,
    /// The cargo profile the local stand-ins of AWS (gateway, IAM, event source) run from.
    stand_ins_profile: &'static str,
}

/// Instances per function, so that parallel requests do not queue.
fn concurrency() -> usize {
    std::env::var("LAMBDA_CONCURRENCY")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(4)
}

impl<'a> Stack<'a> {
    pub fn new(tools: &'a Tools, supervisor: &'a Supervisor) -> Self {
        let mut exports = Exports::default();
        // The stack's own tools and the tests sign their AWS calls as the local administrator
        // (chat_aws's fallback credentials); each function signs as itself.
        exports.set("AWS_ACCESS_KEY_ID", "local");
        exports.set("AWS_SECRET_ACCESS_KEY", "local");
        // The local event source's consumer group: make dev's committed offsets are this one's.
        exports.set(
            "ESM_GROUP_ID",
            std::env::var("ESM_GROUP_ID").unwrap_or_else(|_| "chat-consumer".into()),
        );
        exports.set(
            "LOCAL_IAM",
            std::env::var("LOCAL_IAM").unwrap_or_else(|_| "on".into()),
        );
        Self {
            tools,
            supervisor,
            exports,
            function_env: BTreeMap::new(),
            unchecked: Vec::new(),
            reused: false,
            stand_ins_profile: "debug",
        }
    }

    /// Runs the local stand-ins of AWS's services from an optimized profile's build too (with
    /// `PROFILE`): AWS's own services cost our functions no CPU, and a debug build of their
    /// stand-ins would count against the functions' figures what is not theirs.
    pub fn optimize_stand_ins(&mut self, functions: Functions) {
        if let Functions::Optimized(profile) = functions {
            self.stand_ins_profile = profile;
        }
    }

    /// A stand-in's binary (`local-apigw`, `local-iam`, `local-kafka-esm`).
    fn stand_in(&self, name: &str) -> PathBuf {
        self.tools.profile_binary(self.stand_ins_profile, name)
    }

    fn warn_unchecked(&mut self, warning: String) {
        warn(&warning);
        self.unchecked.push(warning);
    }

    /// A command of ours with the stack's variables (and no session's AWS settings).
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = Command::new(program);
        command
            .envs(&self.exports.0)
            .env_remove("AWS_SESSION_TOKEN")
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_DEFAULT_PROFILE");
        command
    }

    /// `chatctl` with the stack's variables, its output shown as it goes.
    pub fn chatctl_shown(&self, args: &[&str]) -> Result<(), Failure> {
        let status = self
            .command(self.tools.binary("chatctl"))
            .args(args)
            .status()
            .map_err(|e| Failure(format!("cannot run chatctl: {e}")))?;
        if !status.success() {
            return fail(format!("chatctl {} failed", args.join(" ")));
        }
        Ok(())
    }

    /// `chatctl` with the stack's variables: what it prints; fails with its errors.
    pub fn chatctl(&self, args: &[&str]) -> Result<String, Failure> {
        let output = self
            .command(self.tools.binary("chatctl"))
            .args(args)
            .stderr(std::process::Stdio::inherit())
            .output()
            .map_err(|e| Failure(format!("cannot run chatctl: {e}")))?;
        if !output.status.success() {
            return fail(format!("chatctl {} failed", args.join(" ")));
        }
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
    }

    fn local_iam(&self, args: &[&str]) -> Result<String, Failure> {
        let output = self
            .command(self.tools.binary("local-iam"))
            .args(args)
            .output()
            .map_err(|e| Failure(format!("cannot run local-iam: {e}")))?;
        if !output.status.success() {
            return fail(format!(
                "local-iam {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
    }

    /// The credentials a function signs with locally (as Lambda gives each function its
    /// role's), as `NAME=value` pairs.
    fn function_credentials(&self, function: &str) -> Result<BTreeMap<String, String>, Failure> {
        Ok(self
            .local_iam(&["env", function])?
            .lines()
            .filter_map(|line| line.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect())
    }

    /// The template after SAM's transform (SAM's own translator, as `sam deploy` runs it):
    /// the roles and policies local IAM checks every call against.
    fn expand_template(&mut self, dir: &Path) -> Result<(), Failure> {
        std::fs::create_dir_all(dir).map_err(|e| Failure(format!("{}: {e}", dir.display())))?;
        let python = self.tools.cfn_lint_venv.join("bin/python");
        let expanded = dir.join("template.json");
        let status = Command::new(&python)
            .arg(self.tools.root.join("infra/local/check_template.py"))
            .arg("--expand")
            .arg(self.tools.root.join("infra/template.yaml"))
            .arg(&expanded)
            .status()
            .map_err(|e| Failure(format!("cannot run {}: {e}", python.display())))?;
        if !status.success() {
            return fail("the SAM transform of infra/template.yaml failed");
        }
        self.exports
            .set("LOCAL_IAM_TEMPLATE", expanded.display().to_string());
        // The Python with SAM's translator, for tests that expand a template of their own.
        self.exports
            .set("CHAT_SAM_PYTHON", python.display().to_string());
        Ok(())
    }

    /// Kafka, DynamoDB Local and local IAM in front of it, unless the environment points at
    /// services of its own (`KAFKA_BOOTSTRAP_SERVERS`, `DYNAMODB_ENDPOINT`).
    pub fn bring_up(&mut self, ports: &Ports, dir: &Path, persistent: bool) -> Result<(), Failure> {
        self.expand_template(&dir.join("iam"))?;
        let iam_url = format!("http://127.0.0.1:{}", ports.dynamodb);
        match std::env::var("KAFKA_BOOTSTRAP_SERVERS")
            .ok()
            .filter(|v| !v.is_empty())
        {
            Some(servers) => {
                say(&format!(
                    "using Kafka at {servers} (KAFKA_BOOTSTRAP_SERVERS is set; starting no broker)"
                ));
                self.exports.set("KAFKA_BOOTSTRAP_SERVERS", servers);
                self.warn_unchecked(
                    "Kafka permissions are NOT checked: the functions reach your broker directly"
                        .into(),
                );
            }
            None => {
                let kafka_dir = dir.join("kafka");
                let spec = kafka::prepare(self.tools, &ports.kafka, &iam_url, &kafka_dir)?;
                self.supervisor.start(spec)?;
                let iam_bootstrap = format!("127.0.0.1:{}", ports.kafka.iam);
                self.exports.set(
                    "KAFKA_BOOTSTRAP_SERVERS",
                    format!("127.0.0.1:{}", ports.kafka.client),
                );
                self.exports
                    .set("CHAT_KAFKA_IAM_BOOTSTRAP", iam_bootstrap.clone());
                self.function_env
                    .insert("KAFKA_BOOTSTRAP_SERVERS".into(), iam_bootstrap);
                self.function_env
                    .insert("KAFKA_SECURITY".into(), "msk-iam".into());
                self.function_env.insert("KAFKA_TLS".into(), "false".into());
                // Where the broker keeps its pid, log and data, for tests that restart it.
                self.exports
                    .set("CHAT_KAFKA_DIR", kafka_dir.display().to_string());
            }
        }
        let upstream = match std::env::var("DYNAMODB_ENDPOINT")
            .ok()
            .filter(|v| !v.is_empty())
        {
            Some(endpoint) => {
                say(&format!(
                    "using DynamoDB at {endpoint} (DYNAMODB_ENDPOINT is set; starting no DynamoDB Local)"
                ));
                self.warn_unchecked(format!(
                    "DynamoDB permissions are NOT checked: the functions reach {endpoint} directly"
                ));
                self.exports.set("DYNAMODB_ENDPOINT", endpoint.clone());
                endpoint
            }
            None => {
                let (spec, copy) = dynamodb::prepare(
                    self.tools,
                    ports.dynamodb_local,
                    &dir.join("dynamodb"),
                    persistent,
                )?;
                if let Some(copy) = copy {
                    self.supervisor.after_stop(move || match copy.save() {
                        Ok(()) => say(&format!(
                            "saved the DynamoDB Local database to {}",
                            copy.folder.display()
                        )),
                        Err(e) => warn(&e.to_string()),
                    });
                }
                self.supervisor.start(spec)?;
                let upstream = format!("http://127.0.0.1:{}", ports.dynamodb_local);
                // DynamoDB Local itself, unchecked: for tests that stand a local IAM of their
                // own before it.
                self.exports
                    .set("CHAT_DYNAMODB_LOCAL_ENDPOINT", upstream.clone());
                self.exports.set("DYNAMODB_ENDPOINT", iam_url.clone());
                upstream
            }
        };
        self.start_local_iam(ports.dynamodb, &upstream, &dir.join("iam"))
    }

    fn start_local_iam(&mut self, port: u16, upstream: &str, dir: &Path) -> Result<(), Failure> {
        if self.exports.get("LOCAL_IAM").as_deref() == Some("off") {
            self.warn_unchecked(format!(
                "LOCAL_IAM=off: calls the template does not allow are NOT refused (only logged in {}/local-iam.log)",
                dir.display()
            ));
        }
        let spec = Spec::new("local-iam", dir, self.stand_in("local-iam"))
            .arg("serve")
            .envs(&self.exports.0)
            .env("LOCAL_IAM_LISTEN", format!("127.0.0.1:{port}"))
            .env("LOCAL_IAM_UPSTREAM", upstream)
            .ready_on(Readiness::Port(port));
        self.supervisor.start(spec)?;
        self.exports
            .set("LOCAL_IAM_URL", format!("http://127.0.0.1:{port}"));
        Ok(())
    }

    /// The functions behind the Lambda Invoke API, the Kafka event source that feeds the stream
    /// processor, and last the API Gateway emulator: it opens only once every function answered
    /// and the event source holds its partitions, so that a send it accepts is applied and
    /// pushed at once (the whole path is warm).
    pub fn start_api(
        &mut self,
        ports: &Ports,
        data: &Path,
        mode: Functions,
    ) -> Result<(), Failure> {
        let dir = data.join("api");
        let stage = self.local_iam(&["parameter", "WebSocketStageName"])?;
        // Functions inherit this: the stream processor pushes through the emulator's
        // Management API, at the WebSocket stage's path as on AWS.
        self.exports.set(
            "WS_MANAGEMENT_ENDPOINT",
            format!("http://127.0.0.1:{}/{stage}", ports.api),
        );
        // Identity: a local issuer stands in for Cognito (its key pair made once, kept with the
        // data); trust-client unless asked otherwise (the original app's clients send no token).
        let auth_mode = self
            .exports
            .get("AUTH_MODE")
            .unwrap_or_else(|| "trust-client".into());
        self.exports.set("AUTH_MODE", auth_mode.clone());
        self.exports.set(
            "AUTH_ISSUER",
            format!("http://127.0.0.1:{}/auth", ports.api),
        );
        self.exports.set("AUTH_AUDIENCE", "chat-local");
        self.exports
            .set("AUTH_KEY_DIR", data.join("auth").display().to_string());
        self.chatctl(&["issuer-keys"])?;
        if auth_mode == "trust-client" {
            say("AUTH_MODE=trust-client: requests are believed about who sends them (AUTH_MODE=jwt verifies tokens)");
        }
        let lambda_url = format!("http://127.0.0.1:{}", ports.lambda);
        self.exports.set("LAMBDA_INVOKE_URL", lambda_url.clone());
        let cargo_lambda_path = self
            .tools
            .path_with(&[&self.tools.cargo_lambda_venv.join("bin")]);
        // In the checkout: cargo lambda watch restarts the functions when a file there changes,
        // and it ignores what git ignores (the logs under .data among them).
        let watch = Spec::new("cargo-lambda", &dir, "cargo")
            .working_in(&self.tools.root)
            .envs(&self.exports.0)
            .env("PATH", cargo_lambda_path)
            .ready_on(Readiness::Port(ports.lambda));
        let watch = match mode {
            // Each function's credentials are in the workspace's Cargo.toml, where cargo lambda
            // watch reads them ([workspace.metadata.lambda.bin.<function>.env]).
            Functions::Watch => watch
                .envs(&self.function_env)
                .args([
                    "lambda",
                    "watch",
                    "--quiet",
                    "--invoke-address",
                    "127.0.0.1",
                ])
                .args(["--invoke-port".to_owned(), ports.lambda.to_string()])
                .args(["--concurrency".to_owned(), concurrency().to_string()]),
            Functions::Prebuilt | Functions::Optimized(_) => watch
                .args(["lambda", "watch", "--quiet", "--only-lambda-apis"])
                .args(["--invoke-address", "127.0.0.1", "--invoke-port"])
                .args([ports.lambda.to_string()]),
        };
        if self.supervisor.start(watch)? == Reused::Yes {
            self.reused = true;
        }
        match mode {
            Functions::Watch => {}
            Functions::Prebuilt => self.start_functions(ports.lambda, &dir, "debug")?,
            Functions::Optimized(profile) => self.start_functions(ports.lambda, &dir, profile)?,
        }
        // With `watch`, cargo lambda compiles each function on its first call: make that call
        // now, not in a user's request. Either way, each function must answer first.
        say("warming up the functions");
        self.warm_up(&lambda_url, &dir)?;
        // The other make dev's event source already feeds its functions.
        if !self.reused {
            // It reads the topic as Lambda's trigger does: with the stream processor's role.
            let ready = dir.join("event-source.ready");
            let spec = Spec::new("event-source", &dir, self.stand_in("local-kafka-esm"))
                .envs(&self.exports.0)
                .envs(&self.function_credentials("kafka-consumer")?)
                .envs(&self.function_env)
                .env("ESM_READY_FILE", ready.display().to_string())
                .ready_on(Readiness::File(ready));
            self.supervisor.start(spec)?;
        }
        let mut gateway = Spec::new("API-Gateway", &dir, self.stand_in("local-apigw"))
            .envs(&self.exports.0)
            .env("APIGW_LISTEN", format!("127.0.0.1:{}", ports.api))
            .env("APIGW_WEB_ROOT", self.tools.root.display().to_string())
            .ready_on(Readiness::Port(ports.api));
        if let Some(jwt) = ports.api_jwt {
            gateway = gateway.env("APIGW_JWT_LISTEN", format!("127.0.0.1:{jwt}"));
        }
        self.supervisor.start(gateway)?;
        self.exports
            .set("CHAT_API_URL", format!("http://127.0.0.1:{}", ports.api));
        if let Some(jwt) = ports.api_jwt {
            self.exports
                .set("CHAT_API_URL_JWT", format!("http://127.0.0.1:{jwt}"));
        }
        Ok(())
    }

    /// `LAMBDA_CONCURRENCY` instances of every function, each polling the Runtime API that
    /// cargo lambda serves for it, as Lambda's execution environments do; with JSON logs, as
    /// the template configures them on AWS, and the function's own credentials.
    fn start_functions(&self, lambda_port: u16, dir: &Path, profile: &str) -> Result<(), Failure> {
        for function in self.tools.functions() {
            let credentials = self.function_credentials(&function)?;
            for instance in 1..=concurrency() {
                let spec = Spec::new(
                    &format!("{function}-{instance}"),
                    dir,
                    self.tools.profile_binary(profile, &function),
                )
                .envs(&self.exports.0)
                .envs(&credentials)
                .envs(&self.function_env)
                .env(
                    "AWS_LAMBDA_RUNTIME_API",
                    format!("http://127.0.0.1:{lambda_port}/.rt/{function}"),
                )
                .env("AWS_LAMBDA_FUNCTION_NAME", function.clone())
                .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
                .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1024")
                .env("AWS_LAMBDA_LOG_FORMAT", "JSON")
                .log_as(&function);
                self.supervisor.start(spec)?;
            }
        }
        Ok(())
    }

    /// Invokes every function once, through the Lambda Invoke API, concurrently; each must
    /// answer (whatever it answers: `{}` is no valid event for most).
    fn warm_up(&self, lambda_url: &str, dir: &Path) -> Result<(), Failure> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Failure(e.to_string()))?;
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(600))
            .build()
            .map_err(|e| Failure(e.to_string()))?;
        let functions = self.tools.functions();
        let results = runtime.block_on(async {
            let calls = functions.iter().map(|function| {
                let url = format!("{lambda_url}/2015-03-31/functions/{function}/invocations");
                let client = client.clone();
                async move { (function, client.post(url).body("{}").send().await) }
            });
            futures_util::future::join_all(calls).await
        });
        for (function, result) in results {
            if let Err(e) = result {
                return fail(format!(
                    "the function {function} did not start ({e}; logs: {})",
                    dir.display()
                ));
            }
        }
        Ok(())
    }
}

/// Where a throw-away stack keeps its data: in memory where the machine has a tmpfs, so that
/// DynamoDB Local can keep its tables in files (the fault tests stop and restart it) at
/// in-memory speed.
pub fn scratch_dir(prefix: &str) -> Result<PathBuf, Failure> {
    let base = if Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    let dir = base.join(format!(
        "{prefix}.{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    ));
    std::fs::create_dir_all(&dir).map_err(|e| Failure(format!("{}: {e}", dir.display())))?;
    Ok(dir)
}

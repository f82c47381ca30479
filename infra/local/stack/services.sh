# Starting, watching and stopping the local services: Kafka, DynamoDB Local, the functions
# under cargo lambda watch, the API Gateway emulator and the Kafka event source. Sourced by
# stack.sh.

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
  remember_command "$dir/${name%% *}" "$port" "$@"
  STARTED_PIDS+=("$pid")
  STARTED_PIDFILES+=("$pidfile")
  wait_for_port "$name" "$port" "$pid" "$log" 60
}

# How a service was started (command and port, beside its pid file), so that `stack.sh restart`
# can start it again the same way: the fault tests stop and restart services under load.
remember_command() { # path_without_extension port cmd...
  local base=$1 port=$2; shift 2
  printf '%q ' "$@" >"$base.cmd"
  echo "$port" >"$base.port"
}

# The broker's settings: one KRaft node that is both broker and controller, on loopback. Two
# client listeners: PLAINTEXT for the stack's own tools and tests (the local administrator), and
# IAM, where the functions and the event source connect as MSK's IAM access control has them
# connect (SASL/OAUTHBEARER with MSK IAM tokens), each request authorized against their role in
# infra/template.yaml by the local IAM service (infra/local/kafka/iam, infra/local/iam).
write_kafka_properties() { # port controller_port iam_port iam_url dir
  local port=$1 controller_port=$2 iam_port=$3 iam_url=$4 dir=$5
  cat >"$dir/server.properties" <<PROPERTIES
# Written by infra/local/stack.sh at every start; edits here are lost.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$controller_port
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$controller_port,IAM://127.0.0.1:$iam_port
advertised.listeners=PLAINTEXT://127.0.0.1:$port,IAM://127.0.0.1:$iam_port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,IAM:SASL_PLAINTEXT
listener.name.iam.sasl.enabled.mechanisms=OAUTHBEARER
listener.name.iam.oauthbearer.sasl.jaas.config=org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required;
listener.name.iam.oauthbearer.sasl.server.callback.handler.class=chat.local.MskIamTokenValidator
authorizer.class.name=chat.local.IamAuthorizer
local.iam.url=$iam_url
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
    -cp "$KAFKA_HOME/libs/*:$KAFKA_IAM_PLUGIN_DIR/*" kafka.Kafka "$1/server.properties")
}

start_kafka() { # port controller_port iam_port iam_url datadir
  local port=$1 controller_port=$2 iam_port=$3 iam_url=$4 dir=$5
  mkdir -p "$dir"
  write_kafka_properties "$port" "$controller_port" "$iam_port" "$iam_url" "$dir"
  if [[ ! -f $dir/data/meta.properties ]]; then
    # Storage is formatted once, with a cluster id of its own; later starts reuse it.
    local cluster_id
    cluster_id=$(python3 -c 'import base64, uuid; print(base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("="))')
    java -cp "$KAFKA_HOME/libs/*:$KAFKA_IAM_PLUGIN_DIR/*" -Dlog4j2.configurationFile="$ROOT/infra/local/kafka/log4j2.properties" \
      kafka.tools.StorageTool format --cluster-id "$cluster_id" --config "$dir/server.properties" \
      >>"$dir/Kafka.log" 2>&1 || { tail -15 "$dir/Kafka.log" >&2; die "formatting Kafka's storage in $dir/data failed"; }
  fi
  kafka_command "$dir"
  start_service "Kafka" "$port" "$dir" "${KAFKA_COMMAND[@]}"
}

start_dynamodb() { # port datadir persistent(yes|no)
  local port=$1 dir=$2 storage=(-inMemory)
  mkdir -p "$dir"
  if [[ $3 == yes ]]; then
    dynamodb_working_copy "$dir"
    storage=(-dbPath "$DYNAMODB_DB_DIR")
  fi
  # -sharedDb: one database whatever access key and region a client signs with.
  # -disableTelemetry: it would otherwise call home.
  start_service "DynamoDB Local" "$port" "$dir" \
    java -Xmx512m -Djava.library.path="$DYNAMODB_LOCAL_DIR/DynamoDBLocal_lib" \
      -jar "$DYNAMODB_LOCAL_DIR/DynamoDBLocal.jar" -port "$port" -sharedDb -disableTelemetry "${storage[@]}"
}

# Where DynamoDB Local keeps a persistent database while it runs: a copy in memory (tmpfs),
# saved back to `dir` when the stack stops. On disk, SQLite's syncs made every write wait on
# the disk: PutItem p50 16 ms, 15 items in BatchWriteItem 197 ms, in TransactWriteItems 56 ms;
# on tmpfs 4.8, 13.7 and 20.1 ms (docs/benchmarks.md). A copy left by a run that was killed is
# newer than the saved one and is used, so only a reboot in mid-run loses that run's data.
dynamodb_working_copy() { # dir; sets DYNAMODB_DB_DIR
  local dir=$1 copy
  DYNAMODB_DB_DIR=$dir
  if [[ ! -d /dev/shm || ! -w /dev/shm || $(stat -f -c %T "$dir") == tmpfs ]]; then
    return
  fi
  copy=/dev/shm/chat-backend-dynamodb-$(realpath "$dir" | cksum | cut -d' ' -f1)
  mkdir -p "$copy"
  local saved=$dir/shared-local-instance.db working=$copy/shared-local-instance.db
  if [[ -f $saved && ! ( -f $working && $working -nt $saved ) ]]; then
    cp -p "$saved" "$working"
  fi
  STOP_HOOKS+=("save_dynamodb_copy $(printf '%q %q' "$copy" "$dir")")
  DYNAMODB_DB_DIR=$copy
}

# After DynamoDB Local stopped: its database back to disk (a whole file, then renamed).
save_dynamodb_copy() { # copy dir
  local working=$1/shared-local-instance.db saved=$2/shared-local-instance.db
  [[ -f $working ]] || return 0
  cp -p "$working" "$saved.saving" && mv "$saved.saving" "$saved" \
    && say "saved the DynamoDB Local database to $2" \
    || say "could not save the DynamoDB Local database; it is still in $1"
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
  local hook
  for hook in "${STOP_HOOKS[@]}"; do eval "$hook"; done
  STOP_HOOKS=()
}

# The pid a started service runs as now: a restarted broker has a new one, in its pid file.
current_pid() { # index into STARTED_PIDS
  local file=${STARTED_PIDFILES[$1]}
  if [[ -n $file && -f $file ]]; then cat "$file"; else echo "${STARTED_PIDS[$1]}"; fi
}

# Until Ctrl-C (exit 130), or until a service stops unexpectedly (an error). Checks every 5 s
# rather than `wait -n`, since a broker restarted by a test is no child of this shell; each
# check forks, so once a second was 0.3 % of a core of an idle stack. The pause is a waited-on
# background sleep: a signal ends it at once.
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
    sleep 5 &
    wait $! 2>/dev/null || true
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

# Starts what is not given by the environment, then exports where everything is. The stack's
# own tools and the tests sign their AWS calls as the local administrator (the fallback
# credentials of shared/src/aws.rs); each function signs as itself (function_credentials).
bring_up() { # kafka_port kafka_controller_port kafka_iam_port dynamodb_port dynamodb_local_port datadir persistent(yes|no)
  local kafka_port=$1 controller_port=$2 kafka_iam_port=$3 dynamodb_port=$4 dynamodb_local_port=$5 dir=$6
  export AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local
  unset AWS_SESSION_TOKEN AWS_PROFILE AWS_DEFAULT_PROFILE
  # The local event source's consumer group: make dev's committed offsets are this group's.
  export ESM_GROUP_ID=${ESM_GROUP_ID:-chat-consumer}
  export LOCAL_IAM=${LOCAL_IAM:-on}
  expand_template "$dir/iam"
  # What every function gets besides its credentials: where and how it reaches Kafka.
  FUNCTION_ENV=()
  if [[ -n ${KAFKA_BOOTSTRAP_SERVERS:-} ]]; then
    say "using Kafka at $KAFKA_BOOTSTRAP_SERVERS (KAFKA_BOOTSTRAP_SERVERS is set; starting no broker)"
    warn_unchecked "Kafka permissions are NOT checked: the functions reach your broker directly"
  else
    start_kafka "$kafka_port" "$controller_port" "$kafka_iam_port" "http://127.0.0.1:$dynamodb_port" "$dir/kafka"
    export KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:$kafka_port
    export CHAT_KAFKA_IAM_BOOTSTRAP=127.0.0.1:$kafka_iam_port
    FUNCTION_ENV=(KAFKA_BOOTSTRAP_SERVERS="$CHAT_KAFKA_IAM_BOOTSTRAP" KAFKA_SECURITY=msk-iam KAFKA_TLS=false)
    # Where the broker keeps its pid, log and data, for tests that restart it.
    export CHAT_KAFKA_DIR=$dir/kafka
  fi
  local upstream
  if [[ -n ${DYNAMODB_ENDPOINT:-} ]]; then
    say "using DynamoDB at $DYNAMODB_ENDPOINT (DYNAMODB_ENDPOINT is set; starting no DynamoDB Local)"
    warn_unchecked "DynamoDB permissions are NOT checked: the functions reach $DYNAMODB_ENDPOINT directly"
    upstream=$DYNAMODB_ENDPOINT
  else
    start_dynamodb "$dynamodb_local_port" "$dir/dynamodb" "$7"
    upstream=http://127.0.0.1:$dynamodb_local_port
    # DynamoDB Local itself, unchecked: for tests that stand a local IAM of their own before it.
    export CHAT_DYNAMODB_LOCAL_ENDPOINT=$upstream
    export DYNAMODB_ENDPOINT=http://127.0.0.1:$dynamodb_port
  fi
  start_local_iam "$dynamodb_port" "$upstream" "$dir/iam"
}

# The template after SAM's transform (SAM's own translator, as `sam deploy` would run it): the
# roles and policies local IAM checks every call against.
expand_template() { # dir
  mkdir -p "$1"
  "$CFN_LINT_VENV/bin/python" "$ROOT/infra/local/check_template.py" --expand \
    "$ROOT/infra/template.yaml" "$1/template.json" \
    || die "the SAM transform of infra/template.yaml failed"
  export LOCAL_IAM_TEMPLATE=$1/template.json
  # The Python with SAM's translator, for tests that expand a template of their own.
  export CHAT_SAM_PYTHON=$CFN_LINT_VENV/bin/python
}

# The local IAM service: DynamoDB behind it, and the broker's questions.
start_local_iam() { # port upstream dir
  if [[ $LOCAL_IAM == off ]]; then
    warn_unchecked "LOCAL_IAM=off: calls the template does not allow are NOT refused (only logged in $3/local-iam.log)"
  fi
  start_service "local-iam" "$1" "$3" env LOCAL_IAM_LISTEN="127.0.0.1:$1" LOCAL_IAM_UPSTREAM="$2" \
    "$CARGO_TARGET_DIR/debug/local-iam" serve
  export LOCAL_IAM_URL=http://127.0.0.1:$1
}

# A warning that stays visible: printed now and again in the stack's summary.
UNCHECKED=()
warn_unchecked() {
  UNCHECKED+=("$1")
  printf '\033[1;33m[stack] WARNING: %s\033[0m\n' "$1" >&2
}

# The credentials a function signs with locally (as Lambda gives each function its role's).
function_credentials() { # function
  "$CARGO_TARGET_DIR/debug/local-iam" env "$1"
}

# The functions behind the Lambda Invoke API, the API Gateway emulator in front of them, and
# the Kafka event source that feeds the stream processor. With `watch`, cargo lambda watch
# builds and runs each function itself and restarts it on every source change (make dev);
# with `prebuilt`, it only serves the Lambda APIs and the binaries of the workspace build run
# as they are, nothing compiled again (make test).
start_api() { # api_port lambda_port datadir watch|prebuilt
  local api_port=$1 lambda_port=$2 dir=$3/api mode=$4
  mkdir -p "$dir"
  # Functions inherit this: the stream processor pushes through the emulator's Management API,
  # at the WebSocket stage's path as on AWS.
  local stage; stage=$("$CARGO_TARGET_DIR/debug/local-iam" parameter WebSocketStageName) \
    || die "cannot read the WebSocket stage's name from the template"
  export WS_MANAGEMENT_ENDPOINT=http://127.0.0.1:$api_port/$stage
  # Identity: a local issuer stands in for Cognito (its key pair made once, kept with the data).
  # trust-client unless asked otherwise: the original app's clients send no token.
  export AUTH_MODE=${AUTH_MODE:-trust-client}
  export AUTH_ISSUER=http://127.0.0.1:$api_port/auth AUTH_AUDIENCE=chat-local AUTH_KEY_DIR=$3/auth
  chatctl issuer-keys || die "cannot make the local issuer's keys in $AUTH_KEY_DIR"
  [[ $AUTH_MODE == trust-client ]] \
    && say "AUTH_MODE=trust-client: requests are believed about who sends them (AUTH_MODE=jwt verifies tokens)"
  # make test also verifies tokens on a second address of the same gateway (the identity tests).
  local jwt_port=""
  [[ $mode == prebuilt ]] && jwt_port=$(free_port)
  if [[ $mode == watch ]]; then
    # Each function's credentials are in the workspace's Cargo.toml, where cargo lambda watch
    # reads them ([workspace.metadata.lambda.bin.<function>.env]).
    start_service "cargo-lambda watch" "$lambda_port" "$dir" env -C "$ROOT" "${FUNCTION_ENV[@]}" \
      PATH="$CARGO_LAMBDA_VENV/bin:$PATH" cargo lambda watch --quiet \
      --invoke-address 127.0.0.1 --invoke-port "$lambda_port" --concurrency "$LAMBDA_CONCURRENCY"
  else
    start_service "cargo-lambda watch" "$lambda_port" "$dir" env -C "$ROOT" \
      PATH="$CARGO_LAMBDA_VENV/bin:$PATH" cargo lambda watch --quiet --only-lambda-apis \
      --invoke-address 127.0.0.1 --invoke-port "$lambda_port"
    start_functions "$lambda_port" "$dir"
  fi
  start_service "API-Gateway emulator" "$api_port" "$dir" env \
    APIGW_LISTEN="127.0.0.1:$api_port" LAMBDA_INVOKE_URL="http://127.0.0.1:$lambda_port" \
    APIGW_JWT_LISTEN="${jwt_port:+127.0.0.1:$jwt_port}" APIGW_WEB_ROOT="$ROOT" \
    "$CARGO_TARGET_DIR/debug/local-apigw"
  export CHAT_API_URL=http://127.0.0.1:$api_port
  [[ -n $jwt_port ]] && export CHAT_API_URL_JWT=http://127.0.0.1:$jwt_port
  export LAMBDA_INVOKE_URL=http://127.0.0.1:$lambda_port
  # With `watch`, cargo lambda compiles each function on its first call: make that call now,
  # not in a test. Either way, each function must answer before the stack counts as up.
  say "warming up the functions"
  local manifest function
  for manifest in "$ROOT"/functions/*/Cargo.toml; do
    function=$(basename "$(dirname "$manifest")")
    curl -s -o /dev/null --max-time 600 -X POST -d '{}' \
      "$LAMBDA_INVOKE_URL/2015-03-31/functions/$function/invocations" \
      || die "the function $function did not start (logs: $dir)"
  done
  # The other make dev's event source already feeds its functions.
  # It reads the topic as Lambda's trigger does: with the stream processor's role.
  local credentials
  mapfile -t credentials < <(function_credentials kafka-consumer)
  ((REUSED)) || start_tracked "event-source" "$dir" env "${credentials[@]}" "${FUNCTION_ENV[@]}" \
    "$CARGO_TARGET_DIR/debug/local-kafka-esm"
}

# LAMBDA_CONCURRENCY instances of every function, each polling the Runtime API that cargo
# lambda serves for it, as Lambda's execution environments do; with JSON logs, as the template
# configures them on AWS, and the function's own credentials.
start_functions() { # lambda_port dir
  local manifest function instance credentials
  for manifest in "$ROOT"/functions/*/Cargo.toml; do
    function=$(basename "$(dirname "$manifest")")
    mapfile -t credentials < <(function_credentials "$function")
    for ((instance = 1; instance <= LAMBDA_CONCURRENCY; instance++)); do
      start_background "$function" "$2" env "${credentials[@]}" "${FUNCTION_ENV[@]}" \
        AWS_LAMBDA_RUNTIME_API="http://127.0.0.1:$1/.rt/$function" \
        AWS_LAMBDA_FUNCTION_NAME="$function" AWS_LAMBDA_FUNCTION_VERSION=1 \
        AWS_LAMBDA_FUNCTION_MEMORY_SIZE=1024 AWS_LAMBDA_LOG_FORMAT=JSON "$CARGO_TARGET_DIR/debug/$function"
    done
  done
}

# A service without a port of its own (the event source): started, watched, stopped.
# A process without a port, with a pid file and its command, so that it can be restarted.
start_tracked() { # name dir cmd...
  local name=$1 dir=$2; shift 2
  (cd "$dir" && exec "$@") >>"$dir/$name.log" 2>&1 &
  local pid=$!
  echo "$pid" >"$dir/$name.pid"
  remember_command "$dir/$name" "" "$@"
  STARTED_PIDS+=("$pid")
  STARTED_PIDFILES+=("$dir/$name.pid")
  sleep 0.1
  kill -0 "$pid" 2>/dev/null || { tail -15 "$dir/$name.log" >&2; die "$name exited at start (log: $dir/$name.log)"; }
}

start_background() { # name dir cmd...
  local name=$1 dir=$2; shift 2
  local log=$dir/${name%% *}.log
  (cd "$dir" && exec "$@") >>"$log" 2>&1 &
  STARTED_PIDS+=("$!")
  STARTED_PIDFILES+=("")
  sleep 0.1
  kill -0 "$!" 2>/dev/null || { tail -15 "$log" >&2; die "$name exited at start (log: $log)"; }
}

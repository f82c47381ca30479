# Building: one debug build of the whole workspace serves the local stack, the lints and the
# tests; release builds for arm64 Lambda, one function at a time. Sourced by stack.sh.

LINTS=unchecked   # checked | unchecked: whether builds went through clippy

# Workspace crates compile through clippy-driver, lints denied, so that one build both lints
# and produces the binaries and tests: `cargo clippy` would check every dependency a second
# time. The same variables must be set for every later cargo call (cargo lambda watch's too),
# or our crates are built again without them.
lint_in_builds() {
  local driver
  driver=$(rustup which clippy-driver 2>/dev/null || command -v clippy-driver || true)
  if [[ -z $driver || ! -x $driver ]]; then
    printf '\n\033[1;33m[stack] WARNING: clippy is not installed, so lints are NOT checked (rustup component add clippy)\033[0m\n\n' >&2
    return
  fi
  export RUSTC_WORKSPACE_WRAPPER=$driver
  export CLIPPY_ARGS="-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__"
  LINTS=checked
}

check_formatting() {
  if ! cargo fmt --version >/dev/null 2>&1; then
    printf '\n\033[1;33m[stack] WARNING: rustfmt is not installed, so formatting is NOT checked (rustup component add rustfmt)\033[0m\n\n' >&2
    return
  fi
  say "cargo fmt --check"
  cargo fmt --all --check || die "formatting differs: run cargo fmt --all"
}

# Every target of every crate at once (binaries, libraries, tests): a narrower build, or one
# package alone, would resolve dependency features differently and compile them again.
build_workspace() {
  prune_target
  say "building the workspace (lints $LINTS)"
  cargo build --quiet --workspace --all-targets || die "building the workspace failed"
}

chatctl() {
  "$CARGO_TARGET_DIR/debug/chatctl" "$@"
}

# The shared target directory keeps every test binary and incremental cache each clone and
# feature set ever built (150 MB a binary): it reached 74 GB in three days and filled the disk.
# Linked executables and incremental caches untouched for a day go; cargo rebuilds any it
# needs. Compiled dependencies (.rlib, .rmeta, .so) and build scripts stay.
prune_target() {
  local debug=$CARGO_TARGET_DIR/debug
  [[ -d $debug/deps ]] || return 0
  find "$debug/deps" -maxdepth 1 -type f -perm -u+x ! -name '*.*' -mmin +1440 -delete 2>/dev/null || true
  [[ -d $debug/incremental ]] \
    && find "$debug/incremental" -mindepth 1 -maxdepth 1 -type d -mmin +1440 -exec rm -rf {} + 2>/dev/null
  return 0
}

# The functions that do not publish, built on their own: in the workspace build every crate
# sees the features any crate enables, so only this shows that they build without Kafka. A build,
# not a check: the dependencies' compiled artifacts are reused (a check would compile them all
# again, in check mode).
check_lean_functions() {
  local packages=() dir name
  for dir in "$ROOT"/functions/*/; do
    name=$(basename "$dir")
    grep -q 'features = \[.*"kafka"' "$dir/Cargo.toml" || packages+=(-p "$name")
  done
  say "building the functions that do not publish on their own, without Kafka"
  cargo build --quiet "${packages[@]}" || die "a function without the kafka feature does not build"
}

# The stand-in <curl/curl.h> of the arm64 cross-build (see the header), copied to a path that
# is the same for every clone: a path inside the clone would make each new clone rebuild the
# C libraries that read it.
cross_build_include() {
  local dir=$TOOLS_DIR/build-include
  mkdir -p "$dir/curl"
  cmp -s "$ROOT/infra/build/include/curl/curl.h" "$dir/curl/curl.h" \
    || cp "$ROOT/infra/build/include/curl/curl.h" "$dir/curl/curl.h"
  echo "$dir"
}

cmd_build() {
  with_install_lock install_cargo_lambda
  with_install_lock install_cmake
  local started=$SECONDS dir name bins=() include
  include=$(cross_build_include)
  # One function at a time: built together, they would all get the features any of them
  # enables (librdkafka in every one).
  for dir in "$ROOT"/functions/*/; do
    [[ -f $dir/Cargo.toml ]] || continue
    name=$(basename "$dir")
    say "cargo lambda build --release --arm64 -p $name"
    # Through cargo's config, not the environment: cargo-lambda 1.9.2 itself panics when
    # C_INCLUDE_PATH is set.
    (cd "$ROOT" && PATH="$CARGO_LAMBDA_VENV/bin:$CMAKE_VENV/bin:$PATH" \
      cargo lambda build --quiet --release --arm64 -p "$name" \
        --config "env.C_INCLUDE_PATH=\"$include\"") || die "building $name failed"
    bins+=("$CARGO_TARGET_DIR/lambda/$name/bootstrap")
  done
  say "built in $((SECONDS - started)) s; bootstraps in $CARGO_TARGET_DIR/lambda:"
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
  local include; include=$(cross_build_include)
  cd "$ROOT"
  # sam runs cargo lambda itself, which panics when C_INCLUDE_PATH is set: the C compiler of the
  # arm64 target gets the header's directory through its own flags instead.
  CFLAGS_aarch64_unknown_linux_gnu="-I$include${CFLAGS_aarch64_unknown_linux_gnu:+ $CFLAGS_aarch64_unknown_linux_gnu}" \
    PATH="$CARGO_LAMBDA_VENV/bin:$CMAKE_VENV/bin:$PATH" sam "$@"
}

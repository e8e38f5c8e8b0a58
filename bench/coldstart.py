#!/usr/bin/env python3
"""Cold start of each release bootstrap, as Lambda runs it: a Lambda Runtime
API on loopback (next / response / error), the binary started with
AWS_LAMBDA_RUNTIME_API and its function's environment, and per run:
init (exec to the first `next`), the first invocation, warm invocations, and
peak RSS (VmHWM). Prints JSON: medians over the runs. With
BENCH_EXTENSION_PORT, BENCH_SECRET_ARN and BENCH_PUBLIC_KEYS_ARN set, the
functions read their keys as deployed, from the Parameters and Secrets
extension (a stand-in) on that port, at their first invocation: the signers
the private key set, the others its published public keys (without
BENCH_PUBLIC_KEYS_ARN, the private set too, as on an HS256 stack). The rotation
function (key-rotation) calls Secrets Manager itself, through the SDK: here a
stand-in of the calls it makes for a finishSecret retried after the rotation
finished (two DescribeSecret, nothing written), the path with the least work
of its own, so that its figure is the cost of being cold (key generation, in
createSecret, takes tens to hundreds of milliseconds at random, cold or warm).
Needs `cryptography` (scripts/keyset.py signs the tokens).

With BENCH_FUNCTIONS set (names, comma-separated), only those functions
and the hello-world floor are measured.

    bench/coldstart.py <target-dir> <dynamodb-endpoint> <table> [runs]
"""

import http.server
import json
import os
import queue
import random
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import keyset  # noqa: E402  (scripts/keyset.py)

WARM = 30
# The secret the rotation function rotates, and the one version it finds, current.
ROTATED = "arn:aws:secretsmanager:us-east-1:000000000000:secret:bench-rotated"
ROTATED_VERSION = "bench-current-version"


def dev_env():
    env = {}
    for line in (ROOT / "dev.env").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#") and "=" in line:
            k, v = line.split("=", 1)
            v = v.strip()
            # cargo lambda reads a single-quoted value without its quotes (JWT_SECRET's JSON).
            env[k.strip()] = v[1:-1] if len(v) > 1 and v[0] == v[-1] == "'" else v
    return env


class SecretsManager(http.server.ThreadingHTTPServer):
    """What the rotation function asks of Secrets Manager for a finishSecret
    of a version that is current already: DescribeSecret (rotation on, that
    version AWSCURRENT). Anything else is refused, as a bench that wrote would be wrong."""

    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), SecretsManagerHandler)


class SecretsManagerHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def setup(self):
        super().setup()
        # As for the Runtime API: no Nagle on a kept-alive connection (40 ms a call).
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.headers.get("X-Amz-Target") == "secretsmanager.DescribeSecret":
            status, body = 200, {"ARN": ROTATED, "Name": "bench-rotated", "RotationEnabled": True,
                                 "VersionIdsToStages": {ROTATED_VERSION: ["AWSCURRENT"]}}
        else:
            status, body = 400, {"__type": "UnknownOperationException", "message": self.headers.get("X-Amz-Target")}
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


def event(name, body=None, token=None):
    text = (ROOT / "events" / f"{name}.json").read_text()
    if token:
        text = text.replace("${ACCESS_TOKEN}", token).replace("${REFRESH_TOKEN}", token)
    e = json.loads(text)
    # A source address of its own per event (TEST-NET-2 and 198.18/15): the
    # runs register and log in far past one address's allowance per window,
    # and the cold start, not the per-address throttle, is what is measured.
    http = e.get("requestContext", {}).get("http")
    if http is not None:
        http["sourceIp"] = f"198.{18 + random.randrange(2)}.{random.randrange(256)}.{random.randrange(1, 255)}"
    if body is not None:
        e["body"] = json.dumps(body)
    return e


class RuntimeApi(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.events = queue.Queue()
        self.answers = queue.Queue()
        self.first_next = None
        self.sent_at = {}

    def handle_error(self, request, client_address):
        pass  # the function is killed while it waits for its next event: expected


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def setup(self):
        super().setup()
        # Headers and body go out as separate writes: without this, Nagle and
        # delayed ACKs add 40 ms to every warm invocation.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self):
        api = self.server
        if api.first_next is None:
            api.first_next = time.perf_counter()
        payload = json.dumps(api.events.get()).encode()
        request_id = str(uuid.uuid4())
        self.send_response(200)
        self.send_header("Lambda-Runtime-Aws-Request-Id", request_id)
        self.send_header("Lambda-Runtime-Deadline-Ms", str(int(time.time() * 1000) + 30000))
        self.send_header("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:123456789012:function:bench")
        self.send_header("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        api.sent_at[request_id] = time.perf_counter()
        self.wfile.write(payload)

    def do_POST(self):
        api = self.server
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        parts = self.path.split("/")
        self.send_response(202)
        self.send_header("Content-Length", "0")
        self.end_headers()
        if "invocation" in parts:
            request_id = parts[parts.index("invocation") + 1]
            api.answers.put((time.perf_counter() - api.sent_at.pop(request_id), parts[-1], body))
        else:
            api.answers.put((0.0, "init-error", body))


def access_token(env):
    """An access token of the dev key set's current key, made as the service makes them."""
    now = int(time.time())
    claims = {"iss": env["JWT_ISSUER"], "aud": env["JWT_AUDIENCE"], "sub": "u-1", "username": "alice",
              "sid": "s-bench", "amr": ["pwd"], "iat": now, "nbf": now, "exp": now + 900, "jti": "bench", "token_use": "access"}
    return keyset.sign(env["JWT_SECRET"], claims)


def peak_rss_kib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def succeeded(raw, expected=None):
    """True for the answer expected: the status `expected` if given, else
    one that is not an error (a 2xx/3xx response, an authorizer's allow, a
    rotation step's null)."""
    answer = json.loads(raw)
    if answer is None:
        return expected is None
    status = answer.get("statusCode", 200)
    if expected is not None:
        return status == expected
    return status < 400 and answer.get("isAuthorized", True)


def run_once(binary, env, first_event, warm_event, warm_count=WARM, bodies=None, expected=None):
    """One cold start: init, first and median warm latency, peak RSS. The
    answers' bodies go to `bodies` when it is a list."""
    api = RuntimeApi()
    threading.Thread(target=api.serve_forever, daemon=True).start()
    api.events.put(first_event())
    full_env = {"PATH": os.environ["PATH"], **env, "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{api.server_port}",
                "AWS_LAMBDA_FUNCTION_NAME": binary.name, "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
                "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST", "RUST_LOG": "warn"}
    started = time.perf_counter()
    proc = subprocess.Popen([str(binary)], env=full_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    failure = None
    try:
        first, kind, body = api.answers.get(timeout=30)
        if kind != "response" or not succeeded(body, expected):
            failure = f"{binary.name}: {kind} {body[:300]!r}"
            return None
        init = api.first_next - started
        answers = [body]
        warm = []
        for _ in range(warm_count):
            api.events.put(warm_event())
            latency, kind, body = api.answers.get(timeout=30)
            if kind != "response" or not succeeded(body, expected):
                failure = f"{binary.name}, warm: {kind} {body[:300]!r}"
                return None
            warm.append(latency)
            answers.append(body)
        if bodies is not None:
            bodies.extend(answers)
        rss = peak_rss_kib(proc.pid)
    finally:
        proc.kill()
        proc.wait()
        api.shutdown()
        if failure:
            raise SystemExit(f"{failure} {proc.stderr.read()[-2000:]!r}")
    return init, first, statistics.median(warm), rss


def logins(target, env, login, count):
    """`count` token responses, one session each, from the login binary."""
    bodies = []
    run_once(target / "login", env, login, login, count - 1, bodies)
    return [json.loads(json.loads(raw)["body"]) for raw in bodies]


def main():
    target, ddb, table = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    runs = int(sys.argv[4]) if len(sys.argv) > 4 else 5
    env = {k: v for k, v in dev_env().items() if k != "RUST_LOG"}
    # No range server runs here: the breached-password check is off (its time is not the function's).
    env.update({"AWS_ENDPOINT_URL_DYNAMODB": ddb, "TABLE_NAME": table, "BREACHED_PASSWORD_CHECK": "off"})
    # passkeys refuses to start without its relying party (dev.env has it).
    env.setdefault("WEBAUTHN_RP_ID", "localhost")
    env.setdefault("WEBAUTHN_ORIGIN", "http://localhost:8090")
    only = {n for n in os.environ.get("BENCH_FUNCTIONS", "").split(",") if n}
    # The functions that need registered users and their sessions.
    with_users = {"register", "login", "refresh", "logout", "account", "sessions", "email", "mfa"}
    if "BENCH_EXTENSION_PORT" in os.environ:
        # Each function reads what the template gives it: the signers JWT_SECRET_ARN
        # (they ignore JWT_PUBLIC_KEYS_ARN), the others JWT_PUBLIC_KEYS_ARN first.
        env.update({"JWT_SECRET_ARN": os.environ["BENCH_SECRET_ARN"],
                    "PARAMETERS_SECRETS_EXTENSION_HTTP_PORT": os.environ["BENCH_EXTENSION_PORT"],
                    "AWS_SESSION_TOKEN": "stand-in-session-token"})
        if "BENCH_PUBLIC_KEYS_ARN" in os.environ:
            env["JWT_PUBLIC_KEYS_ARN"] = os.environ["BENCH_PUBLIC_KEYS_ARN"]
    access = access_token(env)
    # The rotation function's environment, as the template sets it.
    env_of = {"key-rotation": {**env, "JWT_PUBLIC_KEYS_ARN": env.get("JWT_PUBLIC_KEYS_ARN", "bench-public-keys"),
                               "SIGNING_ALGORITHM": "RS256", "KEYS_REFRESH_SECONDS": "300",
                               "ACCESS_TOKEN_TTL": "900", "REFRESH_TOKEN_TTL": "2592000"}}
    rotation_step = lambda: {"SecretId": ROTATED, "ClientRequestToken": ROTATED_VERSION, "Step": "finishSecret"}
    password = "correct horse battery staple"
    unique = lambda: {"username": f"cold-{uuid.uuid4().hex[:12]}", "password": password}
    login_user = {"username": f"cold-login-{uuid.uuid4().hex[:12]}", "password": password}
    login = lambda: event("login-ok", login_user)
    if not only or only & with_users:
        run_once(target / "register", env, lambda: event("register-ok", login_user), lambda: event("register-ok", unique()))
        # refresh and logout spend a real session each time, so that their first
        # invocation pays for its DynamoDB round trips as a user's would.
        pairs = logins(target, env, login, 2 * runs * (WARM + 1))
        sessions = iter(pair["refresh_token"] for pair in pairs)
        # account and sessions read the user's own items: a real user's token.
        user_access = pairs[0]["access_token"]
    cases = {
        "hello-floor": (lambda: event("protected-ok", token=access),) * 2,
        "protected": (lambda: event("protected-ok", token=access),) * 2,
        "register": (lambda: event("register-ok", unique()),) * 2,
        "login": (login,) * 2,
        "refresh": (lambda: event("refresh-ok", token=next(sessions)),) * 2,
        "logout": (lambda: event("logout-ok", token=next(sessions)),) * 2,
        "account": (lambda: event("account-get", token=user_access),) * 2,
        "sessions": (lambda: event("sessions-list", token=user_access),) * 2,
        # Mail functions on a path that reads the table and sends nothing (the
        # hourly mail limit would refuse hundreds of mails to one account): a
        # code check with no code pending, a reset with an unknown token.
        "email": (lambda: event("email-verify", token=user_access),) * 2 + (400,),
        "password-reset": (lambda: event("password-reset", {"token": uuid.uuid4().hex, "new_password": password}),) * 2 + (400,),
        # mfa on a path that reads the table and changes nothing: a confirmation
        # by a real user with no pending factor (404, no failure counted).
        "mfa": (lambda: event("mfa-confirm", token=user_access),) * 2 + (404,),
        "jwks": (lambda: event("jwks"),) * 2,
        "authorizer": (lambda: event("authorizer-ok", token=access),) * 2,
        # passkeys on the route that reads nothing and writes a challenge:
        # the start of a passkey login (webauthn-rs's options, one PutItem).
        "passkeys": (lambda: event("login-passkey-start"),) * 2 + (200,),
        # The rotation function: a finishSecret of the current version (see the top).
        "key-rotation": (rotation_step,) * 2,
    }
    if only:
        unknown = only - cases.keys()
        if unknown:
            raise SystemExit(f"BENCH_FUNCTIONS: no such function {sorted(unknown)}")
        cases = {name: case for name, case in cases.items() if name == "hello-floor" or name in only}
    if "key-rotation" in cases:
        secrets_manager = SecretsManager()
        threading.Thread(target=secrets_manager.serve_forever, daemon=True).start()
        env_of["key-rotation"]["AWS_ENDPOINT_URL_SECRETS_MANAGER"] = f"http://127.0.0.1:{secrets_manager.server_port}"
    # Round robin, so that a noisy moment of a shared machine falls on every
    # function, the floor included, rather than on all the runs of one.
    runs_of = {name: [] for name in cases}
    for _ in range(runs):
        for name, (first, warm, *expected) in cases.items():
            runs_of[name].append(run_once(target / name, env_of.get(name, env), first, warm,
                                          expected=next(iter(expected), None)))
    results = {}
    for name, samples in runs_of.items():
        init, first_ms, warm_ms, rss = (statistics.median(s[i] for s in samples) for i in range(4))
        extra = sorted((s[0] + s[1] - s[2]) * 1000 for s in samples)
        results[name] = {"init_ms": init * 1000, "first_ms": first_ms * 1000, "warm_ms": warm_ms * 1000,
                         "extra_ms": statistics.median(extra), "extra_range_ms": [extra[0], extra[-1]],
                         "peak_rss_mb": rss / 1024, "size_mb": (target / name).stat().st_size / 1e6}
    print(json.dumps(results))


if __name__ == "__main__":
    main()

"""Schemathesis hooks for `make test`: skip request bodies that are not UTF-8,
and give every operation that needs an access token a valid one.

`cargo lambda watch` (the local stack) answers 500 to a body labelled JSON
that is not UTF-8, before any function runs. Deployed, API Gateway passes
such bodies on (base64) and the functions answer 400: that case is covered by
events/login-not-utf8.json and the handler and end-to-end tests.

Access tokens: schemathesis sends a random `Authorization: Bearer ...` to the
operations secured by `accessToken` in openapi.yaml (/protected, /account,
/account/password, /account/email, /account/email/verify, /sessions,
/sessions/{id}), which only ever gets a 401.
Just before such a call, `before_call` registers a new user, logs it in (twice
for the /sessions routes, so that there is another session to list and to
end) and puts the access token in place of the random one. A new user for
each call that changes something, because those calls use their user up:
DELETE /account deletes it, POST /account/password changes its password and
ends its other sessions, DELETE /sessions/{id} ends a session, and every
wrong password they are sent counts toward the user's login lock (429 after
5), which would lock a shared user out of the very login that gets its
tokens. GET calls change nothing: they share one user (per number of logins)
for 10 minutes, well within the access token's 15. The users are left in the
test table.

So that the successes are exercised as well as the refusals, every other call
of an operation gets the user's real password (`password` of DELETE /account,
`current_password` of POST /account/password), the id of its other session
(DELETE /sessions/{id}), or a code that was mailed to it (POST
/account/email/verify: the hook sets a new address with POST /account/email
and reads the code back from aws-ses-v2-local's `GET /store` at
`AWS_ENDPOINT_URL_SESV2`; without that variable the call keeps its generated
code and gets `400 invalid_code`) in place of the generated string. A call that
schemathesis sends without the header, or with a header that is not a bearer
token, or with its deliberately invalid one, is left as generated: those are
the 401 cases.

The second factor likewise: on every other call, POST /mfa/totp/confirm gets a
user with a pending enrollment and the current code of its secret (computed
here, RFC 6238); DELETE /mfa/totp and POST /mfa/recovery-codes get a user with
an active factor and its password or a fresh code, in whichever field the
case holds as a string (and POST /mfa/totp such a user: `409 totp_enabled`,
its other calls a new user: `200`); and POST /login/mfa (no access token: it takes the
`mfa_token` of a `403 mfa_required` login) gets a live `mfa_token` of such a
user and a fresh code or one of its recovery codes. Otherwise those calls
would only ever see `404` (no factor) or `401`.

This runs at call time, not when the case is generated: a register and a login
per case (argon2id each) inside Hypothesis' generation would trip its
`too_slow` health check."""

import base64
import collections
import hashlib
import hmac
import json
import os
import re
import secrets
import struct
import time
import urllib.error
import urllib.request

import schemathesis

# What schemathesis sends when it probes with a credential that must be refused.
INVALID_CREDENTIAL = "SCHEMATHESIS-INVALID-VALUE"
_turns = collections.Counter()
# Number of logins -> (until when, user) for the GET calls; seconds of time.monotonic().
_shared = {}
SHARED_FOR = 600


def _utf8(body):
    if isinstance(body, (bytes, bytearray)):
        try:
            body.decode("utf-8")
        except UnicodeDecodeError:
            return False
    if isinstance(body, str):
        try:
            body.encode("utf-8")
        except UnicodeEncodeError:
            return False
    return True


@schemathesis.hook
def filter_body(ctx, body):
    return _utf8(body)


def _client_address():
    """A loopback address of its own for each request: the local stack reports
    every client as 127.0.0.1 and then takes the client's address from
    X-Forwarded-For, so schemathesis's many registrations and failed logins do
    not use up one address's allowance (429 past it) for the suites after it."""
    return "127.%d.%d.%d" % (secrets.randbelow(254) + 1, secrets.randbelow(256), secrets.randbelow(253) + 2)


def _call(base, method, path, body, access_token=None):
    headers = {"content-type": "application/json", "x-forwarded-for": _client_address()}
    if access_token:
        headers["authorization"] = f"Bearer {access_token}"
    request = urllib.request.Request(
        base + path,
        data=json.dumps(body).encode(),
        method=method,
        headers=headers,
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, text = response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        status, text = error.code, error.read().decode()
    return status, text


def _expect(step, got, want):
    status, text = got
    if status != want:
        raise RuntimeError(f"schemathesis hooks: {step} answered {status}, not {want}: {text}")
    return json.loads(text) if text else None


def _session_id(access_token):
    """The `sid` claim of a JWT (read, not verified: the API verifies it)."""
    payload = access_token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["sid"]


def _mailed_code(address):
    """The code of the last mail to `address` in aws-ses-v2-local's store, or None."""
    ses = os.environ.get("AWS_ENDPOINT_URL_SESV2", "").rstrip("/")
    if not ses:
        return None
    for _ in range(50):
        with urllib.request.urlopen(ses + "/store", timeout=10) as response:
            emails = json.load(response).get("emails", [])
        for email in reversed(emails):
            if address in email.get("destination", {}).get("to", []):
                # The code is the text body's only run of six digits.
                found = re.search(r"(?<!\d)\d{6}(?!\d)", email.get("body", {}).get("text") or "")
                if found:
                    return found.group()
        time.sleep(0.1)
    raise RuntimeError(f"schemathesis hooks: no code mailed to {address} in {ses}/store")


def _code_for(base, access_token):
    """Sets a new address on the token's account and returns the code mailed to it (None without the mail store)."""
    if not os.environ.get("AWS_ENDPOINT_URL_SESV2"):
        return None
    address = f"st-{secrets.token_hex(8)}@example.com"
    _expect("POST /account/email", _call(base, "POST", "/account/email", {"email": address}, access_token), 202)
    return _mailed_code(address)


def _new_user(base, logins):
    """A new user logged in `logins` times: (password, access token of the last login, session ids in login order)."""
    user = {"username": f"st-{secrets.token_hex(8)}", "password": secrets.token_urlsafe(18)}
    _expect("POST /register", _call(base, "POST", "/register", user), 201)
    tokens = [_expect("POST /login", _call(base, "POST", "/login", user), 200) for _ in range(logins)]
    return user["password"], tokens[-1]["access_token"], [_session_id(t["access_token"]) for t in tokens]


def _totp(secret, at):
    """The RFC 6238 code (SHA-1, 6 digits, 30 s) of base32 `secret` at Unix time `at`."""
    key = base64.b32decode(secret + "=" * (-len(secret) % 8))
    mac = hmac.new(key, struct.pack(">Q", int(at) // 30), hashlib.sha1).digest()
    offset = mac[-1] & 0x0F
    return "%06d" % ((struct.unpack(">I", mac[offset:offset + 4])[0] & 0x7FFFFFFF) % 1_000_000)


def _totp_user(base, confirmed):
    """A new user with a TOTP factor, pending or `confirmed` (with the code of
    the current step, so that the next one is fresh, and both are in the
    window even if a step ends meanwhile): (credentials, access token,
    secret, recovery codes)."""
    password, access_token, _ = _new_user(base, 1)
    enrollment = _expect("POST /mfa/totp", _call(base, "POST", "/mfa/totp", {}, access_token), 200)
    recovery = []
    if confirmed:
        code = _totp(enrollment["secret"], time.time())
        confirmation = _call(base, "POST", "/mfa/totp/confirm", {"code": code}, access_token)
        recovery = _expect("POST /mfa/totp/confirm", confirmation, 200)["recovery_codes"]
    username = _claims(access_token)["username"]
    return {"username": username, "password": password}, access_token, enrollment["secret"], recovery


def _claims(token):
    """The claims of a JWT (read, not verified: the API verifies it)."""
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def _with_second_factor(case, base):
    """POST /login/mfa with a live `mfa_token` and a fresh code or a recovery code."""
    creds, _, secret, recovery = _totp_user(base, confirmed=True)
    mfa_token = _expect("POST /login", _call(base, "POST", "/login", creds), 403)["mfa_token"]
    body = _with(case.body, "mfa_token", mfa_token)
    body = _with(body, "code", _totp(secret, time.time() + 30))
    case.body = _with(body, "recovery_code", recovery[0])


def _user_for(base, method, logins):
    if method != "GET":
        return _new_user(base, logins)
    until, user = _shared.get(logins, (0, None))
    if time.monotonic() >= until:
        user = _new_user(base, logins)
        _shared[logins] = (time.monotonic() + SHARED_FOR, user)
    return user


def _needs_access_token(operation):
    return any("accessToken" in requirement for requirement in operation.definition.raw.get("security", []))


def _sends_bearer(headers):
    values = [value for name, value in (headers or {}).items() if name.lower() == "authorization"]
    return (
        len(values) == 1
        and isinstance(values[0], str)
        and values[0].startswith("Bearer ")
        and INVALID_CREDENTIAL not in values[0]
    )


def _real_turn(case):
    """True on every other call of an operation, starting with the first."""
    key = (case.method.upper(), case.path)
    _turns[key] += 1
    return _turns[key] % 2 == 1


def _with(mapping, field, value):
    """`mapping` with `field` set to `value` if it holds a string there (a wrong type stays as generated)."""
    if isinstance(mapping, dict) and isinstance(mapping.get(field), str):
        return {**mapping, field: value}
    return mapping


@schemathesis.hook
def before_call(ctx, case, **kwargs):
    case.headers = {**(case.headers or {}), "x-forwarded-for": _client_address()}
    method, path = case.method.upper(), case.path
    base = case.operation.schema.get_base_url().rstrip("/")
    if (method, path) == ("POST", "/login/mfa"):
        if _real_turn(case):
            _with_second_factor(case, base)
        return
    if not _needs_access_token(case.operation) or not _sends_bearer(case.headers):
        return
    factor = None
    if path.startswith("/mfa/") and _real_turn(case):
        # A user with a factor: pending for its confirmation, active for the others.
        creds, access_token, secret, _ = _totp_user(base, confirmed=path != "/mfa/totp/confirm")
        password, sessions, factor = creds["password"], [], secret
    else:
        password, access_token, sessions = _user_for(base, method, 2 if path.startswith("/sessions") else 1)
    headers = case.headers
    for name in [name for name in headers if name.lower() == "authorization"]:
        del headers[name]
    headers["Authorization"] = f"Bearer {access_token}"
    case.headers = headers
    if factor is not None:
        # The confirmation takes the current step's code; the others the next
        # step's, fresh after the current one the confirmation used.
        at = time.time() + (0 if path == "/mfa/totp/confirm" else 30)
        case.body = _with(_with(case.body, "code", _totp(factor, at)), "password", password)
        return
    if path.startswith("/mfa/") or not _real_turn(case):
        return
    if (method, path) == ("DELETE", "/account"):
        case.body = _with(case.body, "password", password)
    elif (method, path) == ("POST", "/account/password"):
        case.body = _with(case.body, "current_password", password)
    elif (method, path) == ("DELETE", "/sessions/{id}"):
        case.path_parameters = _with(case.path_parameters, "id", sessions[0])
    elif (method, path) == ("POST", "/account/email/verify"):
        code = _code_for(base, access_token)
        if code is not None:
            case.body = _with(case.body, "code", code)

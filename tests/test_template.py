"""Checks on template.yaml that cfn-lint cannot know: every function has its
binary, each role allows exactly what its function calls, only the mailing
functions may send mail and only from the sender's identity, the table keeps
TTL and backups, the authorizer caches per route and knows which routes need
a second factor, and only the passkeys function knows the WebAuthn relying
party. The keys: only the signers' roles can read the private secret (and
the verifiers' under SymmetricKeys alone), the verifiers read the public one,
register and password-reset neither; the extension layer and the key
variables reach exactly the functions that read keys; the rotation function
may do exactly the rotation's calls, on a schedule from KeyRotationDays that
also runs at once. The deploy fixes: the access log group under
/aws/vendedlogs/, the exposed CORS headers, ${AWS::URLSuffix} in the URLs,
the example route behind the native JWT authorizer. Monitoring: each alarm
watches its metric (the functions' own in the stack's namespace, API
Gateway's 5xx, the table's throttles) and mails a topic with an optional
subscription; the dashboard parses and shows every metric; the functions
that record audit events keep them AuditRetentionDays. Run by `make check`."""

import json
import re
import unittest
from pathlib import Path

from cfnlint.decode import decode

ROOT = Path(__file__).resolve().parent.parent
TABLE = {"Fn::GetAtt": ["AuthTable", "Arn"]}
# The private key set, and the public keys (a JWKS) the rotation publishes.
PRIVATE = {"Ref": "JwtSecret"}
PUBLIC = {"Ref": "JwtPublicKeys"}
# The Parameters and Secrets extension, at its newest version in the stack's region.
EXTENSION = "{{resolve:ssm:/aws/service/aws-parameters-and-secrets-lambda-extension/arm64/latest}}"

# The five item actions (TransactWriteItems is authorized per item it holds).
ITEM_CALLS = {"dynamodb:GetItem", "dynamodb:Query", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"}

# The DynamoDB calls each function makes (shared/src/store/dynamo.rs); protected, jwks and authorizer make none.
DYNAMODB_CALLS = {
    # With an email: the address's claim, the pending code, the mail counts, undone when the mail fails.
    "register": ITEM_CALLS,
    # GetItem: a login by email reads the address's claim; ConditionCheckItem:
    # the session is written only while the password is the one checked.
    "login": ITEM_CALLS | {"dynamodb:ConditionCheckItem"},
    # PutItem: the audit event of a reuse (refresh) and of a logout or a revocation (logout, sessions).
    "refresh": {"dynamodb:GetItem", "dynamodb:UpdateItem", "dynamodb:PutItem"},
    "protected": set(),
    "logout": {"dynamodb:UpdateItem", "dynamodb:Query", "dynamodb:PutItem"},
    # TransactWriteItems (password change, deletion) is authorized per item: Update, Delete, ConditionCheck.
    "account": {
        "dynamodb:GetItem",
        "dynamodb:Query",
        "dynamodb:PutItem",
        "dynamodb:DeleteItem",
        "dynamodb:UpdateItem",
    },
    "sessions": {"dynamodb:Query", "dynamodb:UpdateItem", "dynamodb:PutItem"},
    "email": ITEM_CALLS,
    "password-reset": ITEM_CALLS,
    # The pending and active factor, the recovery codes, the failed-code count; confirming and
    # disabling are TransactWriteItems (the factor and the user's `totp` flag) with a ConditionCheck.
    "mfa": ITEM_CALLS | {"dynamodb:ConditionCheckItem"},
    # Challenges (put, taken by a conditional delete), passkeys and their credential-id claims, the
    # user's count; a passkey login is a TransactWriteItems with a ConditionCheck on the user.
    "passkeys": ITEM_CALLS | {"dynamodb:ConditionCheckItem"},
    "jwks": set(),
    "authorizer": set(),
    "key-rotation": set(),
}

# The functions that send mail (SES v2 SendEmail); no other role has any ses: action.
MAILERS = {"register", "email", "password-reset"}
# SendEmail is authorized on the identity that verified the sender: the address
# itself (EmailFrom) or its domain.
SENDER_IDENTITIES = [
    {"Fn::Sub": "arn:${AWS::Partition}:ses:${AWS::Region}:${AWS::AccountId}:identity/${EmailFrom}"},
    {
        "Fn::Sub": [
            "arn:${AWS::Partition}:ses:${AWS::Region}:${AWS::AccountId}:identity/${Domain}",
            {"Domain": {"Fn::Select": [1, {"Fn::Split": ["@", {"Ref": "EmailFrom"}]}]}},
        ]
    },
]
# Who reads which keys. Signers read the private key set; verifiers the public keys only
# (the private set under SymmetricKeys, where an HMAC key has no public half); the keyless
# issue and verify no token and read neither. Every function is in exactly one of these or
# is the rotation.
SIGNERS = {"login", "refresh", "passkeys"}
VERIFIERS = {"protected", "jwks", "authorizer", "account", "sessions", "email", "mfa", "logout"}
KEYLESS = {"register", "password-reset"}
ROTATION = "key-rotation"
# What each may call on which secret, by whether SymmetricKeys holds.
READ = "secretsmanager:GetSecretValue"
ROTATION_CALLS = {
    ("secretsmanager:DescribeSecret", "JwtSecret"),
    ("secretsmanager:GetSecretValue", "JwtSecret"),
    ("secretsmanager:PutSecretValue", "JwtSecret"),
    ("secretsmanager:UpdateSecretVersionStage", "JwtSecret"),
    ("secretsmanager:GetSecretValue", "JwtPublicKeys"),
    ("secretsmanager:PutSecretValue", "JwtPublicKeys"),
}


def secret_calls(binary, symmetric):
    """The (action, secret) pairs the role of `binary` must allow, no more."""
    if binary in SIGNERS:
        return {(READ, "JwtSecret")}
    if binary in VERIFIERS:
        return {(READ, "JwtSecret" if symmetric else "JwtPublicKeys")}
    if binary == ROTATION:
        return ROTATION_CALLS
    return set()


# The variables that say where the keys are and how to read them; only key readers get them.
KEY_VARS = {
    "JWT_SECRET",
    "JWT_SECRET_ARN",
    "JWT_PUBLIC_KEYS_ARN",
    "KEYS_REFRESH_SECONDS",
    "SECRETS_MANAGER_TTL",
    "SECRETS_MANAGER_TIMEOUT_MILLIS",
    "SIGNING_ALGORITHM",
}
# How the key readers read through the extension: its cache off (the functions keep the keys
# and re-read them every KEYS_REFRESH_SECONDS), its own deadline inside the functions' 3 s.
EXTENSION_VARS = {"SECRETS_MANAGER_TTL": "0", "SECRETS_MANAGER_TIMEOUT_MILLIS": "2500"}


def key_vars(binary, symmetric):
    """The key variables `binary` must get, exactly."""
    refresh = {"KEYS_REFRESH_SECONDS": {"Ref": "KeysRefreshSeconds"}}
    if binary in SIGNERS:
        return {"JWT_SECRET_ARN": PRIVATE, **refresh, **EXTENSION_VARS}
    if binary in VERIFIERS:
        where = {"JWT_SECRET_ARN": PRIVATE} if symmetric else {"JWT_PUBLIC_KEYS_ARN": PUBLIC}
        return {**where, **refresh, **EXTENSION_VARS}
    if binary == ROTATION:
        # The secret it rotates comes in each event; it writes no key through the extension.
        return {"JWT_PUBLIC_KEYS_ARN": PUBLIC, "SIGNING_ALGORITHM": {"Ref": "SigningAlgorithm"}, **refresh}
    return {}


def resolve(value, symmetric):
    """`value` as CloudFormation deploys it when SymmetricKeys is `symmetric`: each
    Fn::If on SymmetricKeys replaced by its branch, AWS::NoValue dropped from maps and lists."""
    no_value = object()

    def walk(v):
        if isinstance(v, dict):
            if set(v) == {"Fn::If"} and v["Fn::If"][0] == "SymmetricKeys":
                return walk(v["Fn::If"][1 if symmetric else 2])
            if v == {"Ref": "AWS::NoValue"}:
                return no_value
            out = {k: walk(x) for k, x in v.items()}
            return {k: x for k, x in out.items() if x is not no_value}
        if isinstance(v, list):
            return [x for x in map(walk, v) if x is not no_value]
        return v

    return walk(value)
# The mail settings each mailing function gets, and the parameter behind each.
MAIL_ENV = {
    "register": {"EMAIL_FROM": "EmailFrom", "EMAIL_CODE_TTL": "EmailCodeTtl"},
    "email": {"EMAIL_FROM": "EmailFrom", "EMAIL_CODE_TTL": "EmailCodeTtl"},
    "password-reset": {"EMAIL_FROM": "EmailFrom", "APP_URL": "AppUrl", "PASSWORD_RESET_TTL": "PasswordResetTtl"},
}
# The second-factor settings, each on the one function that reads it, and the parameter behind each.
MFA_ENV = {
    "mfa": {"TOTP_ISSUER": "TotpIssuer"},
    "authorizer": {"REQUIRE_MFA": "RequireMfaRoutes"},
}
# The relying party, on the one function that runs WebAuthn, and the parameter behind each.
WEBAUTHN_ENV = {"passkeys": {"WEBAUTHN_RP_ID": "WebauthnRpId", "WEBAUTHN_ORIGIN": "WebauthnOrigin"}}
# The functions that record audit events (shared::audit), each told how long they are kept.
AUDITORS = {"login", "refresh", "logout", "account", "sessions", "email", "password-reset", "mfa", "passkeys"}
# The functions' own metrics (shared::metrics), in the stack's namespace.
NAMESPACE = {"Ref": "AWS::StackName"}
SERVICE_METRICS = {
    "LoginSucceeded",
    "LoginFailed",
    "LoginLocked",
    "RefreshReuseDetected",
    "MfaFailed",
    "Unavailable",
    "AuditWriteFailed",
    "BreachedCheckFailed",
}
TOPIC = [{"Ref": "AlarmTopic"}]
# Each alarm on one metric: (namespace, metric, dimensions, threshold). Every one sums a 5-minute
# period, fires above its threshold, mails the topic and treats no data as fine.
ALARMS = {
    "RefreshReuseAlarm": (NAMESPACE, "RefreshReuseDetected", None, 0),
    "FailedLoginsAlarm": (NAMESPACE, "LoginFailed", None, {"Ref": "FailedLoginAlarmThreshold"}),
    "ServiceUnavailableAlarm": (NAMESPACE, "Unavailable", None, 0),
    "AuditWriteFailedAlarm": (NAMESPACE, "AuditWriteFailed", None, 0),
    "BreachedCheckFailedAlarm": (NAMESPACE, "BreachedCheckFailed", None, 0),
    # The API has one stage, $default: ApiId alone covers it (and any other).
    "ApiErrorsAlarm": ("AWS/ApiGateway", "5xx", [{"Name": "ApiId", "Value": {"Ref": "Api"}}], 0),
}
# What a Fn::Sub of the dashboard body refers to, and stand-ins for their values.
DASHBOARD_VARS = {
    "AWS::StackName": "my-stack",
    "AWS::Region": "eu-west-1",
    "Api": "a1b2c3d4e5",
    "AuthTable": "my-stack-AuthTable-XYZ",
}


def load():
    template, matches = decode(str(ROOT / "template.yaml"))
    assert not matches, matches
    return template["Resources"]


class Template(unittest.TestCase):
    resources = load()

    def functions(self):
        return {
            r["Metadata"]["BuildProperties"]["Binary"]: (name, r)
            for name, r in self.resources.items()
            if r["Type"] == "AWS::Serverless::Function"
        }

    def test_every_function_crate_is_a_function_with_its_binary(self):
        crates = {p.name for p in (ROOT / "functions").iterdir() if (p / "Cargo.toml").exists()}
        self.assertEqual(set(self.functions()), crates)
        for binary, (name, f) in self.functions().items():
            self.assertEqual(f["Metadata"]["BuildMethod"], "rust-cargolambda", name)
            # Built in its crate's directory, cargo resolves the features of that crate alone.
            self.assertEqual(f["Properties"]["CodeUri"], f"functions/{binary}", name)

    def statements(self, f):
        role_name = f["Properties"]["Role"]["Fn::GetAtt"][0]
        role = self.resources[role_name]["Properties"]
        return role_name, [s for p in role["Policies"] for s in p["PolicyDocument"]["Statement"]]

    def test_each_function_is_a_signer_a_verifier_keyless_or_the_rotation(self):
        kinds = [SIGNERS, VERIFIERS, KEYLESS, {ROTATION}]
        for binary in self.functions():
            self.assertEqual(sum(binary in kind for kind in kinds), 1, binary)
        self.assertEqual(set().union(*kinds), set(self.functions()))

    def test_each_role_allows_exactly_the_calls_its_function_makes_on_the_table_secrets_and_sender(self):
        for binary, (name, f) in self.functions().items():
            for symmetric in (False, True):
                self.check_role(binary, f, symmetric)

    def check_role(self, binary, f, symmetric):
        role_name, statements = self.statements(f)
        statements = resolve(statements, symmetric)
        where = f"{role_name} (SymmetricKeys {symmetric})"
        self.assertNotIn("ManagedPolicyArns", self.resources[role_name]["Properties"], role_name)
        dynamodb, secrets, logs, ses = set(), set(), set(), set()
        for s in statements:
            self.assertEqual(s["Effect"], "Allow")
            actions = s["Action"] if isinstance(s["Action"], list) else [s["Action"]]
            for action in actions:
                self.assertNotIn("*", action, f"{where}: wildcard action {action}")
                service = action.split(":")[0]
                if service == "dynamodb":
                    self.assertEqual(s["Resource"], TABLE, f"{where}: {action} beyond the table")
                    dynamodb.add(action)
                elif service == "secretsmanager":
                    resource = s["Resource"]
                    self.assertIn(resource, [PRIVATE, PUBLIC], f"{where}: {action} beyond the two secrets")
                    secrets.add((action, resource["Ref"]))
                elif service == "logs":
                    log_group = f["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]
                    self.assertEqual(s["Resource"], {"Fn::GetAtt": [log_group, "Arn"]}, role_name)
                    logs.add(action)
                elif service == "ses":
                    self.assertEqual(s["Resource"], SENDER_IDENTITIES, f"{role_name}: {action} beyond the sender")
                    ses.add(action)
                else:
                    self.fail(f"{role_name}: unexpected {action}")
        self.assertEqual(dynamodb, DYNAMODB_CALLS[binary], where)
        self.assertEqual(secrets, secret_calls(binary, symmetric), where)
        self.assertEqual(logs, {"logs:CreateLogStream", "logs:PutLogEvents"}, where)
        self.assertEqual(ses, {"ses:SendEmail"} if binary in MAILERS else set(), where)

    def test_only_register_email_and_password_reset_send_mail_and_only_as_the_sender(self):
        senders = set()
        for binary, (name, f) in self.functions().items():
            role_name, statements = self.statements(f)
            for s in statements:
                actions = s["Action"] if isinstance(s["Action"], list) else [s["Action"]]
                if not any(a.lower().startswith("ses:") for a in actions):
                    continue
                senders.add(binary)
                self.assertEqual(actions, ["ses:SendEmail"], role_name)
                self.assertEqual(
                    s.get("Condition"), {"StringEquals": {"ses:FromAddress": {"Ref": "EmailFrom"}}}, role_name
                )
                resources = s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]]
                self.assertEqual(resources, SENDER_IDENTITIES, role_name)
                self.assertNotIn("*", str(resources), f"{role_name}: a wildcard identity")
        self.assertEqual(senders, MAILERS)
        # No other resource (another role, a policy, a managed policy) grants ses: either.
        mailer_roles = {self.statements(f)[0] for binary, (_, f) in self.functions().items() if binary in MAILERS}
        for name, r in self.resources.items():
            if name not in mailer_roles and r["Type"] != "AWS::Serverless::Function":
                self.assertNotIn("'ses:", str(r).lower(), name)
            if r["Type"] == "AWS::Serverless::Function":
                self.assertNotIn("Policies", r["Properties"], name)

    def test_passkeys_reads_the_signing_keys_as_login_does_and_sends_no_mail(self):
        # It signs the tokens of a passkey login, like login, and checks access tokens with the same set.
        _, login = self.statements(self.functions()["login"][1])
        role_name, passkeys = self.statements(self.functions()["passkeys"][1])
        secret_reads = [s for s in passkeys if "secretsmanager" in str(s["Action"])]
        self.assertEqual(secret_reads, [s for s in login if "secretsmanager" in str(s["Action"])], role_name)
        self.assertEqual(secret_reads, [{"Effect": "Allow", "Action": [READ], "Resource": PRIVATE}])
        self.assertNotIn("ses:", str(passkeys).lower(), role_name)
        for statement in passkeys:
            self.assertEqual(set(statement), {"Effect", "Action", "Resource"}, role_name)

    def test_each_function_logs_to_a_group_of_its_own_kept_for_the_retention_days(self):
        groups = {}
        for binary, (name, f) in self.functions().items():
            group = f["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]
            self.assertEqual(f["Properties"]["LoggingConfig"]["LogFormat"], "JSON", name)
            self.assertNotIn(group, groups, f"{name} shares {group} with {groups.get(group)}")
            groups[group] = name
            resource = self.resources[group]
            self.assertEqual(resource["Type"], "AWS::Logs::LogGroup", group)
            self.assertEqual(resource["Properties"]["RetentionInDays"], {"Ref": "LogRetentionDays"}, group)
        self.assertEqual(groups["PasskeysLogs"], "PasskeysFunction")

    def test_register_and_password_reset_never_read_a_key(self):
        for binary in KEYLESS:
            name, f = self.functions()[binary]
            role_name, statements = self.statements(f)
            self.assertNotIn("secretsmanager", str(statements).lower(), role_name)
            self.assertNotIn("JwtSecret", str(statements), role_name)
            self.assertNotIn("JwtPublicKeys", str(statements), role_name)
            self.assertNotIn("Layers", f["Properties"], name)
            env = f["Properties"].get("Environment", {}).get("Variables", {})
            self.assertFalse(KEY_VARS & set(env), name)

    def test_only_the_signers_the_rotation_and_under_hs256_the_verifiers_can_read_the_private_keys(self):
        readers = {False: set(), True: set()}
        for binary, (name, f) in self.functions().items():
            role_name, statements = self.statements(f)
            for symmetric in (False, True):
                for s in resolve(statements, symmetric):
                    if s["Resource"] == PRIVATE:
                        readers[symmetric].add(binary)
        self.assertEqual(readers[False], SIGNERS | {ROTATION})
        self.assertEqual(readers[True], SIGNERS | VERIFIERS | {ROTATION})
        # No other resource grants anything on either secret: no managed policy, no resource policy.
        roles = {self.statements(f)[0] for _, f in self.functions().values()}
        for name, r in self.resources.items():
            if r["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy", "AWS::SecretsManager::ResourcePolicy"):
                self.fail(f"{name}: a policy outside the functions' roles")
            if r["Type"] == "AWS::IAM::Role":
                self.assertIn(name, roles, f"{name}: a role no function uses")

    def test_the_mailing_functions_get_the_sender_lifetimes_and_link_base_and_no_other_does(self):
        mail_vars = {v for env in MAIL_ENV.values() for v in env}
        for binary, (name, f) in self.functions().items():
            env = f["Properties"].get("Environment", {}).get("Variables", {})
            mine = {k: v for k, v in env.items() if k in mail_vars}
            self.assertEqual(mine, {k: {"Ref": p} for k, p in MAIL_ENV.get(binary, {}).items()}, name)
        template, _ = decode(str(ROOT / "template.yaml"))
        self.assertFalse(mail_vars & set(template["Globals"]["Function"]["Environment"]["Variables"]))
        parameters = template["Parameters"]
        # No default: a deploy must name a verified sender and the app's URL (sam deploy --guided asks).
        for required in ("EmailFrom", "AppUrl"):
            self.assertNotIn("Default", parameters[required], required)
            self.assertIn("AllowedPattern", parameters[required], required)
        for ttl in ("EmailCodeTtl", "PasswordResetTtl"):
            self.assertEqual(parameters[ttl]["Default"], 900, ttl)
            # The range the functions accept (shared/src/mail.rs).
            self.assertEqual((parameters[ttl]["MinValue"], parameters[ttl]["MaxValue"]), (60, 86400), ttl)

    def test_the_totp_issuer_and_the_routes_that_require_a_second_factor_reach_their_function_only(self):
        mfa_vars = {v for env in MFA_ENV.values() for v in env}
        for binary, (name, f) in self.functions().items():
            env = f["Properties"].get("Environment", {}).get("Variables", {})
            mine = {k: v for k, v in env.items() if k in mfa_vars}
            self.assertEqual(mine, {k: {"Ref": p} for k, p in MFA_ENV.get(binary, {}).items()}, name)
        template, _ = decode(str(ROOT / "template.yaml"))
        self.assertFalse(mfa_vars & set(template["Globals"]["Function"]["Environment"]["Variables"]))
        parameters = template["Parameters"]
        self.assertEqual(parameters["TotpIssuer"]["Default"], "lambda-jwt-auth")
        # The otpauth:// label is "<issuer>:<username>": no ':' in the issuer.
        # (CloudFormation matches AllowedPattern against the whole value.)
        issuer = parameters["TotpIssuer"]["AllowedPattern"]
        # The names the mfa function starts with (shared/src/totp.rs, TotpIssuer): 1 to 64 characters,
        # no ':' and no control character, not blank.
        for good in ("lambda-jwt-auth", "Example Corp", "x", "x" * 64, "Bücher & Co."):
            self.assertTrue(re.fullmatch(issuer, good), good)
        for bad in ("", " ", "Example:Corp", ":", "x" * 65, " lead", "trail ", "tab\there"):
            self.assertFalse(re.fullmatch(issuer, bad), bad)
        self.assertEqual(parameters["RequireMfaRoutes"]["Default"], "GET /example/mfa")
        # Route keys as API Gateway's routeKey spells them: one that is misspelled would guard nothing.
        routes = parameters["RequireMfaRoutes"]["AllowedPattern"]
        for good in ("", "*", "GET /example/mfa", "GET /example/mfa,ANY /orders/{id}", "$default"):
            self.assertTrue(re.fullmatch(routes, good), good)
        for bad in ("/example/mfa", "get /example/mfa", "GET /a, POST /b", "GET /a,", "*,GET /a"):
            self.assertFalse(re.fullmatch(routes, bad), bad)

    def test_the_relying_party_reaches_the_passkeys_function_only_and_must_be_a_domain_and_an_https_origin(self):
        webauthn_vars = {v for env in WEBAUTHN_ENV.values() for v in env}
        for binary, (name, f) in self.functions().items():
            env = f["Properties"].get("Environment", {}).get("Variables", {})
            mine = {k: v for k, v in env.items() if k in webauthn_vars}
            self.assertEqual(mine, {k: {"Ref": p} for k, p in WEBAUTHN_ENV.get(binary, {}).items()}, name)
        template, _ = decode(str(ROOT / "template.yaml"))
        self.assertFalse(webauthn_vars & set(template["Globals"]["Function"]["Environment"]["Variables"]))
        parameters = template["Parameters"]
        # No default: passkeys are bound to the relying party id for good, so a deploy names its own.
        for required in ("WebauthnRpId", "WebauthnOrigin"):
            self.assertNotIn("Default", parameters[required], required)
            self.assertEqual(parameters[required]["Type"], "String", required)
        # What the passkeys function starts with (shared/src/passkey.rs, RelyingParty): a lower-case
        # domain, never an IP address (browsers refuse one), no scheme, port or path.
        rp_id = parameters["WebauthnRpId"]["AllowedPattern"]
        for good in ("example.com", "auth.example.co.uk", "localhost", "xn--bcher-kva.example", "a-b.io", "x1.dev"):
            self.assertTrue(re.fullmatch(rp_id, good), good)
        for bad in (
            "",
            "127.0.0.1",
            "10.0.0.1",
            "::1",
            "[::1]",
            "Example.com",
            "example.com:443",
            "https://example.com",
            "example.com/",
            "-example.com",
            "example-.com",
            "example..com",
            ".example.com",
            "example.com.",
            "exa mple.com",
            "x" * 64 + ".com",
        ):
            self.assertFalse(re.fullmatch(rp_id, bad), bad)
        # An origin: https, host and optional port, nothing after (the function also requires the host
        # to be the rp id or a subdomain of it, which a pattern cannot tie to the other parameter).
        origin = parameters["WebauthnOrigin"]["AllowedPattern"]
        for good in ("https://example.com", "https://app.example.com", "https://example.com:8443"):
            self.assertTrue(re.fullmatch(origin, good), good)
        for bad in (
            "",
            "http://example.com",
            "http://localhost:8090",
            "https://example.com/",
            "https://example.com/login",
            "https://example.com?x=1",
            "https://example.com#x",
            "https://App.example.com",
            "https://user@example.com",
            "example.com",
            "https://",
        ):
            self.assertFalse(re.fullmatch(origin, bad), bad)

    def test_only_the_functions_that_store_have_the_table(self):
        for binary, (name, f) in self.functions().items():
            env = f["Properties"].get("Environment", {}).get("Variables", {})
            self.assertEqual("TABLE_NAME" in env, bool(DYNAMODB_CALLS[binary]), name)

    def test_the_authorizer_uses_simple_responses_caches_per_header_and_route_and_guards_the_examples(self):
        authorizers = self.resources["Api"]["Properties"]["Auth"]["Authorizers"]
        authorizer = authorizers["TokenAuthorizer"]
        self.assertEqual(authorizer["FunctionArn"], {"Fn::GetAtt": ["AuthorizerFunction", "Arn"]})
        self.assertEqual(authorizer["AuthorizerPayloadFormatVersion"], "2.0")
        self.assertIs(authorizer["EnableSimpleResponses"], True)
        self.assertIs(authorizer["EnableFunctionDefaultPermissions"], True)
        self.assertEqual(authorizer["Identity"]["Headers"], ["Authorization"])
        # The decision depends on the route (REQUIRE_MFA): a decision cached for one route
        # must never answer for another.
        self.assertEqual(authorizer["Identity"]["Context"], ["routeKey"])
        self.assertEqual(authorizer["Identity"]["ReauthorizeEvery"], {"Ref": "AuthorizerCacheSeconds"})
        events = self.resources["ProtectedFunction"]["Properties"]["Events"]
        self.assertEqual(events["Example"]["Properties"]["Auth"], {"Authorizer": "TokenAuthorizer"})
        # The route that RequireMfaRoutes names by default.
        example_mfa = events["ExampleMfa"]["Properties"]
        self.assertEqual((example_mfa["Method"], example_mfa["Path"]), ("GET", "/example/mfa"))
        self.assertEqual(example_mfa["Auth"], {"Authorizer": "TokenAuthorizer"})
        self.assertNotIn("Events", self.resources["AuthorizerFunction"]["Properties"])

    def test_the_jwks_function_serves_both_well_known_documents(self):
        events = self.resources["JwksFunction"]["Properties"]["Events"]
        paths = sorted(e["Properties"]["Path"] for e in events.values())
        self.assertEqual(paths, ["/.well-known/jwks.json", "/.well-known/openid-configuration"])

    def test_the_functions_with_several_routes_serve_them_for_any_method_without_the_authorizer(self):
        for name, expected in (
            ("LoginFunction", ["/login", "/login/mfa"]),
            ("AccountFunction", ["/account", "/account/events", "/account/password"]),
            ("SessionsFunction", ["/sessions", "/sessions/{id}"]),
            ("EmailFunction", ["/account/email", "/account/email/verify"]),
            ("PasswordResetFunction", ["/password/forgot", "/password/reset"]),
            ("MfaFunction", ["/mfa/recovery-codes", "/mfa/totp", "/mfa/totp/confirm"]),
            (
                "PasskeysFunction",
                [
                    "/login/passkey/finish",
                    "/login/passkey/start",
                    "/passkeys",
                    "/passkeys/register/finish",
                    "/passkeys/register/start",
                    "/passkeys/{id}",
                ],
            ),
        ):
            events = self.resources[name]["Properties"]["Events"]
            self.assertEqual(sorted(e["Properties"]["Path"] for e in events.values()), expected, name)
            for event in events.values():
                self.assertEqual(event["Type"], "HttpApi", name)
                self.assertEqual(event["Properties"]["ApiId"], {"Ref": "Api"}, name)
                # The function answers 405 with Allow itself.
                self.assertEqual(event["Properties"]["Method"], "ANY", name)
                # It checks the Bearer token itself (or needs none, as a login does).
                self.assertNotIn("Auth", event["Properties"], name)

    def test_cors_allows_the_methods_the_browser_demo_uses_and_exposes_retry_after_and_the_challenge(self):
        _, cors, _ = self.resources["Api"]["Properties"]["CorsConfiguration"]["Fn::If"]
        self.assertEqual(set(cors["AllowMethods"]), {"GET", "POST", "DELETE", "OPTIONS"})
        self.assertEqual(set(cors["AllowHeaders"]), {"authorization", "content-type"})
        # A page reads them only if exposed: when to retry a 429, why a 401.
        self.assertEqual(set(cors["ExposeHeaders"]), {"retry-after", "www-authenticate"})

    def test_the_table_has_ttl_backups_the_free_encryption_and_is_retained(self):
        table = self.resources["AuthTable"]
        props = table["Properties"]
        self.assertEqual(props["TimeToLiveSpecification"], {"AttributeName": "ttl", "Enabled": True})
        self.assertEqual(props["BillingMode"], "PAY_PER_REQUEST")
        self.assertTrue(props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"])
        # Encrypted at rest with a key AWS owns, at no cost: SSEEnabled would bill KMS requests.
        self.assertNotIn("SSESpecification", props)
        self.assertEqual((table["DeletionPolicy"], table["UpdateReplacePolicy"]), ("Retain", "Retain"))
        keys = {k["AttributeName"]: k["KeyType"] for k in props["KeySchema"]}
        self.assertEqual(keys, {"pk": "HASH", "sk": "RANGE"})

    def test_the_private_keys_are_generated_as_ever_and_the_public_ones_start_empty(self):
        secret = self.resources["JwtSecret"]
        self.assertEqual(secret["Type"], "AWS::SecretsManager::Secret")
        # Exactly as deployed stacks have it: an edit would generate a new value and log everyone out.
        generated = secret["Properties"]["GenerateSecretString"]
        self.assertEqual(generated, {"PasswordLength": 64, "ExcludePunctuation": True})
        self.assertNotIn("SecretString", secret["Properties"])
        public = self.resources["JwtPublicKeys"]
        self.assertEqual(public["Type"], "AWS::SecretsManager::Secret")
        # An empty JWKS: "no rotation yet"; the rotation writes the real one.
        self.assertEqual(public["Properties"]["SecretString"], '{"keys":[]}')
        self.assertNotIn("GenerateSecretString", public["Properties"])
        secrets = [n for n, r in self.resources.items() if r["Type"] == "AWS::SecretsManager::Secret"]
        self.assertEqual(sorted(secrets), ["JwtPublicKeys", "JwtSecret"])

    def test_the_extension_and_the_key_variables_reach_exactly_the_functions_that_read_keys(self):
        template, _ = decode(str(ROOT / "template.yaml"))
        function = template["Globals"]["Function"]
        self.assertEqual(function["Architectures"], ["arm64"])
        # SAM appends a function's own layers to global ones: none global.
        self.assertNotIn("Layers", function)
        globals_env = function["Environment"]["Variables"]
        self.assertFalse(KEY_VARS & set(globals_env))
        # The token settings every key reader needs (and the rotation's lifetimes) stay global.
        for var, parameter in (
            ("JWT_ISSUER", "JwtIssuer"),
            ("JWT_AUDIENCE", "JwtAudience"),
            ("ACCESS_TOKEN_TTL", "AccessTokenTtl"),
            ("REFRESH_TOKEN_TTL", "RefreshTokenTtl"),
        ):
            self.assertEqual(globals_env[var], {"Ref": parameter}, var)
        for binary, (name, f) in self.functions().items():
            self.assertNotIn("Architectures", f["Properties"], f"{name} must keep the global Architectures")
            reads_through_extension = binary in SIGNERS | VERIFIERS
            self.assertEqual(f["Properties"].get("Layers"), [EXTENSION] if reads_through_extension else None, name)
            for symmetric in (False, True):
                env = resolve(f["Properties"].get("Environment", {}).get("Variables", {}), symmetric)
                mine = {k: v for k, v in env.items() if k in KEY_VARS}
                self.assertEqual(mine, key_vars(binary, symmetric), f"{name} (SymmetricKeys {symmetric})")

    def test_hs256_is_what_makes_the_verifiers_read_the_private_keys(self):
        template, _ = decode(str(ROOT / "template.yaml"))
        symmetric = template["Conditions"]["SymmetricKeys"]
        self.assertEqual(symmetric, {"Fn::Equals": [{"Ref": "SigningAlgorithm"}, "HS256"]})
        algorithm = template["Parameters"]["SigningAlgorithm"]
        # RS256 by default: the one API Gateway's native JWT authorizer accepts.
        self.assertEqual(algorithm["Default"], "RS256")
        self.assertEqual(sorted(algorithm["AllowedValues"]), ["EdDSA", "HS256", "RS256"])
        # A rotation promotes a key only once every warm function has re-read the keys: never "read once".
        self.assertEqual(template["Parameters"]["KeysRefreshSeconds"]["MinValue"], 1)

    def test_the_rotation_runs_on_schedule_and_at_once_invoked_only_by_secrets_manager(self):
        template, _ = decode(str(ROOT / "template.yaml"))
        schedules = [n for n, r in self.resources.items() if r["Type"] == "AWS::SecretsManager::RotationSchedule"]
        self.assertEqual(schedules, ["KeyRotationSchedule"])
        schedule = self.resources["KeyRotationSchedule"]
        props = schedule["Properties"]
        self.assertEqual(props["SecretId"], PRIVATE)
        self.assertEqual(props["RotationLambdaARN"], {"Fn::GetAtt": ["KeyRotationFunction", "Arn"]})
        # At once on create (a new stack's key set and public keys exist at deploy) and on every change.
        self.assertIs(props["RotateImmediatelyOnUpdate"], True)
        self.assertEqual(props["RotationRules"], {"ScheduleExpression": {"Fn::Sub": "rate(${KeyRotationDays} days)"}})
        days = template["Parameters"]["KeyRotationDays"]
        self.assertEqual((days["Type"], days["Default"]), ("Number", 30))
        self.assertGreaterEqual(days["MinValue"], 2)
        # Secrets Manager checks that it may invoke the function before the first rotation.
        self.assertEqual(schedule["DependsOn"], "KeyRotationPermission")
        permission = self.resources["KeyRotationPermission"]
        self.assertEqual(permission["Type"], "AWS::Lambda::Permission")
        self.assertEqual(
            permission["Properties"],
            {
                "FunctionName": {"Fn::GetAtt": ["KeyRotationFunction", "Arn"]},
                "Action": "lambda:InvokeFunction",
                "Principal": "secretsmanager.amazonaws.com",
                "SourceAccount": {"Ref": "AWS::AccountId"},
            },
        )
        permissions = [n for n, r in self.resources.items() if r["Type"] == "AWS::Lambda::Permission"]
        self.assertEqual(permissions, ["KeyRotationPermission"])
        _, f = self.functions()[ROTATION]
        props = f["Properties"]
        # Not an HTTP function: nothing but Secrets Manager calls it.
        self.assertNotIn("Events", props)
        self.assertEqual(props["Timeout"], 60)
        # RSA key generation is CPU heavy: a sixth of a vCPU (see the template).
        self.assertEqual(props["MemorySize"], 256)

    def test_the_native_jwt_authorizer_guards_one_example_route_with_the_stacks_issuer_and_audience(self):
        auth = self.resources["Api"]["Properties"]["Auth"]
        self.assertEqual(
            auth["Authorizers"]["NativeJwtAuthorizer"],
            {
                "IdentitySource": "$request.header.Authorization",
                "JwtConfiguration": {"issuer": {"Ref": "JwtIssuer"}, "audience": [{"Ref": "JwtAudience"}]},
            },
        )
        self.assertEqual(sorted(auth["Authorizers"]), ["NativeJwtAuthorizer", "TokenAuthorizer"])
        self.assertNotIn("DefaultAuthorizer", auth)
        guarded = []
        for binary, (name, f) in self.functions().items():
            for event in f["Properties"].get("Events", {}).values():
                if event["Properties"].get("Auth") == {"Authorizer": "NativeJwtAuthorizer"}:
                    guarded.append((name, event["Properties"]["Method"], event["Properties"]["Path"]))
        self.assertEqual(guarded, [("ProtectedFunction", "GET", "/example/native")])

    def test_access_logs_go_to_a_vended_logs_group(self):
        group = self.resources["ApiAccessLogs"]["Properties"]
        # Under /aws/vendedlogs/ CloudWatch Logs needs no resource-policy entry for it (5120 bytes at most).
        name = group["LogGroupName"]["Fn::Sub"]
        self.assertTrue(name.startswith("/aws/vendedlogs/${AWS::StackName}/"), name)
        self.assertEqual(group["RetentionInDays"], {"Ref": "LogRetentionDays"})
        destination = self.resources["Api"]["Properties"]["AccessLogSettings"]["DestinationArn"]
        self.assertEqual(destination, {"Fn::GetAtt": ["ApiAccessLogs", "Arn"]})

    def test_the_outputs_give_the_urls_in_any_partition_and_what_rotate_keys_reads(self):
        template, _ = decode(str(ROOT / "template.yaml"))
        outputs = template["Outputs"]
        self.assertNotIn("amazonaws.com", str(outputs))
        for name in ("ApiUrl", "JwksUrl"):
            self.assertIn(".${AWS::URLSuffix}", outputs[name]["Value"]["Fn::Sub"], name)
        # What scripts/rotate-keys hands to keytool, so that a manual rotation waits as the scheduled one does.
        rotate_keys = (ROOT / "scripts" / "rotate-keys").read_text()
        for name, value in (
            ("JwtSecretArn", PRIVATE),
            ("JwtPublicKeysArn", PUBLIC),
            ("KeysRefreshSeconds", {"Ref": "KeysRefreshSeconds"}),
            ("AccessTokenTtl", {"Ref": "AccessTokenTtl"}),
            ("RefreshTokenTtl", {"Ref": "RefreshTokenTtl"}),
            ("SigningAlgorithm", {"Ref": "SigningAlgorithm"}),
        ):
            self.assertEqual(outputs[name]["Value"], value, name)
            self.assertIn(name, rotate_keys, f"scripts/rotate-keys does not read the {name} output")

    def test_the_api_fails_on_warnings_logs_access_and_never_allows_credentials_cross_origin(self):
        api = self.resources["Api"]["Properties"]
        self.assertTrue(api["FailOnWarnings"])
        condition, cors, _ = api["CorsConfiguration"]["Fn::If"]
        self.assertEqual(condition, "HasCors")
        self.assertIs(cors["AllowCredentials"], False)
        self.assertIn("DestinationArn", api["AccessLogSettings"])
        self.assertIn("ThrottlingBurstLimit", api["DefaultRouteSettings"])


    # ---- Monitoring ----------------------------------------------------------------

    def test_the_alarm_email_is_optional_and_subscribed_only_when_given(self):
        template, _ = decode(str(ROOT / "template.yaml"))
        email = template["Parameters"]["AlarmEmail"]
        self.assertEqual((email["Type"], email["Default"]), ("String", ""))
        pattern = email["AllowedPattern"]
        for good in ("", "ops@example.com", "alerts+auth@ops.example.co.uk"):
            self.assertTrue(re.fullmatch(pattern, good), good)
        for bad in ("ops", "ops@example", "Ops <ops@example.com>", "a@b.c,d@e.f", " ops@example.com"):
            self.assertFalse(re.fullmatch(pattern, bad), bad)
        self.assertEqual(
            template["Conditions"]["HasAlarmEmail"], {"Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmEmail"}, ""]}]}
        )
        subscriptions = [n for n, r in self.resources.items() if r["Type"] == "AWS::SNS::Subscription"]
        self.assertEqual(subscriptions, ["AlarmEmailSubscription"])
        subscription = self.resources["AlarmEmailSubscription"]
        self.assertEqual(subscription["Condition"], "HasAlarmEmail")
        self.assertEqual(
            subscription["Properties"],
            {"TopicArn": {"Ref": "AlarmTopic"}, "Protocol": "email", "Endpoint": {"Ref": "AlarmEmail"}},
        )

    def test_the_alarm_topic_is_the_only_one_and_needs_no_kms_key(self):
        topics = [n for n, r in self.resources.items() if r["Type"] == "AWS::SNS::Topic"]
        self.assertEqual(topics, ["AlarmTopic"])
        # CloudWatch cannot publish to a topic under the AWS managed key (aws/sns).
        self.assertNotIn("KmsMasterKeyId", self.resources["AlarmTopic"].get("Properties", {}))
        # No topic policy either: the account's own alarms may publish to its topic by default.
        self.assertFalse([n for n, r in self.resources.items() if r["Type"] == "AWS::SNS::TopicPolicy"])
        template, _ = decode(str(ROOT / "template.yaml"))
        self.assertEqual(template["Outputs"]["AlarmTopicArn"]["Value"], {"Ref": "AlarmTopic"})

    def alarm_fires_on_a_5_minute_sum_above(self, name, alarm, threshold):
        props = alarm["Properties"]
        self.assertEqual(props["Threshold"], threshold, name)
        self.assertEqual(props["ComparisonOperator"], "GreaterThanThreshold", name)
        self.assertEqual(props["EvaluationPeriods"], 1, name)
        self.assertEqual(props["TreatMissingData"], "notBreaching", name)
        self.assertEqual(props["AlarmActions"], TOPIC, name)
        self.assertIn("README, Alarms", props["AlarmDescription"], name)

    def test_each_alarm_sums_its_metric_over_5_minutes_and_mails_the_topic_above_its_threshold(self):
        alarms = {n: r for n, r in self.resources.items() if r["Type"] == "AWS::CloudWatch::Alarm"}
        self.assertEqual(set(alarms), set(ALARMS) | {"TableThrottlesAlarm"})
        for name, (namespace, metric, dimensions, threshold) in ALARMS.items():
            props = alarms[name]["Properties"]
            self.assertEqual((props["Namespace"], props["MetricName"]), (namespace, metric), name)
            # The service's metrics: the dimension set [] (the whole stack), as shared::metrics publishes it.
            self.assertEqual(props.get("Dimensions"), dimensions, name)
            self.assertEqual((props["Statistic"], props["Period"]), ("Sum", 300), name)
            self.alarm_fires_on_a_5_minute_sum_above(name, alarms[name], threshold)

    def test_the_throttle_alarm_sums_the_tables_read_and_write_throttles(self):
        alarm = self.resources["TableThrottlesAlarm"]
        self.alarm_fires_on_a_5_minute_sum_above("TableThrottlesAlarm", alarm, 0)
        metrics = {m["Id"]: m for m in alarm["Properties"]["Metrics"]}
        self.assertEqual(set(metrics), {"reads", "writes", "throttles"})
        for id, metric_name in (("reads", "ReadThrottleEvents"), ("writes", "WriteThrottleEvents")):
            self.assertIs(metrics[id]["ReturnData"], False, id)
            stat = metrics[id]["MetricStat"]
            self.assertEqual((stat["Period"], stat["Stat"]), (300, "Sum"), id)
            self.assertEqual(
                stat["Metric"],
                {
                    "Namespace": "AWS/DynamoDB",
                    "MetricName": metric_name,
                    "Dimensions": [{"Name": "TableName", "Value": {"Ref": "AuthTable"}}],
                },
            )
        # SUM of an array of series is one series, the sum at each time (SUM of one series would be a number).
        self.assertEqual(metrics["throttles"]["Expression"], "SUM([reads, writes])")
        self.assertIs(metrics["throttles"]["ReturnData"], True)

    def test_the_failed_login_threshold_and_the_audit_retention_are_parameters_with_safe_bounds(self):
        template, _ = decode(str(ROOT / "template.yaml"))
        threshold = template["Parameters"]["FailedLoginAlarmThreshold"]
        self.assertEqual((threshold["Type"], threshold["Default"], threshold["MinValue"]), ("Number", 100, 0))
        self.assertIn("per 5", threshold["Description"])
        retention = template["Parameters"]["AuditRetentionDays"]
        # The range the functions accept (AUDIT_RETENTION_DAYS, shared::audit).
        self.assertEqual(
            (retention["Type"], retention["Default"], retention["MinValue"], retention["MaxValue"]),
            ("Number", 90, 1, 3650),
        )

    def test_the_per_address_thresholds_are_parameters_every_function_gets(self):
        template, _ = decode(str(ROOT / "template.yaml"))
        params = template["Parameters"]
        # The ranges the functions accept (shared::throttle::IpLimits) and the defaults make dev uses.
        window = params["IpWindowSeconds"]
        self.assertEqual((window["Default"], window["MinValue"], window["MaxValue"]), (900, 60, 86400))
        for name, default in (("IpMaxFailures", 30), ("IpMaxRegistrations", 20), ("IpMaxForgot", 20)):
            self.assertEqual((params[name]["Type"], params[name]["Default"], params[name]["MinValue"]), ("Number", default, 1))
        env = template["Globals"]["Function"]["Environment"]["Variables"]
        for var, param in (
            ("IP_WINDOW_SECONDS", "IpWindowSeconds"),
            ("IP_MAX_FAILURES", "IpMaxFailures"),
            ("IP_MAX_REGISTRATIONS", "IpMaxRegistrations"),
            ("IP_MAX_FORGOT", "IpMaxForgot"),
        ):
            self.assertEqual(env[var], {"Ref": param})

    def test_the_password_rules_are_parameters_reaching_exactly_the_functions_that_set_passwords(self):
        template, _ = decode(str(ROOT / "template.yaml"))
        score = template["Parameters"]["PasswordMinScore"]
        # The range the functions accept (PASSWORD_MIN_SCORE, shared::strength).
        self.assertEqual(
            (score["Type"], score["Default"], score["MinValue"], score["MaxValue"]),
            ("Number", 3, 0, 4),
        )
        check = template["Parameters"]["BreachedPasswordCheck"]
        # The values shared::breached accepts (BREACHED_PASSWORD_CHECK).
        self.assertEqual((check["Type"], check["Default"]), ("String", "block"))
        self.assertEqual(set(check["AllowedValues"]), {"block", "warn", "off"})
        globals_env = template["Globals"]["Function"]["Environment"]["Variables"]
        for var in ("PASSWORD_MIN_SCORE", "BREACHED_PASSWORD_CHECK", "BREACHED_PASSWORD_ENDPOINT"):
            self.assertNotIn(var, globals_env)
        for binary, (name, f) in self.functions().items():
            env = f["Properties"].get("Environment", {}).get("Variables", {})
            setters = binary in ("register", "account", "password-reset")
            self.assertEqual(env.get("PASSWORD_MIN_SCORE"), {"Ref": "PasswordMinScore"} if setters else None, name)
            self.assertEqual(
                env.get("BREACHED_PASSWORD_CHECK"), {"Ref": "BreachedPasswordCheck"} if setters else None, name
            )
            # Deployed, the check asks Have I Been Pwned itself (the default endpoint).
            self.assertNotIn("BREACHED_PASSWORD_ENDPOINT", env, name)
        for crate in ("register", "account", "password-reset"):
            manifest = (ROOT / "functions" / crate / "Cargo.toml").read_text()
            self.assertRegex(manifest, r'shared = \{[^}]*"breached"', f"{crate} needs HTTPS for the check")

    def test_every_function_counts_in_the_stacks_namespace_and_those_that_record_events_keep_them_the_retention_days(
        self,
    ):
        template, _ = decode(str(ROOT / "template.yaml"))
        globals_env = template["Globals"]["Function"]["Environment"]["Variables"]
        # Every function may answer 503 (Unavailable): the namespace is global.
        self.assertEqual(globals_env["METRICS_NAMESPACE"], NAMESPACE)
        self.assertNotIn("AUDIT_RETENTION_DAYS", globals_env)
        for binary, (name, f) in self.functions().items():
            env = f["Properties"].get("Environment", {}).get("Variables", {})
            self.assertNotIn("METRICS_NAMESPACE", env, f"{name} must keep the global namespace")
            expected = {"Ref": "AuditRetentionDays"} if binary in AUDITORS else None
            self.assertEqual(env.get("AUDIT_RETENTION_DAYS"), expected, name)
            # An event is written in the table: only a function with the table records any.
            if binary in AUDITORS:
                self.assertIn("TABLE_NAME", env, name)
                self.assertIn("dynamodb:PutItem", DYNAMODB_CALLS[binary], name)

    def test_the_alarms_and_the_dashboard_use_the_names_the_functions_publish(self):
        # shared/src/metrics.rs names each metric in one match: `Metric::X => "X"`.
        source = (ROOT / "shared" / "src" / "metrics.rs").read_text()
        published = set(re.findall(r'Metric::\w+ => "(\w+)"', source))
        self.assertEqual(published, SERVICE_METRICS)
        self.assertIn('"Dimensions": [[], ["Function"]]', source, "the whole stack's dimension set, [], is gone")

    def dashboard(self):
        """The dashboard body as deployed (every ${...} given a stand-in value), parsed."""
        body = self.resources["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
        self.assertIsInstance(body, str)
        used = set(re.findall(r"\$\{([^}]*)\}", body))
        self.assertEqual(used, set(DASHBOARD_VARS), "a ${...} the stand-ins do not cover")
        for var, value in DASHBOARD_VARS.items():
            body = body.replace("${" + var + "}", value)
        return json.loads(body)

    def test_the_dashboard_parses_and_shows_every_service_metric_the_api_and_the_table(self):
        widgets = self.dashboard()["widgets"]
        self.assertTrue(all(w["type"] == "metric" for w in widgets))
        shown = set()
        searched = []
        for w in widgets:
            props = w["properties"]
            self.assertEqual(props["region"], DASHBOARD_VARS["AWS::Region"], props["title"])
            for line in props["metrics"]:
                if isinstance(line[0], dict):
                    searched.append(line[0]["expression"])
                    continue
                # [namespace, metric, dimension name, value, ...]: whole stack when no dimension.
                namespace, metric, *dimensions = line
                dimensions = [d for d in dimensions if not isinstance(d, dict)]
                shown.add((namespace, metric, tuple(dimensions)))
        stack = DASHBOARD_VARS["AWS::StackName"]
        for metric in SERVICE_METRICS:
            self.assertIn((stack, metric, ()), shown, metric)
        api = ("ApiId", DASHBOARD_VARS["Api"])
        for metric in ("Count", "4xx", "5xx", "Latency", "IntegrationLatency"):
            self.assertIn(("AWS/ApiGateway", metric, api), shown, metric)
        table = ("TableName", DASHBOARD_VARS["AuthTable"])
        for metric in ("ReadThrottleEvents", "WriteThrottleEvents"):
            self.assertIn(("AWS/DynamoDB", metric, table), shown, metric)
        # By function: a search of the stack's namespace on the Function dimension (quoted: a stack
        # name has hyphens), for failed logins, 503s and everything.
        schema = f"{{\"{stack}\",Function}}"
        self.assertIn(f"SEARCH('{schema} MetricName=\"LoginFailed\"', 'Sum', 300)", searched)
        self.assertIn(f"SEARCH('{schema} MetricName=\"Unavailable\"', 'Sum', 300)", searched)
        self.assertIn(f"SEARCH('{schema}', 'Sum', 300)", searched)

    def test_the_dashboard_is_named_per_stack_and_region_and_its_url_is_given_in_any_partition(self):
        self.assertEqual(
            self.resources["Dashboard"]["Properties"]["DashboardName"], {"Fn::Sub": "${AWS::StackName}-${AWS::Region}"}
        )
        template, _ = decode(str(ROOT / "template.yaml"))
        url, variables = template["Outputs"]["DashboardUrl"]["Value"]["Fn::Sub"]
        self.assertTrue(url.startswith("https://${Host}/cloudwatch/home?region=${AWS::Region}#"), url)
        self.assertIn("${Dashboard}", url)
        self.assertEqual(variables, {"Host": {"Fn::FindInMap": ["Console", {"Ref": "AWS::Partition"}, "Host"]}})
        hosts = template["Mappings"]["Console"]
        self.assertEqual(set(hosts), {"aws", "aws-cn", "aws-us-gov"})
        self.assertEqual(hosts["aws"]["Host"], "console.aws.amazon.com")

if __name__ == "__main__":
    unittest.main()

"""Checks on template.yaml that cfn-lint cannot know: every function has its
binary, each role allows exactly what its function calls, the table keeps TTL
and backups, and the signing key is generated. Run by `make check`."""

import unittest
from pathlib import Path

from cfnlint.decode import decode

ROOT = Path(__file__).resolve().parent.parent
TABLE = {"Fn::GetAtt": ["AuthTable", "Arn"]}
SECRET = {"Ref": "JwtSecret"}

# The DynamoDB calls each function makes (shared/src/store/dynamo.rs); protected, jwks and authorizer make none.
DYNAMODB_CALLS = {
    "register": {"dynamodb:PutItem"},
    "login": {"dynamodb:Query", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"},
    "refresh": {"dynamodb:GetItem", "dynamodb:UpdateItem"},
    "protected": set(),
    "logout": {"dynamodb:UpdateItem", "dynamodb:Query"},
    # TransactWriteItems (password change, deletion) is authorized per item: Update, Delete, ConditionCheck.
    "account": {
        "dynamodb:GetItem",
        "dynamodb:Query",
        "dynamodb:PutItem",
        "dynamodb:DeleteItem",
        "dynamodb:UpdateItem",
    },
    "sessions": {"dynamodb:Query", "dynamodb:UpdateItem"},
    "jwks": set(),
    "authorizer": set(),
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

    def test_each_role_allows_exactly_the_calls_its_function_makes_on_the_one_table_and_secret(self):
        for binary, (name, f) in self.functions().items():
            role_name = f["Properties"]["Role"]["Fn::GetAtt"][0]
            role = self.resources[role_name]["Properties"]
            self.assertNotIn("ManagedPolicyArns", role, role_name)
            statements = [s for p in role["Policies"] for s in p["PolicyDocument"]["Statement"]]
            dynamodb, secrets, logs = set(), set(), set()
            for s in statements:
                self.assertEqual(s["Effect"], "Allow")
                actions = s["Action"] if isinstance(s["Action"], list) else [s["Action"]]
                for action in actions:
                    self.assertNotIn("*", action, f"{role_name}: wildcard action {action}")
                    service = action.split(":")[0]
                    if service == "dynamodb":
                        self.assertEqual(s["Resource"], TABLE, f"{role_name}: {action} beyond the table")
                        dynamodb.add(action)
                    elif service == "secretsmanager":
                        self.assertEqual(s["Resource"], SECRET, f"{role_name}: {action} beyond the secret")
                        secrets.add(action)
                    elif service == "logs":
                        log_group = f["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]
                        self.assertEqual(s["Resource"], {"Fn::GetAtt": [log_group, "Arn"]}, role_name)
                        logs.add(action)
                    else:
                        self.fail(f"{role_name}: unexpected {action}")
            self.assertEqual(dynamodb, DYNAMODB_CALLS[binary], role_name)
            self.assertEqual(secrets, {"secretsmanager:GetSecretValue"}, role_name)
            self.assertEqual(logs, {"logs:CreateLogStream", "logs:PutLogEvents"}, role_name)

    def test_only_the_functions_that_store_have_the_table(self):
        for binary, (name, f) in self.functions().items():
            env = f["Properties"].get("Environment", {}).get("Variables", {})
            self.assertEqual("TABLE_NAME" in env, bool(DYNAMODB_CALLS[binary]), name)

    def test_the_authorizer_uses_simple_responses_caches_on_the_authorization_header_and_guards_the_example(self):
        authorizers = self.resources["Api"]["Properties"]["Auth"]["Authorizers"]
        authorizer = authorizers["TokenAuthorizer"]
        self.assertEqual(authorizer["FunctionArn"], {"Fn::GetAtt": ["AuthorizerFunction", "Arn"]})
        self.assertEqual(authorizer["AuthorizerPayloadFormatVersion"], "2.0")
        self.assertIs(authorizer["EnableSimpleResponses"], True)
        self.assertIs(authorizer["EnableFunctionDefaultPermissions"], True)
        self.assertEqual(authorizer["Identity"]["Headers"], ["Authorization"])
        self.assertEqual(authorizer["Identity"]["ReauthorizeEvery"], {"Ref": "AuthorizerCacheSeconds"})
        events = self.resources["ProtectedFunction"]["Properties"]["Events"]
        self.assertEqual(events["Example"]["Properties"]["Auth"], {"Authorizer": "TokenAuthorizer"})
        self.assertNotIn("Events", self.resources["AuthorizerFunction"]["Properties"])

    def test_the_jwks_function_serves_both_well_known_documents(self):
        events = self.resources["JwksFunction"]["Properties"]["Events"]
        paths = sorted(e["Properties"]["Path"] for e in events.values())
        self.assertEqual(paths, ["/.well-known/jwks.json", "/.well-known/openid-configuration"])

    def test_the_account_and_sessions_functions_serve_their_routes_for_any_method(self):
        for name, expected in (
            ("AccountFunction", ["/account", "/account/password"]),
            ("SessionsFunction", ["/sessions", "/sessions/{id}"]),
        ):
            events = self.resources[name]["Properties"]["Events"]
            self.assertEqual(sorted(e["Properties"]["Path"] for e in events.values()), expected, name)
            for event in events.values():
                self.assertEqual(event["Type"], "HttpApi", name)
                self.assertEqual(event["Properties"]["ApiId"], {"Ref": "Api"}, name)
                # The function answers 405 with Allow itself.
                self.assertEqual(event["Properties"]["Method"], "ANY", name)
                self.assertNotIn("Auth", event["Properties"], name)

    def test_cors_allows_the_methods_the_browser_demo_uses(self):
        _, cors, _ = self.resources["Api"]["Properties"]["CorsConfiguration"]["Fn::If"]
        self.assertEqual(set(cors["AllowMethods"]), {"GET", "POST", "DELETE", "OPTIONS"})
        self.assertEqual(set(cors["AllowHeaders"]), {"authorization", "content-type"})

    def test_the_table_has_ttl_backups_encryption_and_is_retained(self):
        table = self.resources["AuthTable"]
        props = table["Properties"]
        self.assertEqual(props["TimeToLiveSpecification"], {"AttributeName": "ttl", "Enabled": True})
        self.assertEqual(props["BillingMode"], "PAY_PER_REQUEST")
        self.assertTrue(props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"])
        self.assertTrue(props["SSESpecification"]["SSEEnabled"])
        self.assertEqual((table["DeletionPolicy"], table["UpdateReplacePolicy"]), ("Retain", "Retain"))
        keys = {k["AttributeName"]: k["KeyType"] for k in props["KeySchema"]}
        self.assertEqual(keys, {"pk": "HASH", "sk": "RANGE"})

    def test_the_signing_key_is_generated_long_and_handed_over_by_arn(self):
        secret = self.resources["JwtSecret"]
        self.assertEqual(secret["Type"], "AWS::SecretsManager::Secret")
        self.assertGreaterEqual(secret["Properties"]["GenerateSecretString"]["PasswordLength"], 64)
        self.assertNotIn("SecretString", secret["Properties"])
        template, _ = decode(str(ROOT / "template.yaml"))
        env = template["Globals"]["Function"]["Environment"]["Variables"]
        self.assertEqual(env["JWT_SECRET_ARN"], SECRET)
        self.assertNotIn("JWT_SECRET", env)

    def test_every_function_reads_the_secret_through_the_arm64_extension_with_its_cache_off(self):
        template, _ = decode(str(ROOT / "template.yaml"))
        function = template["Globals"]["Function"]
        self.assertEqual(function["Architectures"], ["arm64"])
        self.assertEqual(
            function["Layers"],
            ["{{resolve:ssm:/aws/service/aws-parameters-and-secrets-lambda-extension/arm64/latest}}"],
        )
        self.assertEqual(function["Environment"]["Variables"]["SECRETS_MANAGER_TTL"], "0")
        for binary, (name, f) in self.functions().items():
            for own in ("Layers", "Architectures"):
                self.assertNotIn(own, f["Properties"], f"{name} must keep the global {own}")
            self.assertNotIn("SECRETS_MANAGER_TTL", f["Properties"].get("Environment", {}).get("Variables", {}), name)

    def test_the_api_fails_on_warnings_logs_access_and_never_allows_credentials_cross_origin(self):
        api = self.resources["Api"]["Properties"]
        self.assertTrue(api["FailOnWarnings"])
        condition, cors, _ = api["CorsConfiguration"]["Fn::If"]
        self.assertEqual(condition, "HasCors")
        self.assertIs(cors["AllowCredentials"], False)
        self.assertIn("DestinationArn", api["AccessLogSettings"])
        self.assertIn("ThrottlingBurstLimit", api["DefaultRouteSettings"])


if __name__ == "__main__":
    unittest.main()

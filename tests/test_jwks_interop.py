"""Tokens of the running service, verified by an independent library (PyJWT)
with nothing but what the service publishes: the discovery document and the
JWKS it points to. Run by `make test` against the local stack:

    python tests/test_jwks_interop.py http://127.0.0.1:9100

With --verify, checks the tokens given on stdin instead, as JSON
`[{"label", "token", "audience"}]`, against the JWKS published now, and prints
one line per token (its kid and token_use); exits 1 if any fails. The rotation
walk (integration/tests/key_rotation_e2e.rs) runs it at each step:

    python tests/test_jwks_interop.py --verify http://127.0.0.1:9100 < tokens.json
"""

import json
import sys
import unittest
import urllib.request
import uuid

import jwt

VERIFY = "--verify" in sys.argv
if VERIFY:
    sys.argv.remove("--verify")
BASE = sys.argv.pop(1) if len(sys.argv) > 1 else "http://127.0.0.1:9100"


def call(method, path, body=None, token=None):
    request = urllib.request.Request(BASE + path, method=method, data=json.dumps(body).encode() if body else None)
    request.add_header("content-type", "application/json")
    if token:
        request.add_header("authorization", "Bearer " + token)
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status, response.headers, json.loads(response.read() or b"null")


def decode(discovery, token, audience=None, **options):
    """The claims of `token`, verified with the key its kid names in the JWKS
    the discovery document points to (fetched now, not cached), the issuer it
    names, and `audience` when given."""
    jwks = jwt.PyJWKClient(discovery["jwks_uri"], cache_keys=False, cache_jwk_set=False)
    key = jwks.get_signing_key_from_jwt(token)
    return jwt.decode(
        token,
        key.key,
        algorithms=discovery["id_token_signing_alg_values_supported"],
        issuer=discovery["issuer"],
        audience=audience,
        options={"require": ["exp", "iat", "nbf", "iss", "sub"], "verify_aud": audience is not None, **options},
    )


class PublishedKeys(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        user = {"username": "interop-" + uuid.uuid4().hex[:12], "password": "correct horse battery staple"}
        call("POST", "/register", user)
        _, _, cls.tokens = call("POST", "/login", user)
        _, cls.discovery_headers, cls.discovery = call("GET", "/.well-known/openid-configuration")

    def decode(self, token, **options):
        return decode(self.discovery, token, **options)

    def test_the_discovery_document_is_the_stacks_own(self):
        self.assertEqual(self.discovery["issuer"], BASE)
        self.assertEqual(self.discovery["jwks_uri"], BASE + "/.well-known/jwks.json")

    def test_an_access_token_verifies_with_the_published_jwks_alone(self):
        claims = self.decode(self.tokens["access_token"])
        self.assertEqual(claims["token_use"], "access")
        self.assertTrue(claims["username"].startswith("interop-"))
        header = jwt.get_unverified_header(self.tokens["access_token"])
        self.assertIn(header["alg"], ("RS256", "EdDSA"))
        self.assertTrue(header["kid"])

    def test_a_refresh_token_verifies_too_and_says_what_it_is(self):
        self.assertEqual(self.decode(self.tokens["refresh_token"])["token_use"], "refresh")

    def test_only_the_access_token_passes_a_check_of_the_access_tokens_audience(self):
        audience = jwt.decode(self.tokens["access_token"], options={"verify_signature": False})["aud"]
        self.assertEqual(self.decode(self.tokens["access_token"], audience=audience)["token_use"], "access")
        with self.assertRaises(jwt.InvalidAudienceError):
            self.decode(self.tokens["refresh_token"], audience=audience)

    def test_a_tampered_token_fails_the_independent_check(self):
        header, payload, signature = self.tokens["access_token"].split(".")
        forged_payload = jwt.utils.base64url_encode(
            json.dumps({**jwt.decode(self.tokens["access_token"], options={"verify_signature": False}), "username": "admin"}).encode()
        ).decode()
        with self.assertRaises(jwt.InvalidSignatureError):
            self.decode(".".join([header, forged_payload, signature]))

    def test_the_jwks_holds_only_public_keys_and_may_be_cached(self):
        with urllib.request.urlopen(self.discovery["jwks_uri"], timeout=30) as response:
            self.assertRegex(response.headers["cache-control"], r"max-age=\d+")
            jwks = json.loads(response.read())
        self.assertTrue(jwks["keys"])
        for key in jwks["keys"]:
            self.assertIn(key["kty"], ("RSA", "OKP"))
            self.assertNotEqual(key["kty"], "oct")
            for private in ("d", "p", "q", "dp", "dq", "qi", "k"):
                self.assertNotIn(private, key)
        self.assertRegex(self.discovery_headers["cache-control"], r"max-age=\d+")


def verify_stdin():
    """--verify: each token on stdin checked against the keys published now."""
    _, _, discovery = call("GET", "/.well-known/openid-configuration")
    failed = 0
    for item in json.load(sys.stdin):
        kid = jwt.get_unverified_header(item["token"]).get("kid")
        try:
            claims = decode(discovery, item["token"], audience=item.get("audience"))
            print(f"ok   {item['label']}: kid {kid}, token_use {claims.get('token_use')}")
        except (jwt.PyJWTError, KeyError) as error:
            failed += 1
            print(f"FAIL {item['label']}: kid {kid}: {type(error).__name__}: {error}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    if VERIFY:
        verify_stdin()
    else:
        unittest.main(verbosity=2)

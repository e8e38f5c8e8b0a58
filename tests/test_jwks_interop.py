"""Tokens of the running service, verified by an independent library (PyJWT)
with nothing but what the service publishes: the discovery document and the
JWKS it points to. Run by `make test` against the local stack:
python tests/test_jwks_interop.py http://127.0.0.1:9100"""

import json
import sys
import unittest
import urllib.request
import uuid

import jwt

BASE = sys.argv.pop(1) if len(sys.argv) > 1 else "http://127.0.0.1:9100"


def call(method, path, body=None, token=None):
    request = urllib.request.Request(BASE + path, method=method, data=json.dumps(body).encode() if body else None)
    request.add_header("content-type", "application/json")
    if token:
        request.add_header("authorization", "Bearer " + token)
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status, response.headers, json.loads(response.read() or b"null")


class PublishedKeys(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        user = {"username": "interop-" + uuid.uuid4().hex[:12], "password": "correct horse battery staple"}
        call("POST", "/register", user)
        _, _, cls.tokens = call("POST", "/login", user)
        _, cls.discovery_headers, cls.discovery = call("GET", "/.well-known/openid-configuration")

    def decode(self, token, **options):
        jwks = jwt.PyJWKClient(self.discovery["jwks_uri"], cache_keys=False)
        key = jwks.get_signing_key_from_jwt(token)
        return jwt.decode(
            token,
            key.key,
            algorithms=self.discovery["id_token_signing_alg_values_supported"],
            issuer=self.discovery["issuer"],
            options={"require": ["exp", "iat", "nbf", "iss", "sub"], "verify_aud": False, **options},
        )

    def test_an_access_token_verifies_with_the_published_jwks_alone(self):
        claims = self.decode(self.tokens["access_token"])
        self.assertEqual(claims["token_use"], "access")
        self.assertTrue(claims["username"].startswith("interop-"))
        header = jwt.get_unverified_header(self.tokens["access_token"])
        self.assertIn(header["alg"], ("RS256", "EdDSA"))
        self.assertTrue(header["kid"])

    def test_a_refresh_token_verifies_too_and_says_what_it_is(self):
        self.assertEqual(self.decode(self.tokens["refresh_token"])["token_use"], "refresh")

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


if __name__ == "__main__":
    unittest.main(verbosity=2)

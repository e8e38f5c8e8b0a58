#!/usr/bin/env python3
"""A key set as the service keeps it (`shared::keyset::KeySet`: the JSON
`{"keys": [{"alg", "status", "since", "key"}]}` of dev.env's JWT_SECRET, or a
plain string, one HS256 key) read in Python, for `make test` and `make bench`:
the dev key set, and tokens signed with a set's current key as the service
signs them (bench/coldstart.py). Needs `cryptography`. The public keys to
publish come from the service's own code: `cargo run -p keytool -- public`.

    scripts/keyset.py dev                 prints dev.env's JWT_SECRET, the dev key set

Key ids are derived as the service derives them (shared/src/keyset/loaded.rs):
the RFC 7638 thumbprint of an RSA or Ed25519 public key, a hash of an HMAC secret.
"""

import base64
import hashlib
import hmac
import json
import sys
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

ROOT = Path(__file__).resolve().parent.parent


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def compact(value):
    """JSON as serde_json writes a `json!` value: compact, members sorted."""
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def dev_secret():
    """dev.env's JWT_SECRET, without the single quotes cargo lambda reads around it."""
    for line in (ROOT / "dev.env").read_text().splitlines():
        if line.startswith("JWT_SECRET="):
            value = line.split("=", 1)[1].strip()
            return value[1:-1] if len(value) > 1 and value[0] == value[-1] == "'" else value
    raise SystemExit("dev.env has no JWT_SECRET")


def keys(text):
    """The stored keys of a key set's text."""
    text = text.strip()
    if not text.startswith("{"):
        return [{"alg": "HS256", "status": "current", "since": 0, "key": text}]
    return json.loads(text)["keys"]


def public_jwk(stored):
    """The public JWK of a stored key (kid, alg, use and the key), None for an HMAC secret."""
    if stored["alg"] == "HS256":
        return None
    private = serialization.load_der_private_key(base64.b64decode(stored["key"].strip()), password=None)
    if stored["alg"] == "RS256":
        numbers = private.public_key().public_numbers()
        raw = lambda n: n.to_bytes((n.bit_length() + 7) // 8, "big")
        jwk = {"e": b64url(raw(numbers.e)), "kty": "RSA", "n": b64url(raw(numbers.n))}
    elif stored["alg"] == "EdDSA":
        x = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        jwk = {"crv": "Ed25519", "kty": "OKP", "x": b64url(x)}
    else:
        raise SystemExit(f"unknown algorithm {stored['alg']!r}")
    return {**jwk, "kid": b64url(hashlib.sha256(compact(jwk).encode()).digest()), "alg": stored["alg"], "use": "sig"}


def kid(stored):
    """The key id the service gives a stored key."""
    if stored["alg"] == "HS256":
        return hashlib.sha256(b"kid:" + stored["key"].encode()).digest()[:8].hex()
    return public_jwk(stored)["kid"]


def sign(text, claims):
    """A JWT of `claims` signed by the key set's current key, as the service signs (typ, alg, kid)."""
    current = next(k for k in keys(text) if k["status"] == "current")
    header = {"typ": "JWT", "alg": current["alg"], "kid": kid(current)}
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}".encode()
    if current["alg"] == "HS256":
        signature = hmac.new(current["key"].encode(), signing_input, hashlib.sha256).digest()
    else:
        private = serialization.load_der_private_key(base64.b64decode(current["key"].strip()), password=None)
        if isinstance(private, rsa.RSAPrivateKey):
            signature = private.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
        elif isinstance(private, ed25519.Ed25519PrivateKey):
            signature = private.sign(signing_input)
        else:
            raise SystemExit(f"a {current['alg']} key this script cannot sign with")
    return f"{signing_input.decode()}.{b64url(signature)}"


def main():
    match sys.argv[1:]:
        case ["dev"]:
            print(dev_secret())
        case _:
            raise SystemExit(__doc__)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""End-to-end latency per route over a running stack: a few hundred requests
per route from several concurrent clients, keep-alive connections. Prints
JSON: p50 and p99 per route, milliseconds.

    bench/latency.py http://127.0.0.1:9300 [requests-per-route] [clients]
"""

import http.client
import json
import statistics
import sys
import threading
import time
import uuid
from urllib.parse import urlparse

PASSWORD = "correct horse battery staple"


class Client:
    def __init__(self, base):
        url = urlparse(base)
        self.conn = http.client.HTTPConnection(url.hostname, url.port, timeout=60)

    def call(self, method, path, body=None, bearer=None):
        headers = {"content-type": "application/json"}
        if bearer:
            headers["authorization"] = f"Bearer {bearer}"
        started = time.perf_counter()
        self.conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
        response = self.conn.getresponse()
        text = response.read()
        elapsed = time.perf_counter() - started
        return response.status, (json.loads(text) if text else None), elapsed


def parallel(clients, base, work):
    """Runs work(client, i) for each client index on its own thread; returns the results."""
    results = [None] * clients

    def run(i):
        results[i] = work(Client(base), i)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def main():
    base = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 200
    clients = int(sys.argv[3]) if len(sys.argv) > 3 else 4
    per = n // clients
    times = {route: [] for route in ["register", "login", "protected", "refresh", "logout", "jwks", "passkey login start"]}

    def expect(route, answer, status):
        if answer[0] != status:
            raise SystemExit(f"{route}: {answer[0]} {answer[1]}")
        times[route].append(answer[2])
        return answer[1]

    def register(c, i):
        names = [f"lat-{uuid.uuid4().hex[:12]}" for _ in range(per)]
        for name in names:
            expect("register", c.call("POST", "/register", {"username": name, "password": PASSWORD}), 201)
        return names

    def login(c, i):
        return [expect("login", c.call("POST", "/login", {"username": u, "password": PASSWORD}), 200) for u in users[i]]

    def protected(c, i):
        for _ in range(per):
            expect("protected", c.call("GET", "/protected", bearer=sessions[i][0]["access_token"]), 200)

    def jwks(c, i):
        for _ in range(per):
            expect("jwks", c.call("GET", "/.well-known/jwks.json"), 200)

    def passkey_login_start(c, i):
        # WebAuthn request options and one challenge written (PutItem); no body.
        for _ in range(per):
            expect("passkey login start", c.call("POST", "/login/passkey/start"), 200)

    def refresh(c, i):
        token = sessions[i][0]["refresh_token"]
        for _ in range(per):
            token = expect("refresh", c.call("POST", "/refresh", {"refresh_token": token}), 200)["refresh_token"]

    def logout(c, i):
        for s in sessions[i][1:]:
            expect("logout", c.call("POST", "/logout", {"refresh_token": s["refresh_token"]}), 204)

    users = parallel(clients, base, register)
    sessions = parallel(clients, base, login)
    parallel(clients, base, protected)
    parallel(clients, base, jwks)
    parallel(clients, base, passkey_login_start)
    parallel(clients, base, refresh)
    parallel(clients, base, logout)

    def pct(xs, p):
        xs = sorted(xs)
        return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))] * 1000

    print(json.dumps({r: {"n": len(xs), "p50_ms": pct(xs, 50), "p99_ms": pct(xs, 99)} for r, xs in times.items()}))


if __name__ == "__main__":
    main()

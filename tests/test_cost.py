"""Checks on scripts/cost (make cost): it reads each function's memory and the
parameters from template.yaml, falls back to labelled defaults without bench
results, counts the DynamoDB request units a login and a refresh make, and
multiplies the usage by the unit prices of bench/prices.json, each of which
says where and when it was read; Cognito's bands are applied as published.
Standard library only: `python3 tests/test_cost.py`."""

import datetime
import importlib.machinery
import importlib.util
import json
import math
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def load_cost():
    loader = importlib.machinery.SourceFileLoader("cost", str(ROOT / "scripts" / "cost"))
    spec = importlib.util.spec_from_loader("cost", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


cost = load_cost()
PRICES = json.loads((ROOT / "bench" / "prices.json").read_text())


def unit_prices(value=1.0):
    """A prices file whose every unit price is `value`, so each line is its quantity."""
    prices = json.loads(json.dumps(PRICES))
    for entry in prices["prices"].values():
        entry["usd"] = value
    return prices


USAGE = {"mau": 1000, "logins": 30, "refreshes": 240, "failed_rate": 0.1, "cold_rate": 0.0, "retention_days": None}
# One full core: 10 ms a login, 2 ms a refresh, nothing of it DynamoDB Local's.
BENCH = (
    {"login": {"warm_ms": 10.0, "init_ms": 5.0, "first_ms": 20.0}, "refresh": {"warm_ms": 2.0, "init_ms": 5.0, "first_ms": 5.0}},
    0.0,
    "test figures",
)


class Cost(unittest.TestCase):
    template = cost.read_template((ROOT / "template.yaml").read_text())

    def line(self, lines, start):
        found = [usd for component, _, usd in lines if component.startswith(start)]
        self.assertEqual(len(found), 1, f"one line starting {start!r}: {[c for c, _, _ in lines]}")
        return found[0]

    def test_each_functions_memory_and_the_parameters_are_read_from_the_template(self):
        memory = self.template["memory"]
        self.assertEqual((memory["login"], memory["refresh"], memory["protected"]), (1769, 256, 128))
        self.assertEqual(len(memory), len([p for p in (ROOT / "functions").iterdir() if (p / "Cargo.toml").exists()]))
        params = self.template["parameters"]
        self.assertEqual(
            (params["SessionMaxLifetime"], params["AuditRetentionDays"], params["KeysRefreshSeconds"]),
            ("7776000", "90", "300"),
        )
        # Six alarms on one metric each, one on the sum of two; one dashboard.
        self.assertEqual((self.template["alarm_metrics"], self.template["dashboards"]), (8, 1))

    def test_a_function_without_its_own_memory_gets_the_global_one(self):
        text = """Globals:
  Function:
    MemorySize: 512
Resources:
  LoginFunction:
    Type: AWS::Serverless::Function
    Metadata:
      BuildProperties:
        Binary: login
    Properties:
      CodeUri: functions/login
  RefreshFunction:
    Type: AWS::Serverless::Function
    Metadata:
      BuildProperties:
        Binary: refresh
    Properties:
      MemorySize: 256
"""
        self.assertEqual(cost.read_template(text)["memory"], {"login": 512, "refresh": 256})

    def test_without_bench_results_the_documented_defaults_are_used_and_said_to_be(self):
        missing = Path(tempfile.gettempdir()) / "no-such-bench" / "coldstart.json"
        timings, round_trip, source = cost.read_bench(missing, missing)
        self.assertEqual(timings, cost.DEFAULT_BENCH)
        self.assertEqual(round_trip, cost.DEFAULT_LOCAL_ROUND_TRIP_MS)
        self.assertIn("DEFAULTS", source)

    def test_bench_results_are_read_with_their_date(self):
        with tempfile.TemporaryDirectory() as tmp:
            coldstart = Path(tmp) / "coldstart.json"
            measured = {f: {"warm_ms": 1.0, "init_ms": 2.0, "first_ms": 3.0, "extra_ms": 4.0} for f in ("login", "refresh")}
            coldstart.write_text(json.dumps(measured))
            round_trip = Path(tmp) / "estimates.json"
            round_trip.write_text(json.dumps({"median": {"point_estimate": 750_000.0}}))
            original = cost.ROOT
            cost.ROOT = Path(tmp)
            try:
                timings, local, source = cost.read_bench(coldstart, round_trip)
            finally:
                cost.ROOT = original
        self.assertEqual(timings["login"]["warm_ms"], 1.0)
        self.assertEqual(local, 0.75, "criterion's nanoseconds as milliseconds")
        self.assertIn(f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d}", source)
        self.assertNotIn("DEFAULTS", source)

    def test_a_login_and_a_refresh_make_the_request_units_of_the_code(self):
        def units(op):
            calls = cost.OPERATIONS[op]["calls"]
            return sum(c.rru for c in calls), sum(c.wru for c in calls)

        # One consistent query and the address's consistent GetItem; the attempt's ADD, a transaction of
        # the session and a check of the user (2 WRU each), the event, the count forgotten.
        self.assertEqual(units("login"), (2, 7))
        transaction = [c for c in cost.OPERATIONS["login"]["calls"] if c.kind == "transaction"]
        self.assertEqual([c.wru for c in transaction], [4])
        # One GetItem, one UpdateItem.
        self.assertEqual(units("refresh"), (1, 1))
        # The query and the address's GetItem; the attempt's ADD, the address's count, the event.
        self.assertEqual(units("failed"), (2, 3))
        # The event is written at the same time as the route's own write: no time added.
        for op in ("login", "failed"):
            events = [c for c in cost.OPERATIONS[op]["calls"] if c.category == "audit events"]
            self.assertEqual([(c.wru, c.beside) for c in events], [(1, True)], op)
        for op in cost.OPERATIONS.values():
            self.assertIn(op["function"], self.template["memory"])

    def test_the_bill_is_the_usage_times_the_unit_prices(self):
        lines, detail = cost.model(USAGE, unit_prices(), self.template, BENCH)
        logins, failed, refreshes = 30_000, 3_000, 240_000
        self.assertEqual(detail["counts"], {"login": logins, "failed": failed, "refresh": refreshes})
        requests = logins + failed + refreshes
        self.assertEqual(self.line(lines, "Lambda requests"), requests)
        self.assertEqual(self.line(lines, "API Gateway"), requests)
        # 10 ms of CPU at 1769 MB, a query (5 ms) and a transaction (10 ms), the event written beside it.
        self.assertEqual(detail["durations"]["login"], 25)
        # 2 ms of one core at 256 MB (a seventh of a vCPU) and two calls.
        self.assertEqual(detail["durations"]["refresh"], math.ceil(2 * 1769 / 256 + 10))
        login_gb_s = (logins * 25 + failed * detail["durations"]["failed"]) / 1000 * 1769 / 1024
        self.assertAlmostEqual(self.line(lines, "Lambda compute: login"), login_gb_s)
        writes = sum(usd for c, _, usd in lines if c.startswith("DynamoDB writes"))
        self.assertEqual(writes, logins * 7 + failed * 3 + refreshes * 1)
        self.assertEqual(self.line(lines, "DynamoDB writes: audit events"), logins + failed)
        self.assertEqual(self.line(lines, "DynamoDB reads"), requests + logins + failed)
        # Storage: 90 days of sessions (30 a month), 90 days of events (33 a month), each item + 100 B.
        per_user = 450 + 90 * 580 + 99 * 480
        self.assertAlmostEqual(detail["storage"]["bytes_per_user"], per_user)
        self.assertAlmostEqual(self.line(lines, "DynamoDB storage"), 1000 * per_user / 2**30)
        self.assertEqual(self.line(lines, "CloudWatch alarms"), 8)
        self.assertEqual(self.line(lines, "CloudWatch dashboard"), 1)
        # LoginSucceeded and LoginFailed, each for the whole stack and for the login function.
        self.assertEqual(self.line(lines, "CloudWatch custom metrics"), 4)
        self.assertEqual(self.line(lines, "Secrets Manager: 2 secrets"), 2)

    def test_a_longer_audit_retention_stores_more_events(self):
        short = cost.model(dict(USAGE, retention_days=30), unit_prices(), self.template, BENCH)[1]
        long = cost.model(dict(USAGE, retention_days=365), unit_prices(), self.template, BENCH)[1]
        self.assertAlmostEqual(short["storage"]["events"], 33)
        self.assertGreater(long["storage"]["bytes_per_user"], short["storage"]["bytes_per_user"])

    def test_cognito_is_priced_on_its_published_bands(self):
        plans = PRICES["cognito"]["plans"]
        essentials, lite, plus = (plans[p]["bands"] for p in ("Essentials", "Lite", "Plus"))
        self.assertEqual(cost.cognito_price(5_000, essentials), 0)
        self.assertAlmostEqual(cost.cognito_price(100_000, essentials), 90_000 * 0.015)
        self.assertAlmostEqual(cost.cognito_price(100_000, lite), 90_000 * 0.0055)
        self.assertAlmostEqual(cost.cognito_price(200_000, lite), 90_000 * 0.0055 + 100_000 * 0.0046)
        self.assertAlmostEqual(cost.cognito_price(100_000, plus), 100_000 * 0.02)

    def test_every_price_says_where_and_when_it_was_read(self):
        datetime.date.fromisoformat(PRICES["as_of"])
        self.assertEqual(PRICES["region"], "us-east-1")
        for name, entry in list(PRICES["prices"].items()) + [("cognito", PRICES["cognito"])]:
            self.assertTrue(entry["source"].startswith("https://"), name)
            datetime.date.fromisoformat(entry["taken"])
            self.assertTrue(entry["checked"], name)
        # The model uses every price in the file, and the file has every price the model uses.
        lines, _ = cost.model(USAGE, unit_prices(0.0), self.template, BENCH)
        self.assertEqual(sum(usd for _, _, usd in lines), 0)
        source = (ROOT / "scripts" / "cost").read_text()
        for name in PRICES["prices"]:
            if name != "sns_email_notification":  # a few alarm mails a month: not modelled
                self.assertIn(f'p["{name}"]', source, name)

    def test_make_cost_prints_the_bill_and_cognito_beside_it(self):
        run = subprocess.run([sys.executable, str(ROOT / "scripts" / "cost"), "--mau", "50000"],
                             capture_output=True, text=True, check=True)
        out = run.stdout
        for expected in ("50,000 monthly active users", "Lambda compute: login", "DynamoDB writes: audit events",
                         "total", "per 1,000 monthly active users", "Essentials", "Lite", "Plus", "<- compared"):
            self.assertIn(expected, out)
        self.assertIn(f"{cost.cognito_price(50_000, PRICES['cognito']['plans']['Essentials']['bands']):,.2f}", out)


if __name__ == "__main__":
    unittest.main()

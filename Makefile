# The two commands: `make dev` runs the service locally, `make test` tests it.
.PHONY: dev test unit lint check deploy smoke fuzz bench bench-against mutants invoke rotate-keys cost admin

## Start DynamoDB Local (:8000) and the SES stand-in (:8005, sent mail on its page), create the table, serve every function on :9000. Ctrl-C stops it all.
dev:
	@scripts/dev

## Unit, store (DynamoDB Local) and end-to-end (HTTP through cargo lambda watch, mail through aws-ses-v2-local) tests, then lint.
test:
	@scripts/test
	@$(MAKE) --no-print-directory lint

## Fast unit tests that need nothing started: every crate but `integration` and the admin tool's DynamoDB Local test.
unit:
	cargo test --workspace --exclude integration --exclude admin
	cargo test -p admin --lib

## The deploy path, offline: lint and test template.yaml, sam build every function for arm64.
check:
	@scripts/check

## Build and deploy the stack to your AWS account: sam deploy --guided while samconfig.toml has no saved parameter_overrides (the first time), plain sam deploy after.
deploy: check
	@if .tools/venv/bin/python -c 'import sys, tomllib; c = tomllib.load(open("samconfig.toml", "rb")); sys.exit(not c.get("default", {}).get("deploy", {}).get("parameters", {}).get("parameter_overrides"))'; then \
	  SAM_CLI_TELEMETRY=0 .tools/venv/bin/sam deploy; \
	else \
	  SAM_CLI_TELEMETRY=0 .tools/venv/bin/sam deploy --guided; \
	fi

## Rotate the stack's signing keys now, as its schedule does (every step that is due; nothing written when none is): make rotate-keys [ALG=RS256|EdDSA|HS256] (see scripts/rotate-keys)
rotate-keys:
	@scripts/rotate-keys

## Smoke-test a running stack: make smoke URL=https://<api-id>.execute-api.<region>.amazonaws.com
smoke:
	@scripts/smoke $(or $(URL),http://127.0.0.1:9000)

## Run each fuzz target for FUZZ_SECONDS (default 600): make fuzz FUZZ_SECONDS=60
fuzz:
	@scripts/fuzz

## Mutation testing of the security logic (cargo-mutants; hours for all, minutes a file): make mutants [FILES=shared/src/session.rs]
mutants:
	@scripts/mutants

## Benchmarks and cold starts, printed as one table against the budgets (release builds: slow the first time).
bench:
	@scripts/bench

## The login handler at an earlier commit beside this tree's, in turns (ROUNDS, default 5), and the ratio of their medians: make bench-against REV=<commit>
bench-against:
	@scripts/bench-against $(REV) $(or $(ROUNDS),5)

## The stack's monthly cost for a usage, beside Amazon Cognito's price for the same users, from make bench's figures (labelled defaults without them), template.yaml's memory and the unit prices in bench/prices.json: make cost [ARGS="--mau 1000000 --logins 10"] (scripts/cost --help)
cost:
	@scripts/cost $(ARGS)

## Formatting and clippy, warnings as errors; the shared crate also without its HTTP edge, so no domain module can import it.
lint:
	cargo fmt --all -- --check
	cargo clippy --all-targets --all-features -- -D warnings
	cargo clippy -p shared --no-default-features --lib -- -D warnings

## Invoke one function with a sample event against a running `make dev`: make invoke FN=login EVENT=login-ok
invoke:
	@scripts/invoke $(FN) $(EVENT)

## The operator's tool (admin/): make admin ARGS="disable bob". Against make dev's DynamoDB Local by default (dev.env's table, endpoint and stand-in credentials); against a deployed stack when you give its table: make admin ARGS="..." TABLE_NAME=<the stack's TableName output>, with your own AWS credentials and AWS_REGION in the environment (and AUDIT_RETENTION_DAYS if the stack's AuditRetentionDays is not 90).
admin:
	@if [ -n "$(TABLE_NAME)" ]; then \
	  TABLE_NAME='$(TABLE_NAME)' cargo run --quiet -p admin -- $(ARGS); \
	else \
	  env $$(grep -E '^(TABLE_NAME|AWS_ENDPOINT_URL_DYNAMODB|AWS_REGION|AWS_ACCESS_KEY_ID|AWS_SECRET_ACCESS_KEY)=' dev.env) \
	    cargo run --quiet -p admin -- $(ARGS); \
	fi

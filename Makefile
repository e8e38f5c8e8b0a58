# The two commands: `make dev` runs the service locally, `make test` tests it.
.PHONY: dev test lint invoke

## Start DynamoDB Local (:8000), create the table, serve every function on :9000. Ctrl-C stops it all.
dev:
	@scripts/dev

## Unit, store (DynamoDB Local) and end-to-end (HTTP through cargo lambda watch) tests, then lint.
test:
	@scripts/test
	@$(MAKE) --no-print-directory lint

## Formatting and clippy, warnings as errors.
lint:
	cargo fmt --all -- --check
	cargo clippy --all-targets --all-features -- -D warnings

## Invoke one function with a sample event against a running `make dev`: make invoke FN=login EVENT=login-ok
invoke:
	@scripts/invoke $(FN) $(EVENT)

# The two commands of the README, and a few helpers. Everything goes through
# infra/local/stack.sh, which installs missing tools (cached in ~/.cache/chat-backend) and
# starts and stops the local services.
.PHONY: dev test check services install build sam-build bench smoke deploy-web

## Run the local stack (Kafka, DynamoDB Local, the functions, the API on :8000) until Ctrl-C.
dev:
	@infra/local/stack.sh dev

## Formatting, lints and every test, against services of its own on free ports.
test:
	@infra/local/stack.sh test

## Formatting, lints and every test that needs no service (no Java, npm or broker needed).
check:
	@infra/local/stack.sh check

## Throw-away services for running `cargo test` by hand; prints the variables to export.
services:
	@infra/local/stack.sh services

## Against the running make dev: ours and the original app's architecture side by side, one table.
bench:
	@infra/local/stack.sh bench

## A stack proves itself, as a user would: against `AUTH_MODE=jwt make dev`, or STACK=name
## (a deployed stack; SMOKE_USER_A/B and SMOKE_PASSWORD_A/B sign in), see docs/deploy.md.
smoke:
	@infra/local/stack.sh smoke $(STACK)

## Install the tools only.
install:
	@infra/local/stack.sh install

## Release builds of every function for arm64 Lambda (cargo lambda, zig), with their sizes.
build:
	@infra/local/stack.sh build

## `sam build` of infra/template.yaml with our build tools on PATH (needs the AWS SAM CLI).
sam-build:
	@infra/local/stack.sh sam build --beta-features --template-file infra/template.yaml

## Upload the chat page to a deployed stack (STACK=name; needs the AWS CLI).
deploy-web:
	@infra/local/stack.sh deploy-web $(STACK)

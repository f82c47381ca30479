# The two commands of the README, and a few helpers. Everything goes through
# infra/local/stack.sh, which installs missing tools (cached in ~/.cache/chat-backend) and
# starts and stops the local services.
.PHONY: dev test services install

## Run the local stack (Kafka, DynamoDB Local, topics, tables, users) until Ctrl-C.
dev:
	@infra/local/stack.sh dev

## fmt, clippy and every test, against services of its own on free ports.
test:
	@infra/local/stack.sh test

## Throw-away services for running `cargo test` by hand; prints the variables to export.
services:
	@infra/local/stack.sh services

## Install the tools only.
install:
	@infra/local/stack.sh install

//! `local-stack`: the local stack's supervisor, as a library that `make`'s targets (through
//! the `chat-stack` binary) and the fault tests both use. It starts Kafka, DynamoDB Local,
//! local IAM, the functions (under `cargo lambda watch`), the Kafka event source and the API
//! Gateway emulator; waits until each is ready; restarts one as it was started; stops them in
//! order; and watches them. Installing the tools it runs is `infra/local/stack.sh`'s job.

pub mod checks;
pub mod commands;
pub mod dynamodb;
pub mod kafka;
pub mod process;
pub mod stack;
pub mod supervisor;
pub mod tools;

pub use process::{restart, Failure};

/// A line of the stack's own output.
pub fn say(text: &str) {
    eprintln!("\x1b[1m[stack]\x1b[0m {text}");
}

/// A warning that stands out.
pub fn warn(text: &str) {
    eprintln!("\x1b[1;33m[stack] WARNING: {text}\x1b[0m");
}

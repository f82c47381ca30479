//! Helpers for end-to-end tests over the running local stack.

//! Contract suites: the behaviour of a port, written once, that its real implementation and
//! its fake must both show. Each runs against the fake in `make check` and against the real
//! service in `make test`.

pub mod publisher;
pub mod push;
pub mod store;

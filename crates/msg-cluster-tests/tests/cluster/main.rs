//! The cluster suite: msg over the local 3-node RabbitMQ and NATS clusters of
//! `cargo xtask cluster up` (`MSG_RABBIT_CLUSTER_URL`, `MSG_NATS_CLUSTER_URL`,
//! `MSG_CLUSTER_DIR`). The conformance suite's end-to-end cases on quorum queues and R3
//! streams, then faults under load: the node leading the queue or stream killed and
//! restarted, a RabbitMQ node's `stop_app`/`start_app`, the node the client is connected
//! to killed. Run it alone, one test at a time (`--test-threads=1`): the fault tests kill
//! nodes the other tests use, and each puts 3 healthy nodes back before it ends.
#![allow(clippy::unwrap_used, clippy::print_stderr)]

mod conformance;
mod fault;
mod nats_faults;
mod python_interop;
mod rabbit_faults;

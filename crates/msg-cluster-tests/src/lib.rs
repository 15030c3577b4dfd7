//! The cluster suite's helpers: msg over the local 3-node RabbitMQ and NATS clusters that
//! `cargo xtask cluster up` starts (see `docs/clusters.md`).
//!
//! - [`RabbitCluster`] and [`NatsCluster`]: the nodes of each cluster, who leads a queue or a
//!   stream, which node a connection is on, and the faults (kill -9 and restart with the
//!   node's start script, RabbitMQ's `stop_app`/`start_app`), each followed by a bounded
//!   wait until the cluster has 3 healthy nodes again.
//! - [`Load`]: calls from several tasks and confirmed notifications streaming to a
//!   listener, counted, so a fault test says what was sent, confirmed, received, duplicated
//!   and lost, and how soon msg served again after the fault.
//!
//! It is test support, not a library for applications: the suite itself is this crate's
//! `cluster` test target, run alone (`--test-threads=1`) because its fault tests kill nodes
//! that every test of the suite shares. `cargo xtask test` runs it after the main tests.
#![warn(missing_docs)]

mod env;
mod load;
mod monitor;
mod nats;
mod process;
mod rabbit;

pub use env::{cluster_dir, cluster_url, with_option};
pub use load::{Load, LoadConfig, LoadReport};
pub use nats::{NatsCluster, NatsNode};
pub use rabbit::{RabbitCluster, RabbitNode};

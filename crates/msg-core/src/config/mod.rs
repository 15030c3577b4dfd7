//! oslo.config files: what a Python OpenStack service reads (`--config-file`, several, and
//! `--config-dir`), read by oslo.config's rules, with `OS_<GROUP>__<OPTION>` environment
//! overrides. This module knows the file format and the lookup rules; which options msg
//! reads, and what they do, is the `msg` facade's `Config` (see `docs/operations.md`).
//!
//! ```
//! use msg_core::config::ConfigFiles;
//! let files = ConfigFiles::empty().text(
//!     "nova.conf",
//!     "[DEFAULT]\ncontrol_exchange = nova\n[oslo_messaging_rabbit]\namqp_durable_queues = true\n",
//! )?;
//! assert_eq!(files.get("DEFAULT", "control_exchange")?.unwrap().as_str(), "nova");
//! assert!(files.get("oslo_messaging_rabbit", "amqp_durable_queues")?.unwrap().to_bool()?);
//! # Ok::<(), msg_core::config::ConfigError>(())
//! ```

mod error;
mod files;
mod ini;
mod substitute;
mod value;

pub use error::{ConfigError, Origin};
pub use files::ConfigFiles;
pub use value::ConfigValue;

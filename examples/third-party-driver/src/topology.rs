//! Where things live in Redis: the keys of the streams and lists, and the consumer groups.
//!
//! Every key is `PREFIX:KIND:PART[:PART...]`. Each part is escaped (`%` as `%25`, `:` as
//! `%3A`), so names holding colons, dots, dashes or underscores never run into each other:
//! topic `a:b` of exchange `x` and topic `b` of exchange `x:a` are different keys.
//!
//! | what | key | consumed by |
//! |------|-----|-------------|
//! | RPC topic | `msg:rpc:EXCHANGE:TOPIC` | group `rpc`: every server of the topic, balanced |
//! | RPC server | `msg:server:EXCHANGE:TOPIC:SERVER` | group `rpc`: the servers of that name |
//! | fanout | `msg:fanout:TOPIC` | every RPC server of the topic, each reading it all (`XREAD`) |
//! | notifications | `msg:notify:EXCHANGE:TOPIC:PRIORITY` | group `default`, and a group `pool:NAME` per pool |
//! | replies | `msg:reply:ID` (a list) | the caller that made `ID` |
//! | dead letters | the source key + `:dead` | nobody: for operators |

use msg_core::Priority;
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};

/// The group every RPC server of a topic (and of a server name) reads in.
pub const RPC_GROUP: &str = "rpc";
/// The group of notification listeners without a pool; the notifier creates it, so
/// notifications sent before any listener exists are kept for it.
pub const DEFAULT_GROUP: &str = "default";
/// The group a fanout stream is created with so that it exists (and casts to it are not
/// dropped as undeliverable); nobody reads in it.
pub const FANOUT_ANCHOR_GROUP: &str = "anchor";

const PART: &AsciiSet = &CONTROLS.add(b'%').add(b':');

/// The key layout under one prefix.
///
/// ```
/// use msg_core::Priority;
/// use msg_driver_redis::Keys;
/// let keys = Keys::new("msg");
/// assert_eq!(keys.rpc_topic("openstack", "compute"), "msg:rpc:openstack:compute");
/// assert_eq!(keys.notify("nova", "a:b", Priority::Info), "msg:notify:nova:a%3Ab:info");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    /// The layout under `prefix`.
    pub fn new(prefix: &str) -> Self {
        Keys {
            prefix: part(prefix),
        }
    }

    fn key(&self, kind: &str, parts: &[&str]) -> String {
        let mut k = format!("{}:{kind}", self.prefix);
        for p in parts {
            k.push(':');
            k.push_str(&part(p));
        }
        k
    }

    /// The stream shared by every server of a topic.
    pub fn rpc_topic(&self, exchange: &str, topic: &str) -> String {
        self.key("rpc", &[exchange, topic])
    }

    /// The stream of the servers named `server` of a topic.
    pub fn rpc_server(&self, exchange: &str, topic: &str, server: &str) -> String {
        self.key("server", &[exchange, topic, server])
    }

    /// The fanout stream of a topic (oslo's fanout is per topic, whatever the exchange).
    pub fn fanout(&self, topic: &str) -> String {
        self.key("fanout", &[topic])
    }

    /// The stream of a topic's notifications at one priority.
    pub fn notify(&self, exchange: &str, topic: &str, priority: Priority) -> String {
        self.key("notify", &[exchange, topic, priority.routing_name()])
    }

    /// A caller's reply list.
    pub fn reply(&self, reply_q: &str) -> String {
        self.key("reply", &[reply_q])
    }

    /// Where the messages of `source` that were delivered too often go.
    pub fn dead_letter(&self, source: &str) -> String {
        format!("{source}:dead")
    }

    /// The group of a notification pool (`None`: the default group).
    pub fn pool_group(pool: Option<&str>) -> String {
        match pool {
            Some(p) => format!("pool:{p}"),
            None => DEFAULT_GROUP.to_string(),
        }
    }
}

fn part(s: &str) -> String {
    utf8_percent_encode(s, PART).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_with_separators_never_collide() {
        let k = Keys::new("msg");
        assert_ne!(k.rpc_topic("x", "a:b"), k.rpc_topic("x:a", "b"));
        assert_ne!(k.rpc_topic("x", "a:b"), k.rpc_server("x", "a", "b"));
        assert_eq!(
            k.rpc_server("ex.1", "t-2_3", "host.a:b"),
            "msg:server:ex.1:t-2_3:host.a%3Ab"
        );
        assert_eq!(k.reply("100%"), "msg:reply:100%25");
        assert_ne!(Keys::pool_group(Some("default")), Keys::pool_group(None));
    }
}

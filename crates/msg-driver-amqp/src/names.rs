//! AMQP names (exchanges, queues, routing keys) are short strings of at most 255 bytes: a
//! target whose names would make a longer one is refused with an error naming its field,
//! before lapin sees it.

use msg_core::{Error, Result, Target};

/// AMQP's limit on a short string.
const MAX: usize = 255;

/// What our transient queue names add to a name: `_<32 hex>` (or a queue manager's
/// `_<host>:<process>:<n>`, bounded by the host name's 64 bytes).
const TRANSIENT_SUFFIX: usize = 1 + 64 + 1 + 32 + 1 + 20;

/// What the fanout exchange adds to a topic.
const FANOUT_SUFFIX: usize = "_fanout".len();

/// The longest priority in a routing key (`critical`).
const LONGEST_PRIORITY: usize = "critical".len();

/// What the dead-letter queue adds to a notification queue.
const DEAD_LETTER_SUFFIX: usize = ".dead-letter".len();

/// Checks every name a target makes: its exchange, topic queue, `topic.server` queue, fanout
/// exchange and queue, notification queues and dead-letter queues, and a pool's queue.
///
/// It runs on every send, so it adds lengths instead of building the names.
pub(crate) fn check(target: &Target, exchange: &str, pool: Option<&str>) -> Result<()> {
    fit("exchange", exchange, 0)?;
    if let Some(topic) = target.topic.as_deref() {
        // `<topic>_fanout` (the fanout exchange), and its queues' transient suffix
        fit("topic", topic, FANOUT_SUFFIX + TRANSIENT_SUFFIX)?;
        // `<topic>.<priority>` (notification queues), and their dead-letter queues
        fit("topic", topic, 1 + LONGEST_PRIORITY + DEAD_LETTER_SUFFIX)?;
        if let Some(server) = target.server.as_deref() {
            // `<topic>.<server>`
            fit("server", server, topic.len().saturating_add(1))?;
        }
    }
    if let Some(pool) = pool {
        fit("pool", pool, DEAD_LETTER_SUFFIX)?;
    }
    Ok(())
}

/// Refuses `name` when the longest name made from it (`extra` more bytes) is over the limit.
fn fit(field: &'static str, name: &str, extra: usize) -> Result<()> {
    let len = name.len().saturating_add(extra);
    if len <= MAX {
        return Ok(());
    }
    let shown: String = name.chars().take(40).collect();
    Err(Error::InvalidTarget {
        field,
        reason: format!(
            "`{shown}...` makes a RabbitMQ name of {len} bytes; AMQP names are at most {MAX}"
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_priority_is_counted() {
        use msg_core::{Priority, naming};
        let longest = Priority::ALL.iter().map(|p| p.routing_name().len()).max();
        assert_eq!(longest, Some(LONGEST_PRIORITY));
        assert_eq!(naming::fanout_exchange("t").len(), 1 + FANOUT_SUFFIX);
    }

    #[test]
    fn long_names_are_refused_by_field() {
        assert!(check(&Target::server("calc", "host-1"), "openstack", Some("pool")).is_ok());
        let long = "t".repeat(300);
        for (target, exchange, pool, field) in [
            (Target::topic(&long), "openstack", None, "topic"),
            (Target::server("calc", &long), "openstack", None, "server"),
            (Target::topic("calc"), long.as_str(), None, "exchange"),
            (
                Target::topic("calc"),
                "openstack",
                Some(long.as_str()),
                "pool",
            ),
        ] {
            match check(&target, exchange, pool) {
                Err(Error::InvalidTarget { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{field}: {other:?}"),
            }
        }
    }
}

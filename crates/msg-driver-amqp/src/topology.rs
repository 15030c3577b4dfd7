//! Topology: the exchanges, queues and bindings the driver declares (oslo's names, flags
//! and queue arguments), recorded by the supervisor and declared again after a reconnect or
//! a queue deleted under a consumer.

use std::sync::Arc;

use futures::FutureExt;
use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, ExchangeKind};
use msg_core::naming;
use msg_core::{Error, Refusal, Result};

use crate::AmqpDriver;
use crate::connection::{Bound, Conn, Supervisor, amqp_err, open_channel};
use crate::errors::{is_not_found, is_precondition_failed};
use crate::options::RabbitOptions;

/// An exchange, queue or binding, as declared (and re-declared after a reconnect).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Decl {
    Exchange {
        name: String,
        fanout: bool,
        durable: bool,
        auto_delete: bool,
    },
    Queue {
        name: String,
        durable: bool,
        auto_delete: bool,
        args: FieldTable,
    },
    Bind {
        queue: String,
        exchange: String,
        key: String,
    },
}

impl Decl {
    fn key(&self) -> String {
        match self {
            Decl::Exchange { name, .. } => format!("e\0{name}"),
            Decl::Queue { name, .. } => format!("q\0{name}"),
            Decl::Bind {
                queue,
                exchange,
                key,
            } => format!("b\0{queue}\0{exchange}\0{key}"),
        }
    }

    pub(crate) fn queue_name(&self) -> Option<&str> {
        match self {
            Decl::Queue { name, .. } | Decl::Bind { queue: name, .. } => Some(name),
            Decl::Exchange { .. } => None,
        }
    }
}

impl Supervisor {
    /// Declares what isn't declared yet (and records it for reconnects); a connection lost
    /// meanwhile is waited for, and the declarations made again, as `bound` allows.
    pub(crate) async fn declare(self: &Arc<Self>, decls: Vec<Decl>, bound: Bound) -> Result<()> {
        let new: Vec<Decl> = {
            let guard = self.declared.lock();
            // an auto-delete exchange may be gone since (its last queue went): always declared
            decls
                .into_iter()
                .filter(|d| {
                    !guard.1.contains(&d.key())
                        || matches!(
                            d,
                            Decl::Exchange {
                                auto_delete: true,
                                ..
                            }
                        )
                })
                .collect()
        };
        if new.is_empty() {
            return Ok(());
        }
        let done = self
            .on_connection("declaring", bound, |conn| {
                let new = &new;
                async move { self.declare_on(&conn, new).await }.boxed()
            })
            .await?;
        let mut guard = self.declared.lock();
        for d in done {
            if guard.1.insert(d.key()) {
                guard.0.push(d);
            }
        }
        Ok(())
    }

    /// Declares these queues again from the record, with their bindings and the exchanges
    /// those bind to (after the broker deleted a queue under a consumer).
    pub(crate) async fn redeclare_queues(&self, conn: &Conn, queues: &[String]) -> Result<()> {
        let decls: Vec<Decl> = {
            let guard = self.declared.lock();
            let record = &guard.0;
            let ours = |q: &str| queues.iter().any(|x| x == q);
            let exchanges = record.iter().filter(|d| match d {
                Decl::Exchange { name, .. } => record.iter().any(|b| {
                    matches!(b, Decl::Bind { queue, exchange, .. } if exchange == name && ours(queue))
                }),
                _ => false,
            });
            let queues = record
                .iter()
                .filter(|d| matches!(d, Decl::Queue { name, .. } if ours(name)));
            let binds = record
                .iter()
                .filter(|d| matches!(d, Decl::Bind { queue, .. } if ours(queue)));
            exchanges.chain(queues).chain(binds).cloned().collect()
        };
        self.declare_on(conn, &decls).await.map(drop)
    }

    /// Declares on a channel of its own (a refused declaration closes its channel); returns
    /// the declarations as they ended up (an exchange may have flipped `durable`).
    pub(crate) async fn declare_on(&self, conn: &Conn, decls: &[Decl]) -> Result<Vec<Decl>> {
        let mut channel = open_channel(conn).await?;
        let mut done = Vec::with_capacity(decls.len());
        for d in decls {
            // oslo (Consumer._declare_fallback_nondurable): a queue bound to an exchange that
            // fell back to non-durable is declared non-durable as well
            let fallback;
            let d = match d {
                Decl::Queue {
                    name,
                    durable: true,
                    auto_delete,
                    args,
                } if self.bound_to_non_durable_fallback(decls, name) => {
                    fallback = Decl::Queue {
                        name: name.clone(),
                        durable: false,
                        auto_delete: *auto_delete,
                        args: args.clone(),
                    };
                    &fallback
                }
                _ => d,
            };
            match declare_one(&channel, d).await {
                Ok(()) => done.push(d.clone()),
                Err(e) if is_precondition_failed(&e) => {
                    channel = open_channel(conn).await?;
                    match d {
                        // oslo: an exchange that exists with the other `durable` flag is
                        // re-declared with that flag
                        Decl::Exchange {
                            name,
                            fanout,
                            durable,
                            auto_delete,
                        } => {
                            let flipped = Decl::Exchange {
                                name: name.clone(),
                                fanout: *fanout,
                                durable: !durable,
                                auto_delete: *auto_delete,
                            };
                            // another difference (the type, an argument) fails again: the
                            // error names what we asked for first
                            declare_one(&channel, &flipped)
                                .await
                                .map_err(|_| precondition_error(d, &e))?;
                            tracing::warn!(
                                exchange = name,
                                durable = !durable,
                                "exchange exists with the other durable flag; using it"
                            );
                            if *durable {
                                self.non_durable_fallback.lock().insert(name.clone());
                            }
                            done.push(flipped);
                        }
                        _ => return Err(precondition_error(d, &e)),
                    }
                }
                Err(e) if is_not_found(&e) => {
                    // an auto-delete exchange went away under us (its last queue was deleted
                    // meanwhile): declare it again, then retry once
                    channel = open_channel(conn).await?;
                    let exchange = match d {
                        Decl::Bind { exchange, .. } => decls
                            .iter()
                            .find(|x| matches!(x, Decl::Exchange { name, .. } if name == exchange)),
                        _ => None,
                    };
                    if let Some(x) = exchange {
                        declare_one(&channel, x)
                            .await
                            .map_err(|e| amqp_err(&format!("declaring {}", describe(x)), e))?;
                    }
                    declare_one(&channel, d)
                        .await
                        .map_err(|e| amqp_err(&format!("declaring {}", describe(d)), e))?;
                    done.push(d.clone());
                }
                Err(e) => return Err(amqp_err(&format!("declaring {}", describe(d)), e)),
            }
        }
        let _ = channel.close(200, "OK".into()).await;
        Ok(done)
    }

    /// Whether this batch binds `queue` to an exchange that fell back to non-durable.
    fn bound_to_non_durable_fallback(&self, decls: &[Decl], queue: &str) -> bool {
        let fallback = self.non_durable_fallback.lock();
        !fallback.is_empty()
            && decls.iter().any(|d| {
                matches!(d, Decl::Bind { queue: q, exchange, .. }
                    if q == queue && fallback.contains(exchange))
            })
    }
}

fn describe(d: &Decl) -> String {
    match d {
        Decl::Exchange {
            name,
            fanout,
            durable,
            auto_delete,
        } => format!(
            "exchange `{name}` ({}, durable={durable}, auto_delete={auto_delete})",
            if *fanout { "fanout" } else { "topic" }
        ),
        Decl::Queue {
            name,
            durable,
            auto_delete,
            args,
        } => format!(
            "queue `{name}` (durable={durable}, auto_delete={auto_delete}, arguments={args:?})"
        ),
        Decl::Bind {
            queue,
            exchange,
            key,
        } => format!("binding of `{queue}` to `{exchange}` with key `{key}`"),
    }
}

fn precondition_error(d: &Decl, e: &lapin::Error) -> Error {
    Error::refused(
        Refusal::PreconditionFailed,
        format!(
            "declaring {} with our flags: {e}; the object exists with other flags or arguments \
             (check amqp_durable_queues, rabbit_quorum_queue and the peers' options)",
            describe(d)
        ),
        None,
    )
}

async fn declare_one(channel: &Channel, d: &Decl) -> std::result::Result<(), lapin::Error> {
    match d {
        Decl::Exchange {
            name,
            fanout,
            durable,
            auto_delete,
        } => {
            channel
                .exchange_declare(
                    name.as_str().into(),
                    if *fanout {
                        ExchangeKind::Fanout
                    } else {
                        ExchangeKind::Topic
                    },
                    ExchangeDeclareOptions {
                        durable: *durable,
                        auto_delete: *auto_delete,
                        ..ExchangeDeclareOptions::default()
                    },
                    FieldTable::default(),
                )
                .await
        }
        Decl::Queue {
            name,
            durable,
            auto_delete,
            args,
        } => channel
            .queue_declare(
                name.as_str().into(),
                QueueDeclareOptions {
                    durable: *durable,
                    auto_delete: *auto_delete,
                    ..QueueDeclareOptions::default()
                },
                args.clone(),
            )
            .await
            .map(|_| ()),
        Decl::Bind {
            queue,
            exchange,
            key,
        } => {
            channel
                .queue_bind(
                    queue.as_str().into(),
                    exchange.as_str().into(),
                    key.as_str().into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await
        }
    }
}

/// Queue arguments for a queue of this kind (WIRE.md: quorum, HA, TTL).
pub(crate) fn queue_args(o: &RabbitOptions, transient: bool) -> FieldTable {
    let mut args = FieldTable::default();
    let quorum = if transient {
        o.rabbit_transient_quorum_queue
    } else {
        o.rabbit_quorum_queue
    };
    if quorum {
        args.insert(
            "x-queue-type".into(),
            AMQPValue::LongString("quorum".into()),
        );
        // oslo passes its quorum config to transient quorum queues (reply, fanout) too
        if o.rabbit_quorum_delivery_limit > 0 {
            args.insert(
                "x-delivery-limit".into(),
                int_value(i64::from(o.rabbit_quorum_delivery_limit)),
            );
        }
        if o.rabbit_quorum_max_memory_length > 0 {
            args.insert(
                "x-max-in-memory-length".into(),
                int_value(i64::from(o.rabbit_quorum_max_memory_length)),
            );
        }
        if o.rabbit_quorum_max_memory_bytes > 0 {
            args.insert(
                "x-max-in-memory-bytes".into(),
                int_value(i64::try_from(o.rabbit_quorum_max_memory_bytes).unwrap_or(i64::MAX)),
            );
        }
    } else if o.rabbit_ha_queues {
        args.insert("x-ha-policy".into(), AMQPValue::LongString("all".into()));
    }
    // 0 turns the expiry off, as in oslo (RabbitMQ refuses an `x-expires` of 0)
    if transient && o.rabbit_transient_queues_ttl > 0 {
        args.insert("x-expires".into(), int_value(o.transient_ttl_ms()));
    }
    args
}

/// Queue arguments of a topic's fanout stream (`rabbit_stream_fanout`), as oslo makes them:
/// only the type and the retention, `x-max-age` a string of seconds from
/// `rabbit_transient_queues_ttl` (0: kept forever).
pub(crate) fn stream_args(o: &RabbitOptions) -> FieldTable {
    let mut args = FieldTable::default();
    args.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("stream".into()),
    );
    if o.rabbit_transient_queues_ttl > 0 {
        args.insert(
            "x-max-age".into(),
            AMQPValue::LongString(format!("{}s", o.rabbit_transient_queues_ttl).into()),
        );
    }
    args
}

/// An integer argument typed as Python's amqp library types it (32-bit when it fits), so a
/// re-declaration by either side is equivalent.
fn int_value(v: i64) -> AMQPValue {
    match i32::try_from(v) {
        Ok(small) => AMQPValue::LongInt(small),
        Err(_) => AMQPValue::LongLongInt(v),
    }
}

impl AmqpDriver {
    pub(crate) fn topic_exchange(&self, name: &str) -> Decl {
        let o = &self.sup.options;
        Decl::Exchange {
            name: name.to_string(),
            fanout: false,
            durable: o.durable_queues(),
            auto_delete: o.amqp_auto_delete,
        }
    }

    pub(crate) fn fanout_exchange(&self, topic: &str) -> Decl {
        Decl::Exchange {
            name: naming::fanout_exchange(topic),
            fanout: true,
            durable: self.sup.options.rabbit_transient_quorum_queue,
            auto_delete: true,
        }
    }

    pub(crate) fn queue(&self, name: &str) -> Decl {
        let o = &self.sup.options;
        Decl::Queue {
            name: name.to_string(),
            durable: o.durable_queues(),
            auto_delete: o.amqp_auto_delete,
            args: queue_args(o, false),
        }
    }

    pub(crate) fn transient_queue(&self, name: &str) -> Decl {
        Decl::Queue {
            name: name.to_string(),
            durable: self.sup.options.rabbit_transient_quorum_queue,
            auto_delete: false,
            args: queue_args(&self.sup.options, true),
        }
    }

    /// A topic's fanout stream (`rabbit_stream_fanout`): durable, never auto-deleted, its
    /// messages kept for `rabbit_transient_queues_ttl`.
    pub(crate) fn stream_queue(&self, name: &str) -> Decl {
        Decl::Queue {
            name: name.to_string(),
            durable: true,
            auto_delete: false,
            args: stream_args(&self.sup.options),
        }
    }

    pub(crate) fn bind(queue: &str, exchange: &str, key: &str) -> Decl {
        Decl::Bind {
            queue: queue.to_string(),
            exchange: exchange.to_string(),
            key: key.to_string(),
        }
    }
}

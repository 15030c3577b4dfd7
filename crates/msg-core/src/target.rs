//! Where a message goes: oslo's `Target`.

use crate::{Error, Result};

/// Where a message goes, or what a server listens to (oslo's `Target`).
///
/// Which fields are needed depends on the role: a server needs `topic` and `server`; a
/// client needs `topic`; a call can't be fanned out, and a fanout cast ignores `server` (as oslo).
/// [`Target::validate`] checks them and names the field that is wrong.
///
/// ```
/// use msg_core::{Role, Target};
/// let t = Target::server("calc", "host-1").with_version("1.2");
/// assert!(t.validate(Role::RpcServer).is_ok());
/// let err = Target::default().validate(Role::RpcCall).unwrap_err();
/// assert!(err.to_string().contains("`topic`"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Target {
    /// The exchange; `None` means the driver's control exchange (`openstack` by default).
    pub exchange: Option<String>,
    /// The topic.
    pub topic: Option<String>,
    /// The endpoint namespace.
    pub namespace: Option<String>,
    /// The API version (`major.minor`); `None` means `1.0` on the server side.
    pub version: Option<String>,
    /// A server name, for server-directed messages.
    pub server: Option<String>,
    /// Deliver to every server listening on the topic.
    pub fanout: bool,
}

/// The role a target is used in, which decides the fields it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// An RPC server: topic and server.
    RpcServer,
    /// An RPC call: topic; not fanout.
    RpcCall,
    /// An RPC cast: topic; fanout not combined with server.
    RpcCast,
    /// A notifier: topic.
    Notifier,
    /// A notification listener: topic.
    NotificationListener,
}

impl Target {
    /// An empty target (every field unset).
    pub fn new() -> Self {
        Self::default()
    }

    /// A target for `topic`.
    pub fn topic(topic: impl Into<String>) -> Self {
        Target {
            topic: Some(topic.into()),
            ..Self::default()
        }
    }

    /// A target for `server` on `topic` (what an RPC server listens to).
    pub fn server(topic: impl Into<String>, server: impl Into<String>) -> Self {
        Target {
            topic: Some(topic.into()),
            server: Some(server.into()),
            ..Self::default()
        }
    }

    /// This target with another exchange.
    pub fn with_exchange(mut self, exchange: impl Into<String>) -> Self {
        self.exchange = Some(exchange.into());
        self
    }

    /// This target with another topic.
    pub fn with_topic(mut self, topic: impl Into<String>) -> Self {
        self.topic = Some(topic.into());
        self
    }

    /// This target with a namespace.
    pub fn with_namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = Some(namespace.into());
        self
    }

    /// This target with a version.
    pub fn with_version(mut self, version: impl Into<String>) -> Self {
        self.version = Some(version.into());
        self
    }

    /// This target directed at one server.
    pub fn with_server(mut self, server: impl Into<String>) -> Self {
        self.server = Some(server.into());
        self
    }

    /// This target with fanout on or off.
    pub fn with_fanout(mut self, fanout: bool) -> Self {
        self.fanout = fanout;
        self
    }

    /// The topic, or an [`Error::InvalidTarget`] naming it.
    pub fn require_topic(&self) -> Result<&str> {
        match self.topic.as_deref() {
            Some(t) if !t.is_empty() => Ok(t),
            _ => Err(Error::InvalidTarget {
                field: "topic",
                reason: "a topic is required".into(),
            }),
        }
    }

    /// Checks the fields this role needs.
    pub fn validate(&self, role: Role) -> Result<()> {
        self.require_topic()?;
        for (field, value) in [
            ("topic", &self.topic),
            ("server", &self.server),
            ("exchange", &self.exchange),
            ("namespace", &self.namespace),
        ] {
            if let Some(v) = value {
                check_name(field, v)?;
            }
        }
        if let Some(v) = &self.version {
            crate::version::Version::parse(v).map_err(|_| Error::InvalidTarget {
                field: "version",
                reason: format!("`{v}` is not a `major.minor[.revision]` version"),
            })?;
        }
        let empty_server = matches!(self.server.as_deref(), Some(""));
        match role {
            Role::RpcServer => {
                if self.server.is_none() || empty_server {
                    return Err(Error::InvalidTarget {
                        field: "server",
                        reason: "an RPC server needs a server name".into(),
                    });
                }
                if self.fanout {
                    return Err(Error::InvalidTarget {
                        field: "fanout",
                        reason: "a server listens to fanout by itself; don't set fanout".into(),
                    });
                }
            }
            Role::RpcCall | Role::RpcCast => {
                if empty_server {
                    return Err(Error::InvalidTarget {
                        field: "server",
                        reason: "an empty server name".into(),
                    });
                }
                if self.fanout && role == Role::RpcCall {
                    return Err(Error::InvalidTarget {
                        field: "fanout",
                        reason: "a call can't be fanned out (use cast)".into(),
                    });
                }
            }
            Role::Notifier | Role::NotificationListener => {}
        }
        Ok(())
    }
}

/// A name every broker can carry: at most 255 bytes (AMQP's short string), no control
/// characters.
fn check_name(field: &'static str, value: &str) -> Result<()> {
    let max = crate::codec::MAX_ROUTING_BYTES;
    if value.len() > max {
        return Err(Error::InvalidTarget {
            field,
            reason: format!("{} bytes long (at most {max})", value.len()),
        });
    }
    if value.chars().any(char::is_control) {
        return Err(Error::InvalidTarget {
            field,
            reason: "holds a control character".into(),
        });
    }
    Ok(())
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "<Target")?;
        let fields = [
            ("exchange", &self.exchange),
            ("topic", &self.topic),
            ("namespace", &self.namespace),
            ("version", &self.version),
            ("server", &self.server),
        ];
        for (name, value) in fields {
            if let Some(v) = value {
                write!(f, " {name}={v}")?;
            }
        }
        if self.fanout {
            write!(f, " fanout")?;
        }
        write!(f, ">")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(r: Result<()>) -> &'static str {
        match r {
            Err(Error::InvalidTarget { field, .. }) => field,
            other => panic!("expected InvalidTarget, got {other:?}"),
        }
    }

    #[test]
    fn names_are_bounded_and_printable() {
        let long = "n".repeat(256);
        assert_eq!(
            field(Target::topic(&long).validate(Role::Notifier)),
            "topic"
        );
        assert_eq!(
            field(Target::server("t", &long).validate(Role::RpcServer)),
            "server"
        );
        assert_eq!(
            field(
                Target::topic("t")
                    .with_exchange("a\nb")
                    .validate(Role::RpcCast)
            ),
            "exchange"
        );
        assert!(
            Target::topic("n".repeat(255))
                .validate(Role::RpcCall)
                .is_ok()
        );
        assert!(
            Target::server("a.b:c-d_e", "host@x")
                .validate(Role::RpcServer)
                .is_ok()
        );
    }

    #[test]
    fn roles_need_their_fields() {
        assert_eq!(field(Target::new().validate(Role::RpcCall)), "topic");
        assert_eq!(field(Target::topic("").validate(Role::Notifier)), "topic");
        assert_eq!(
            field(Target::topic("t").validate(Role::RpcServer)),
            "server"
        );
        assert_eq!(
            field(Target::server("t", "").validate(Role::RpcServer)),
            "server"
        );
        assert_eq!(
            field(Target::topic("t").with_fanout(true).validate(Role::RpcCall)),
            "fanout"
        );
        // oslo sends a cast with fanout and a server as fanout: the server is ignored
        assert!(
            Target::server("t", "s")
                .with_fanout(true)
                .validate(Role::RpcCast)
                .is_ok()
        );
        assert_eq!(
            field(Target::topic("t").with_version("x").validate(Role::RpcCall)),
            "version"
        );
        assert!(Target::server("t", "s").validate(Role::RpcServer).is_ok());
        assert!(Target::server("t", "s").validate(Role::RpcCall).is_ok());
        assert!(
            Target::topic("t")
                .with_fanout(true)
                .validate(Role::RpcCast)
                .is_ok()
        );
        assert!(
            Target::topic("t")
                .with_version("2.3")
                .validate(Role::NotificationListener)
                .is_ok()
        );
    }

    #[test]
    fn display_lists_set_fields() {
        let t = Target::server("calc", "h1").with_namespace("ns");
        assert_eq!(t.to_string(), "<Target topic=calc namespace=ns server=h1>");
    }
}

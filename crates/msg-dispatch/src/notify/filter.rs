//! Which notifications an endpoint wants: oslo's `NotificationFilter`.

use std::collections::BTreeMap;

use msg_core::Error;
use regex::Regex;
use serde_json::{Map, Value};

use crate::NotificationMessage;

/// Regular expressions a notification must match for an endpoint to see it (oslo's
/// `NotificationFilter`). An empty filter matches everything.
///
/// Each expression matches as Python's `re.match`: anchored at the start of the value, not at
/// its end (`compute` matches `compute.instance.create`; `^compute` does not match
/// `xcompute`). The syntax is the `regex` crate's, which covers Python's save for
/// look-around and backreferences.
///
/// - `publisher_id`, `event_type`: the value must match.
/// - `context`, `metadata`, `payload`: each filtered key must be present in that object with
///   a string value that matches. A payload that is not a JSON object fails every payload
///   filter.
///
/// ```
/// use msg_core::{Context, Notification, Priority};
/// use msg_dispatch::{NotificationFilter, NotificationMessage};
///
/// let filter = NotificationFilter::new()
///     .publisher_id(r"compute\.")?
///     .event_type("compute.instance.create")?
///     .payload("state", "active|building")?;
/// let n = Notification::new("compute.host1", "compute.instance.create.end", Priority::Info,
///                           serde_json::json!({"state": "active"}));
/// assert!(filter.matches(&NotificationMessage::new(Context::new(), n)));
/// assert!(NotificationFilter::new().event_type("(").is_err());
/// # Ok::<(), msg_core::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct NotificationFilter {
    publisher_id: Option<Regex>,
    event_type: Option<Regex>,
    context: BTreeMap<String, Regex>,
    metadata: BTreeMap<String, Regex>,
    payload: BTreeMap<String, Regex>,
}

impl NotificationFilter {
    /// A filter that matches everything.
    pub fn new() -> Self {
        Self::default()
    }

    /// Requires the publisher id to match `regex`.
    pub fn publisher_id(mut self, regex: &str) -> Result<Self, Error> {
        self.publisher_id = Some(compile("publisher_id", regex)?);
        Ok(self)
    }

    /// Requires the event type to match `regex`.
    pub fn event_type(mut self, regex: &str) -> Result<Self, Error> {
        self.event_type = Some(compile("event_type", regex)?);
        Ok(self)
    }

    /// Requires the context to hold `key` with a string value matching `regex`.
    pub fn context(mut self, key: impl Into<String>, regex: &str) -> Result<Self, Error> {
        let key = key.into();
        let re = compile(&format!("context key `{key}`"), regex)?;
        self.context.insert(key, re);
        Ok(self)
    }

    /// Requires the metadata (`message_id`, `timestamp`) to hold `key` with a string value
    /// matching `regex`.
    pub fn metadata(mut self, key: impl Into<String>, regex: &str) -> Result<Self, Error> {
        let key = key.into();
        let re = compile(&format!("metadata key `{key}`"), regex)?;
        self.metadata.insert(key, re);
        Ok(self)
    }

    /// Requires the payload to be an object holding `key` with a string value matching
    /// `regex`.
    pub fn payload(mut self, key: impl Into<String>, regex: &str) -> Result<Self, Error> {
        let key = key.into();
        let re = compile(&format!("payload key `{key}`"), regex)?;
        self.payload.insert(key, re);
        Ok(self)
    }

    /// Whether the filter lets this notification through.
    pub fn matches(&self, msg: &NotificationMessage) -> bool {
        let value_ok =
            |re: &Option<Regex>, value: &str| re.as_ref().is_none_or(|re| re.is_match(value));
        value_ok(&self.publisher_id, &msg.publisher_id)
            && value_ok(&self.event_type, &msg.event_type)
            && map_matches(&self.context, Some(msg.context.as_map()))
            && map_matches(&self.metadata, Some(&msg.metadata))
            && self.payload_matches(&msg.payload)
    }

    /// Each payload filter against its key's string value, read from the payload's text
    /// without parsing the rest into `Value`s.
    fn payload_matches(&self, payload: &msg_core::Payload) -> bool {
        self.payload
            .iter()
            .all(|(key, re)| payload.with_str(key, |v| re.is_match(v)).unwrap_or(false))
    }

    /// Whether the filter is empty (lets everything through).
    pub fn is_empty(&self) -> bool {
        self.publisher_id.is_none()
            && self.event_type.is_none()
            && self.context.is_empty()
            && self.metadata.is_empty()
            && self.payload.is_empty()
    }
}

fn map_matches(filters: &BTreeMap<String, Regex>, data: Option<&Map<String, Value>>) -> bool {
    if filters.is_empty() {
        return true;
    }
    let Some(data) = data else {
        return false;
    };
    filters.iter().all(|(key, re)| {
        data.get(key)
            .and_then(Value::as_str)
            .is_some_and(|v| re.is_match(v))
    })
}

/// Compiles a regex anchored at the start only, as Python's `re.match`. The expression is
/// checked on its own first, so that something like `a)|(b` can't escape the anchoring group.
fn compile(what: &str, regex: &str) -> Result<Regex, Error> {
    let bad = |e: regex::Error| {
        Error::Config(format!(
            "notification filter: invalid regex `{regex}` for {what}: {e}"
        ))
    };
    Regex::new(regex).map_err(bad)?;
    Regex::new(&format!("^(?:{regex})")).map_err(bad)
}

#[cfg(test)]
mod tests {
    use super::*;
    use msg_core::{Context, Notification, Priority};
    use serde_json::json;

    fn msg() -> NotificationMessage {
        let mut n = Notification::new(
            "compute.host1",
            "compute.instance.create.end",
            Priority::Info,
            json!({"state": "active", "id": 12, "nested": {"a": "b"}}),
        );
        n.message_id = "0b7d1a2c-msg".into();
        let ctx = Context::new()
            .with("project_id", "p-42")
            .with("is_admin", true);
        NotificationMessage::new(ctx, n)
    }

    #[test]
    fn empty_filter_matches_everything() {
        let f = NotificationFilter::new();
        assert!(f.is_empty());
        assert!(f.matches(&msg()));
        let mut m = msg();
        m.payload = json!("just a string").into();
        assert!(f.matches(&m));
    }

    #[test]
    fn publisher_id() {
        let ok = NotificationFilter::new().publisher_id("compute").unwrap();
        assert!(!ok.is_empty());
        assert!(ok.matches(&msg()));
        let full = NotificationFilter::new()
            .publisher_id(r"^compute\.host\d$")
            .unwrap();
        assert!(full.matches(&msg()));
        let other = NotificationFilter::new().publisher_id("network").unwrap();
        assert!(!other.matches(&msg()));
        // anchored at the start: a match in the middle is not enough
        let middle = NotificationFilter::new().publisher_id("host1").unwrap();
        assert!(!middle.matches(&msg()));
    }

    #[test]
    fn event_type_is_anchored_at_the_start_only() {
        let f = NotificationFilter::new().event_type("^compute").unwrap();
        assert!(f.matches(&msg()));
        let mut m = msg();
        m.event_type = "xcompute.instance".into();
        assert!(!f.matches(&m));
        // a prefix is enough: no anchor at the end
        let prefix = NotificationFilter::new()
            .event_type("compute.instance")
            .unwrap();
        assert!(prefix.matches(&msg()));
        let no_anchor = NotificationFilter::new().event_type("compute").unwrap();
        assert!(!no_anchor.matches(&m));
        // an alternation stays anchored as a whole
        let alt = NotificationFilter::new()
            .event_type("network|compute")
            .unwrap();
        assert!(alt.matches(&msg()));
        assert!(!alt.matches(&m));
    }

    #[test]
    fn context_keys() {
        let f = NotificationFilter::new()
            .context("project_id", "p-")
            .unwrap();
        assert!(f.matches(&msg()));
        let wrong = NotificationFilter::new()
            .context("project_id", "q-")
            .unwrap();
        assert!(!wrong.matches(&msg()));
        let missing = NotificationFilter::new().context("user_id", ".*").unwrap();
        assert!(!missing.matches(&msg()));
        // a non-string value never matches, even `.*`
        let non_string = NotificationFilter::new().context("is_admin", ".*").unwrap();
        assert!(!non_string.matches(&msg()));
    }

    #[test]
    fn metadata_keys() {
        let f = NotificationFilter::new()
            .metadata("message_id", "0b7d")
            .unwrap();
        assert!(f.matches(&msg()));
        let wrong = NotificationFilter::new()
            .metadata("message_id", "ffff")
            .unwrap();
        assert!(!wrong.matches(&msg()));
        let missing = NotificationFilter::new().metadata("other", "").unwrap();
        assert!(!missing.matches(&msg()));
        let ts = NotificationFilter::new()
            .metadata("timestamp", r"\d{4}-")
            .unwrap();
        assert!(ts.matches(&msg()));
    }

    #[test]
    fn payload_keys() {
        let f = NotificationFilter::new()
            .payload("state", "active")
            .unwrap()
            .payload("state", "act") // same key again: replaces
            .unwrap();
        assert!(f.matches(&msg()));
        let wrong = NotificationFilter::new()
            .payload("state", "deleted")
            .unwrap();
        assert!(!wrong.matches(&msg()));
        let missing = NotificationFilter::new().payload("host", ".*").unwrap();
        assert!(!missing.matches(&msg()));
        let number = NotificationFilter::new().payload("id", "12").unwrap();
        assert!(!number.matches(&msg()));
        let object = NotificationFilter::new().payload("nested", ".*").unwrap();
        assert!(!object.matches(&msg()));
        for payload in [json!("state"), json!(["state"]), json!(null), json!(3)] {
            let mut m = msg();
            m.payload = payload.into();
            assert!(!f.matches(&m), "{:?}", m.payload);
        }
    }

    #[test]
    fn every_field_must_match() {
        let f = NotificationFilter::new()
            .publisher_id("compute")
            .unwrap()
            .event_type("compute")
            .unwrap()
            .context("project_id", "p")
            .unwrap()
            .metadata("message_id", "0")
            .unwrap()
            .payload("state", "a")
            .unwrap();
        assert!(f.matches(&msg()));
        let mut m = msg();
        m.payload = json!({"state": "b"}).into();
        assert!(!f.matches(&m));
        let mut m = msg();
        m.publisher_id = "network".into();
        assert!(!f.matches(&m));
    }

    #[test]
    fn bad_regex_names_itself() {
        let err = NotificationFilter::new().payload("state", "(").unwrap_err();
        assert!(
            matches!(&err, Error::Config(m) if m.contains("`(`") && m.contains("payload key `state`")),
            "{err}"
        );
        assert!(NotificationFilter::new().publisher_id("[").is_err());
        assert!(NotificationFilter::new().event_type("a)").is_err());
        assert!(NotificationFilter::new().event_type("a)|(b").is_err());
        assert!(NotificationFilter::new().context("k", "*").is_err());
        assert!(NotificationFilter::new().metadata("k", "(?P<").is_err());
    }
}

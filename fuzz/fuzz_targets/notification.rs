//! Notifications (`msg_core::codec::WireNotification`) and their timestamps.
//!
//! - Decoding any bytes returns, never panics.
//! - What decodes has its names and ids in bounds (as `msg_core::codec` says).
//! - A notification that decodes encodes, bare and enveloped, and decodes back to itself.
//! - A timestamp that parses formats to text that parses back to it (to the microsecond); a
//!   leap second doesn't parse.

#![no_main]

use libfuzzer_sys::fuzz_target;
use msg_core::codec::WireNotification;
use msg_core::{EnvelopeVersion, format_timestamp, parse_timestamp};
use msg_fuzz::{assert_json_eq, assert_map_eq, assert_name, assert_unique_id};

fuzz_target!(|data: &[u8]| {
    let Ok(wire) = WireNotification::decode(data) else {
        return;
    };
    let n = &wire.notification;
    for (field, value) in [
        ("message_id", &n.message_id),
        ("publisher_id", &n.publisher_id),
        ("event_type", &n.event_type),
        ("timestamp", &n.timestamp),
    ] {
        assert_name(field, value);
    }
    assert_unique_id(&wire.unique_id);
    for version in [EnvelopeVersion::V1, EnvelopeVersion::V2] {
        let bytes = wire
            .encode(version)
            .expect("a decoded notification encodes");
        let back = WireNotification::decode(&bytes).expect("an encoded notification decodes");
        assert_map_eq("the context", wire.context.as_map(), back.context.as_map());
        assert_eq!(wire.unique_id, back.unique_id);
        let (a, b) = (&wire.notification, &back.notification);
        assert_eq!(
            (
                &a.message_id,
                &a.publisher_id,
                &a.event_type,
                a.priority,
                &a.timestamp
            ),
            (
                &b.message_id,
                &b.publisher_id,
                &b.event_type,
                b.priority,
                &b.timestamp
            )
        );
        // the payload stays JSON text until asked for: what decoded must parse
        assert_json_eq(
            "the payload",
            &a.payload.to_value().expect("a decoded payload parses"),
            &b.payload.to_value().expect("an encoded payload parses"),
        );
    }

    if let Some(t) = parse_timestamp(&wire.notification.timestamp) {
        use chrono::{Datelike, Timelike};
        // years of four digits, as Python's (others are written as `%Y` doesn't read them)
        if (0..=9999).contains(&t.year()) {
            let micros = t.with_nanosecond(t.nanosecond() / 1000 * 1000);
            assert_eq!(parse_timestamp(&format_timestamp(t)), micros);
        }
    }
});

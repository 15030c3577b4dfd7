//! Notifications (`msg_core::codec::WireNotification`) and their timestamps.
//!
//! - Decoding any bytes returns, never panics.
//! - A notification that decodes encodes, bare and enveloped, and decodes back to itself.
//! - A timestamp that parses formats to text that parses back to it (to the microsecond).

#![no_main]

use libfuzzer_sys::fuzz_target;
use msg_core::codec::WireNotification;
use msg_core::{EnvelopeVersion, format_timestamp, parse_timestamp};
use msg_fuzz::{assert_json_eq, assert_map_eq};

fuzz_target!(|data: &[u8]| {
    let Ok(wire) = WireNotification::decode(data) else {
        return;
    };
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
        assert_json_eq("the payload", &a.payload, &b.payload);
    }

    if let Some(t) = parse_timestamp(&wire.notification.timestamp) {
        use chrono::{Datelike, Timelike};
        if (0..=9999).contains(&t.year()) {
            let micros = t.with_nanosecond(t.nanosecond() / 1000 * 1000);
            assert_eq!(parse_timestamp(&format_timestamp(t)), micros);
        }
    }
});

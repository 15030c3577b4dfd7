//! The `tracing` spans of the sending side, named and attributed as oslo.messaging's
//! OpenTelemetry tracing names them (`_tracing/client.py`): a PRODUCER span
//! `"{topic}.{method}"` per call or cast (`messaging.operation` `call` or `cast`), and, where
//! oslo traces nothing, one per notification sent, in the same shape: `"{topic}.{event_type}"`,
//! `messaging.operation` `notify`, `messaging.destination.name` the routing key
//! `"{topic}.{priority}"`, `messaging.message.id` the notification's `message_id`.
//!
//! Each span is parented on the current span, or else on the `traceparent` the caller's
//! context carries, and its own W3C trace context goes into the message's context
//! ([`msg_core::trace_context`]). With no subscriber interested the span is disabled and
//! costs a callsite check.

use std::future::Future;

use msg_core::{Context, Error, Notification, Result, Target, trace_context};
use tracing::field::Empty;
use tracing::{Instrument, Span};

/// The span of a call (`operation` "call") or cast ("cast").
pub(crate) fn rpc_send(
    system: &'static str,
    target: &Target,
    method: &str,
    operation: &'static str,
    context: &Context,
) -> Span {
    let topic = target.topic.as_deref().unwrap_or_default();
    let span = tracing::info_span!(
        "rpc.send",
        otel.name = %format_args!("{topic}.{method}"),
        otel.kind = "producer",
        otel.status_code = Empty,
        otel.status_description = Empty,
        messaging.system = system,
        messaging.operation = operation,
        messaging.destination.name = topic,
        rpc.method = method,
        rpc.service = Empty,
        openstack.request_id = Empty,
    );
    if span.is_disabled() {
        return span;
    }
    if let Some(namespace) = &target.namespace {
        span.record("rpc.service", namespace.as_str());
    }
    parent_and_request_id(&span, context);
    span
}

/// The span of a notification sent to `<topic>.<priority>`.
pub(crate) fn notify(
    system: &'static str,
    topic: &str,
    notification: &Notification,
    context: &Context,
) -> Span {
    let priority = notification.priority.routing_name();
    let event_type = notification.event_type.as_str();
    let span = tracing::info_span!(
        "notify.send",
        otel.name = %format_args!("{topic}.{event_type}"),
        otel.kind = "producer",
        otel.status_code = Empty,
        otel.status_description = Empty,
        messaging.system = system,
        messaging.operation = "notify",
        messaging.destination.name = %format_args!("{topic}.{priority}"),
        messaging.message.id = notification.message_id.as_str(),
        openstack.event_type = event_type,
        openstack.request_id = Empty,
    );
    if !span.is_disabled() {
        parent_and_request_id(&span, context);
    }
    span
}

fn parent_and_request_id(span: &Span, context: &Context) {
    if Span::current().is_none() {
        trace_context::set_remote_parent(span, context);
    }
    if let Some(id) = context.request_id() {
        span.record("openstack.request_id", id);
    }
}

/// `context` with the span's trace context in it, when the span is enabled and has one to
/// give (else `None`: send the context as it is).
pub(crate) fn traced_context(span: &Span, context: &Context) -> Option<Context> {
    if span.is_disabled() {
        return None;
    }
    let mut traced = context.clone();
    trace_context::inject(span, &mut traced);
    Some(traced)
}

/// Runs a send inside its span and marks the span failed when the send fails.
pub(crate) async fn traced<T>(span: Span, send: impl Future<Output = Result<T>>) -> Result<T> {
    if span.is_disabled() {
        return send.await;
    }
    let result = send.instrument(span.clone()).await;
    if let Err(e) = &result {
        record_error(&span, e);
    }
    result
}

fn record_error(span: &Span, error: &Error) {
    span.record("otel.status_code", "error");
    span.record("otel.status_description", tracing::field::display(error));
}

//! The `tracing` spans of the receiving side, named and attributed as oslo.messaging's
//! OpenTelemetry tracing names them (`_tracing/client.py`): a CONSUMER span
//! `"{method} receive"` around an RPC request's dispatch and reply, and, where oslo traces
//! nothing, the same shape around a notification's dispatch (`"{event_type} receive"`) and
//! a batch's (`"batch receive"`, linked to each message's trace with the `otel` feature).
//!
//! Each span is parented on the W3C trace context the message's context carries
//! ([`msg_core::trace_context`]). With no subscriber interested the span is disabled and
//! costs a callsite check.

use msg_core::{Context, Failure, IncomingRequest, trace_context};
use msg_dispatch::NotificationMessage;
use tracing::Span;
use tracing::field::Empty;

/// The span of an RPC request received on `topic`.
pub(crate) fn rpc_receive(system: &'static str, topic: &str, req: &IncomingRequest) -> Span {
    let method = req.request.method.as_str();
    let span = tracing::info_span!(
        "rpc.receive",
        otel.name = %format_args!("{method} receive"),
        otel.kind = "consumer",
        otel.status_code = Empty,
        otel.status_description = Empty,
        messaging.system = system,
        messaging.operation = "receive",
        messaging.destination.name = topic,
        messaging.message.id = Empty,
        rpc.method = method,
        rpc.service = Empty,
        openstack.request_id = Empty,
    );
    if span.is_disabled() {
        return span;
    }
    if let Some(id) = &req.msg_id {
        span.record("messaging.message.id", id.as_str());
    }
    if let Some(namespace) = &req.request.namespace {
        span.record("rpc.service", namespace.as_str());
    }
    parent_and_request_id(&span, &req.context);
    span
}

/// Marks an RPC span failed when its dispatch failed.
pub(crate) fn rpc_result<T>(span: &Span, result: &Result<T, Failure>) {
    if let Err(failure) = result
        && !span.is_disabled()
    {
        span.record("otel.status_code", "error");
        span.record(
            "otel.status_description",
            tracing::field::display(format_args!("{}: {}", failure.class, failure.message)),
        );
    }
}

/// The span of a notification's dispatch.
pub(crate) fn notification_receive(system: &'static str, m: &NotificationMessage) -> Span {
    let event_type = m.event_type.as_str();
    let span = tracing::info_span!(
        "notify.receive",
        otel.name = %format_args!("{event_type} receive"),
        otel.kind = "consumer",
        messaging.system = system,
        messaging.operation = "receive",
        messaging.message.id = Empty,
        openstack.event_type = event_type,
        openstack.request_id = Empty,
    );
    if span.is_disabled() {
        return span;
    }
    if let Some(id) = m.metadata.get("message_id").and_then(|v| v.as_str()) {
        span.record("messaging.message.id", id);
    }
    parent_and_request_id(&span, &m.context);
    span
}

/// The span of a batch's dispatch, linked to the trace of each of its messages.
pub(crate) fn batch_receive(system: &'static str, messages: &[NotificationMessage]) -> Span {
    let span = tracing::info_span!(
        "notify.receive_batch",
        otel.name = "batch receive",
        otel.kind = "consumer",
        messaging.system = system,
        messaging.operation = "receive",
        messaging.batch.message_count = messages.len(),
    );
    if !span.is_disabled() {
        for m in messages {
            trace_context::add_link(&span, &m.context);
        }
    }
    span
}

fn parent_and_request_id(span: &Span, context: &Context) {
    trace_context::set_remote_parent(span, context);
    if let Some(id) = context.request_id() {
        span.record("openstack.request_id", id);
    }
}

//! The W3C trace context a message carries in its [`Context`] (`traceparent`, `tracestate`,
//! which oslo.messaging sends as `_context_traceparent`), and the `tracing` spans it links.
//!
//! msg's clients and servers make `tracing` spans; with the `otel` feature these two
//! functions carry the OpenTelemetry identity of those spans across the wire, through W3C
//! trace context (OpenTelemetry's `TraceContextPropagator`), as oslo's tracing does. Without
//! the feature they leave the context as it is: a `traceparent` it carries passes through
//! unchanged (a handler that forwards its request's context keeps the caller's trace going).

use crate::Context;

/// The longest `tracestate` read from a message (W3C asks carriers to keep at least 512
/// bytes; a longer one from the wire is ignored rather than parsed).
pub const MAX_TRACESTATE: usize = 512;

/// Puts the W3C trace context of `span` into `context` (`traceparent`, and `tracestate` when
/// there is one), as oslo's tracing injects the sender's span into the message context.
///
/// A disabled span, a build without the `otel` feature, or a subscriber without an
/// OpenTelemetry layer leave `context` as it is.
///
/// ```
/// use msg_core::{Context, trace_context};
/// let mut ctx = Context::new().with_traceparent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
/// // no subscriber: the span is disabled and the caller's traceparent passes through
/// trace_context::inject(&tracing::Span::none(), &mut ctx);
/// assert_eq!(ctx.traceparent(), Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"));
/// ```
pub fn inject(span: &tracing::Span, context: &mut Context) {
    #[cfg(feature = "otel")]
    if !span.is_disabled() {
        otel::inject(span, context);
    }
    #[cfg(not(feature = "otel"))]
    let _ = (span, context);
}

/// Parents `span` on the W3C trace context `context` carries, when it carries a valid one
/// (else the span keeps its parent). Call it before the span is first entered.
///
/// A disabled span, a build without the `otel` feature, or a subscriber without an
/// OpenTelemetry layer leave the span as it is.
///
/// ```
/// use msg_core::{Context, trace_context};
/// let ctx = Context::new().with_traceparent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
/// trace_context::set_remote_parent(&tracing::Span::none(), &ctx);
/// ```
pub fn set_remote_parent(span: &tracing::Span, context: &Context) {
    #[cfg(feature = "otel")]
    if !span.is_disabled() && context.traceparent().is_some() {
        otel::set_remote_parent(span, context);
    }
    #[cfg(not(feature = "otel"))]
    let _ = (span, context);
}

/// Links `span` to the W3C trace context `context` carries, when it carries a valid one (a
/// batch's span, linked to the trace of each message in it). Call it before the span is
/// first entered; without the `otel` feature it does nothing.
///
/// ```
/// use msg_core::{Context, trace_context};
/// let ctx = Context::new().with_traceparent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
/// trace_context::add_link(&tracing::Span::none(), &ctx);
/// ```
pub fn add_link(span: &tracing::Span, context: &Context) {
    #[cfg(feature = "otel")]
    if !span.is_disabled() && context.traceparent().is_some() {
        otel::add_link(span, context);
    }
    #[cfg(not(feature = "otel"))]
    let _ = (span, context);
}

#[cfg(feature = "otel")]
mod otel {
    use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
    use opentelemetry::trace::TraceContextExt;
    use opentelemetry_sdk::propagation::TraceContextPropagator;
    use tracing_opentelemetry::OpenTelemetrySpanExt;

    use super::MAX_TRACESTATE;
    use crate::Context;
    use crate::context::{TRACEPARENT, TRACESTATE};

    struct Carrier<'a>(&'a mut Context);

    impl Injector for Carrier<'_> {
        fn set(&mut self, key: &str, value: String) {
            // an empty tracestate is not sent (as OpenTelemetry's Python propagator)
            if key == TRACESTATE && value.is_empty() {
                self.0.remove(key);
                return;
            }
            self.0.insert(key, value);
        }
    }

    struct Reader<'a>(&'a Context);

    impl Extractor for Reader<'_> {
        fn get(&self, key: &str) -> Option<&str> {
            let value = self.0.get_str(key)?;
            (key != TRACESTATE || value.len() <= MAX_TRACESTATE).then_some(value)
        }

        fn keys(&self) -> Vec<&str> {
            [TRACEPARENT, TRACESTATE]
                .into_iter()
                .filter(|k| self.0.get(k).is_some())
                .collect()
        }
    }

    pub(super) fn inject(span: &tracing::Span, context: &mut Context) {
        let cx = span.context();
        if !cx.span().span_context().is_valid() {
            return;
        }
        TraceContextPropagator::new().inject_context(&cx, &mut Carrier(context));
    }

    fn extract(context: &Context) -> Option<opentelemetry::Context> {
        let cx = TraceContextPropagator::new().extract(&Reader(context));
        cx.span().span_context().is_valid().then_some(cx)
    }

    pub(super) fn set_remote_parent(span: &tracing::Span, context: &Context) {
        let Some(parent) = extract(context) else {
            return;
        };
        if let Err(e) = span.set_parent(parent) {
            tracing::debug!(error = %e, "a span could not be parented on the message's trace context");
        }
    }

    pub(super) fn add_link(span: &tracing::Span, context: &Context) {
        if let Some(cx) = extract(context) {
            span.add_link(cx.span().span_context().clone());
        }
    }
}

#[cfg(all(test, feature = "otel"))]
mod tests {
    use super::*;
    use crate::TRACESTATE;
    use tracing_subscriber::layer::SubscriberExt;

    const TP: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

    fn with_otel<R>(f: impl FnOnce() -> R) -> R {
        use opentelemetry::trace::TracerProvider as _;
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        tracing::subscriber::with_default(subscriber, f)
    }

    #[test]
    fn a_child_of_the_carried_context_is_injected_with_its_trace_id() {
        let out = with_otel(|| {
            let span = tracing::info_span!("receive");
            set_remote_parent(&span, &Context::new().with_traceparent(TP));
            let mut out = Context::new().with_traceparent("00-garbage");
            inject(&span, &mut out);
            out
        });
        let tp = out.traceparent().unwrap();
        assert!(
            tp.starts_with("00-0af7651916cd43dd8448eb211c80319c-"),
            "{tp}"
        );
        assert!(!tp.contains("b7ad6b7169203331"), "a span of its own: {tp}");
    }

    #[test]
    fn hostile_trace_contexts_are_ignored() {
        for bad in [
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
            "zz-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c",
            "",
        ] {
            let out = with_otel(|| {
                let span = tracing::info_span!("receive");
                let carried = Context::new()
                    .with_traceparent(bad)
                    .with(TRACESTATE, "x".repeat(MAX_TRACESTATE + 1));
                set_remote_parent(&span, &carried);
                let mut out = Context::new();
                inject(&span, &mut out);
                out
            });
            let tp = out.traceparent().unwrap();
            assert!(
                !tp.contains("0af7651916cd43dd8448eb211c80319c"),
                "{bad} -> {tp}"
            );
            assert_eq!(out.tracestate(), None);
        }
    }
}

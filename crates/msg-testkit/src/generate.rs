//! [`conformance_suite!`](crate::conformance_suite): one `#[test]` per conformance case.
//!
//! The case names live here once, by family; `cases::all()` holds what each case needs and
//! runs, and a unit test checks that the two lists agree.

/// Generates one `#[test]` per conformance case, named after the case, in the module where
/// it is invoked: `cargo test -p my-driver --test it rpc_fanout` runs the cases whose name
/// holds `rpc_fanout`, and `cargo test` lists every case, skipped ones included.
///
/// `suite` names an `async fn() -> Option<Suite>` called once per case (so each case can get
/// names or a subject prefix of its own); `None` means the broker isn't configured (say so
/// with a `SKIPPED` line, as [`broker_url`](crate::broker_url) does). `cases` picks case
/// families (default: all): `contract` (the driver contract, `rpc_*`, `notify_*`,
/// `exchanges_*`), `e2e_rpc` and `e2e_notify` (the client and server stack over the driver).
///
/// A case the driver lacks a capability for still runs as a test: it prints a `SKIPPED`
/// line naming the capability and passes, unless that capability is required
/// ([`Suite::require`](crate::Suite::require)), which fails it. Each case runs on a
/// multi-thread runtime of its own; the cases use names of their own, so they run in
/// parallel against one broker.
///
/// The generated code refers to nothing but `msg_testkit`, so it works from any crate that
/// has msg-testkit as a dev-dependency:
///
/// ```no_run
/// # mod my_driver { pub fn factory() -> std::sync::Arc<dyn msg_core::DriverFactory> { unimplemented!() } }
/// async fn suite() -> Option<msg_testkit::Suite> {
///     let url = msg_testkit::broker_url("MYDRIVER_URL", "mydriver conformance")?;
///     Some(msg_testkit::Suite::new(my_driver::factory(), url))
/// }
///
/// mod conformance {
///     msg_testkit::conformance_suite!(suite: super::suite);
/// }
///
/// mod end_to_end_only {
///     msg_testkit::conformance_suite!(suite: super::suite, cases: [e2e_rpc, e2e_notify]);
/// }
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! conformance_suite {
    (suite: $suite:path $(,)?) => {
        $crate::conformance_suite!(suite: $suite, cases: [contract, e2e_rpc, e2e_notify]);
    };
    (suite: $suite:path, cases: [$($family:ident),+ $(,)?] $(,)?) => {
        $( $crate::__conformance_family!($family, __conformance_tests, $suite); )+
    };
}

/// Calls `$crate::$then!($arg; names...)` with the case names of a family.
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_family {
    (contract, $then:ident, $arg:path) => {
        $crate::$then! { $arg;
            rpc_call_gets_its_reply,
            rpc_concurrent_calls_are_correlated,
            rpc_topic_is_load_balanced,
            rpc_server_directed,
            rpc_fanout_reaches_every_server,
            rpc_remote_failure_travels,
            rpc_call_times_out,
            rpc_heartbeats_keep_a_long_call_alive,
            rpc_silent_server_fails_by_call_monitor,
            rpc_no_responders,
            rpc_undeliverable_at_least_once,
            rpc_cast_kept_until_a_server_listens,
            rpc_stop_ends_the_listener,
            notify_store_and_forward,
            notify_only_subscribed_priorities,
            notify_default_group_shares_the_load,
            notify_pools_each_get_a_copy,
            notify_requeue_redelivers,
            notify_stop_loses_nothing,
            notify_prefetch_bounds_unacked,
            notify_envelope_versions,
            exchanges_are_isolated,
        }
    };
    (e2e_rpc, $then:ident, $arg:path) => {
        $crate::$then! { $arg;
            e2e_rpc_topic_is_load_balanced,
            e2e_rpc_server_directed,
            e2e_rpc_fanout_reaches_every_server,
            e2e_rpc_namespaces_and_versions,
            e2e_rpc_remote_failures,
            e2e_rpc_typed_results,
            e2e_rpc_call_times_out,
            e2e_rpc_version_cap,
            e2e_rpc_heartbeats_keep_a_long_call_alive,
            e2e_rpc_killed_server_fails_by_call_monitor,
            e2e_rpc_shutdown_finishes_in_flight_calls,
            e2e_rpc_panic_is_a_remote_failure,
            e2e_rpc_start_after_stop,
            e2e_rpc_sequential_executor_keeps_order,
            e2e_rpc_pool_executor_runs_n_at_once,
            e2e_rpc_pool_executor_runs_blocking_handlers_in_parallel,
        }
    };
    (e2e_notify, $then:ident, $arg:path) => {
        $crate::$then! { $arg;
            e2e_notify_pools_each_get_a_copy,
            e2e_notify_default_queue_shares_the_load,
            e2e_notify_store_and_forward,
            e2e_notify_filters,
            e2e_notify_requeue_then_handled,
            e2e_notify_requeue_without_allow_requeue_acks,
            e2e_notify_error_or_panic_counts_as_requeue,
            e2e_notify_batches_of_size_under_load,
            e2e_notify_partial_batch_within_timeout,
            e2e_notify_batch_groups_by_priority,
            e2e_notify_batch_requeue_sends_the_group_back,
            e2e_notify_routing_driver_follows_its_file,
            e2e_notify_messaging_and_messagingv2_bodies,
            e2e_notify_unreachable_transport_times_out,
            e2e_notify_graceful_stop_loses_nothing,
            e2e_notify_batch_poison_goes_back_alone,
            e2e_notify_batch_handler_names_what_to_requeue,
        }
    };
    ($other:ident, $then:ident, $arg:path) => {
        ::core::compile_error!(::core::concat!(
            "unknown conformance case family `",
            ::core::stringify!($other),
            "`: expected contract, e2e_rpc or e2e_notify"
        ));
    };
}

/// One `#[test]` per name, running that case against `$suite`.
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_tests {
    ($suite:path; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                $crate::__run_case(::core::stringify!($case), $suite);
            }
        )*
    };
}

/// The names, as a `&[&str]` (the unit test below compares them with `cases::all()`).
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_names {
    ($ignored:path; $($case:ident),* $(,)?) => {
        &[$(::core::stringify!($case)),*] as &[&str]
    };
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_generated_tests_are_the_cases() {
        let names: Vec<&str> = [
            __conformance_family!(contract, __conformance_names, core::unreachable),
            __conformance_family!(e2e_rpc, __conformance_names, core::unreachable),
            __conformance_family!(e2e_notify, __conformance_names, core::unreachable),
        ]
        .concat();
        let cases: Vec<&str> = crate::cases::all().iter().map(|c| c.name).collect();
        assert_eq!(names, cases);
    }
}

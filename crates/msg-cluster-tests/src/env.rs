//! Where the suite finds the clusters: the variables `cargo xtask cluster up` prints.

use std::path::PathBuf;

/// The variable holding the clusters' state directory (start scripts, pid files, CLI
/// wrappers).
const DIR_VAR: &str = "MSG_CLUSTER_DIR";

/// The URL in `var` (`MSG_RABBIT_CLUSTER_URL` or `MSG_NATS_CLUSTER_URL`), or `None` after
/// a loud SKIPPED line naming `suite` when it is unset. With `MSG_REQUIRE_BROKERS=1` a
/// missing cluster panics instead (CI must run the suite).
pub fn cluster_url(var: &str, suite: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var("MSG_REQUIRE_BROKERS").as_deref() != Ok("1"),
                "MSG_REQUIRE_BROKERS=1 but {var} is not set: run `cargo xtask test`, or \
                 `eval \"$(cargo xtask cluster up)\"` first"
            );
            #[allow(clippy::print_stderr)]
            {
                eprintln!(
                    "SKIPPED: {suite}: no cluster ({var} is unset; `eval \"$(cargo xtask cluster up)\"` sets it)"
                );
            }
            None
        }
    }
}

/// The clusters' state directory from `MSG_CLUSTER_DIR`, or `None` after a loud SKIPPED
/// line (a panic with `MSG_REQUIRE_BROKERS=1`): the fault tests need the nodes' start
/// scripts and pid files.
pub fn cluster_dir(suite: &str) -> Option<PathBuf> {
    cluster_url(DIR_VAR, suite).map(PathBuf::from)
}

/// `url` with one more query option.
pub fn with_option(url: &str, option: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{option}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_appended() {
        assert_eq!(with_option("nats://a:1", "x=1"), "nats://a:1?x=1");
        assert_eq!(with_option("nats://a:1?x=1", "y=2"), "nats://a:1?x=1&y=2");
    }
}

//! msg's criterion micro-benchmarks live in `benches/`; this library is empty on purpose
//! (a package needs a target). Run them with `cargo bench -p msg-benches`.

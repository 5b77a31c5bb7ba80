//! End-to-end tests of the engine on real components built from `guest-examples/`.
//! One test binary (one link) with a module per area.

mod examples;
mod logs;
mod nondeterminism;
mod python_sdk;
mod sandbox;
mod support;
mod wasi;

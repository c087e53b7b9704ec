//! Tests of the Kubernetes API double against the behaviour the API conventions document.
// Test code: a failed unwrap is a failed test, which is what we want.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod crud;
mod faults;
mod kubectl;
mod patch;
mod support;
mod validation;
mod watch;

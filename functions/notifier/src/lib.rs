//! The orders notifier: message handling, kept apart from `main` so it can be tested.

pub mod handler;

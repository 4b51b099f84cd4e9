//! Helpers for end-to-end tests: start the real binaries and wait for them.

//! End-to-end tests that cross crates live in `tests/tests/`; this library is empty.

//! The `koor-e2e` package only holds the end-to-end tests in `tests/`.

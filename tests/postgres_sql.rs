//! SQL-level tests: written next.

//! Queue behaviour tests.

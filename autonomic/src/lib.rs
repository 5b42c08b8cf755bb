//! The autonomic manager.

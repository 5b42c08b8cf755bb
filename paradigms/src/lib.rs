//! Paradigms over the Space API.

//! Durable journal (work in progress).

//! NATS bridge (work in progress).

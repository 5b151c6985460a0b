//! Circuit breaker.

//! Trading domain.

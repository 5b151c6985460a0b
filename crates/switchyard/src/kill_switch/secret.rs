//! [`OperatorSecret`]: the secret a kill-switch reset must present.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{Ordering, compiler_fence};

/// Why an [`OperatorSecret`] could not be loaded. Never contains the secret.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The environment variable is not set.
    #[error("operator secret: environment variable `{var}` is not set")]
    MissingEnv {
        /// The variable's name.
        var: String,
    },
    /// The environment variable is not valid Unicode.
    #[error("operator secret: environment variable `{var}` is not valid unicode")]
    NotUnicode {
        /// The variable's name.
        var: String,
    },
    /// The file could not be read.
    #[error("operator secret: cannot read `{}`", path.display())]
    Read {
        /// The file's path.
        path: PathBuf,
        /// The I/O error (it never carries file content).
        #[source]
        source: std::io::Error,
    },
    /// The secret is empty (after removing trailing line breaks).
    #[error("operator secret from {origin} is empty")]
    Empty {
        /// Where it came from, e.g. "environment variable `X`" or "file `/p`".
        origin: String,
    },
}

/// An operator secret: compared in constant time, printed as `[redacted]`, zeroed when
/// dropped (best effort: copies made by the OS, e.g. the process environment, are out
/// of reach).
pub struct OperatorSecret {
    bytes: Vec<u8>,
}

impl OperatorSecret {
    /// A secret from a string; trailing `\n`/`\r` are removed; empty is refused.
    pub fn new(secret: impl Into<String>) -> Result<Self, SecretError> {
        Self::from_bytes(secret.into().into_bytes(), || "a string".to_owned())
    }

    /// Read the secret from the environment variable `var`.
    pub fn from_env(var: &str) -> Result<Self, SecretError> {
        match std::env::var(var) {
            Ok(value) => Self::from_bytes(value.into_bytes(), || {
                format!("environment variable `{var}`")
            }),
            Err(std::env::VarError::NotPresent) => Err(SecretError::MissingEnv {
                var: var.to_owned(),
            }),
            Err(std::env::VarError::NotUnicode(_)) => Err(SecretError::NotUnicode {
                var: var.to_owned(),
            }),
        }
    }

    /// Read the secret from the file at `path` (its whole content, trailing line breaks
    /// removed).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, SecretError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| SecretError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_bytes(bytes, || format!("file `{}`", path.display()))
    }

    fn from_bytes(
        mut bytes: Vec<u8>,
        origin: impl FnOnce() -> String,
    ) -> Result<Self, SecretError> {
        let mut len = bytes.len();
        while len > 0 && matches!(bytes[len - 1], b'\n' | b'\r') {
            len -= 1;
        }
        zero(&mut bytes[len..]);
        bytes.truncate(len);
        // The secret now owns `bytes`: whatever happens next, it is zeroed on drop.
        let secret = OperatorSecret { bytes };
        if secret.bytes.is_empty() {
            return Err(SecretError::Empty { origin: origin() });
        }
        Ok(secret)
    }

    /// Whether `presented` is the secret, in time that depends only on the lengths.
    pub fn matches(&self, presented: &str) -> bool {
        constant_time_eq(&self.bytes, presented.as_bytes())
    }
}

impl fmt::Debug for OperatorSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OperatorSecret([redacted])")
    }
}

impl fmt::Display for OperatorSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl Drop for OperatorSecret {
    fn drop(&mut self) {
        zero(&mut self.bytes);
    }
}

/// Overwrite with zeros in a way the optimiser is discouraged from removing.
fn zero(bytes: &mut [u8]) {
    for b in bytes.iter_mut() {
        *b = 0;
    }
    std::hint::black_box(&mut *bytes);
    compiler_fence(Ordering::SeqCst);
}

/// Compare `expected` and `presented` without an early exit: the loop runs over every
/// byte of `expected` whatever `presented` holds, so the time depends only on the two
/// lengths, never on where the first difference is.
pub fn constant_time_eq(expected: &[u8], presented: &[u8]) -> bool {
    let len_diff = expected.len() ^ presented.len();
    // Fold the length difference into one byte without a data-dependent branch.
    let mut diff: u8 = len_diff.to_le_bytes().iter().fold(0u8, |acc, b| acc | b);
    for (i, &e) in expected.iter().enumerate() {
        // Past the end of `presented`, compare with 0; the length difference is already
        // in `diff`, so this can only add differences.
        let p = presented.get(i).copied().unwrap_or(0);
        diff |= e ^ p;
    }
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_eq_is_equality() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(!constant_time_eq(b"abc", b"abc\0"));
        assert!(!constant_time_eq(b"ab", b"abc"));
        assert!(constant_time_eq(b"", b""));
        assert!(!constant_time_eq(b"", b"x"));
        // A length difference that is a multiple of 256 still differs.
        let long = vec![0u8; 256];
        assert!(!constant_time_eq(&long, b""));
    }

    #[test]
    fn trailing_line_breaks_are_trimmed_and_empty_refused() {
        let s = OperatorSecret::new("hunter2\r\n").unwrap();
        assert!(s.matches("hunter2"));
        assert!(!s.matches("hunter2\n"));
        assert!(matches!(
            OperatorSecret::new("\n\n"),
            Err(SecretError::Empty { .. })
        ));
        // Only trailing line breaks go; spaces are part of the secret.
        assert!(OperatorSecret::new(" x ").unwrap().matches(" x "));
    }
}

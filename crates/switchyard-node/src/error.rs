//! The node's error.

/// Why a node could not be built or run: the message names the configuration entry and
/// key, or the component, with the causes after it (`{:#}` shows the whole chain).
#[derive(Debug, thiserror::Error)]
#[error("{0:#}")]
pub struct NodeError(#[from] anyhow::Error);

impl NodeError {
    /// The error and its causes.
    pub fn chain(&self) -> impl Iterator<Item = &(dyn std::error::Error + 'static)> {
        self.0.chain()
    }
}

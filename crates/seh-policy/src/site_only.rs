//! [`SiteOnly<T>`]: facts that stay at the site (audit log, operator console) and can never be
//! serialized into researcher-facing output.

use std::fmt;

/// A value that only the site may see: for example the number of rows removed by the consent
/// filter. It deliberately implements neither `serde::Serialize` nor any conversion into
/// [`crate::Releasable`], so it cannot be placed into a released result or a wire message by
/// accident; a test in this crate fails to compile if `Serialize` is ever added.
///
/// The node writes it to its own audit log through [`SiteOnly::audit_value`].
#[derive(Clone, PartialEq, Eq)]
pub struct SiteOnly<T>(T);

impl<T> SiteOnly<T> {
    /// Wraps `value` (crate-internal: site-only facts are produced by this crate's filters).
    pub(crate) fn new(value: T) -> Self {
        Self(value)
    }

    /// The value, for the site's own audit log or console. Callers must not forward it to a
    /// researcher, the coordinator or another site.
    pub fn audit_value(&self) -> &T {
        &self.0
    }
}

impl<T: fmt::Debug> fmt::Debug for SiteOnly<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SiteOnly").field(&self.0).finish()
    }
}

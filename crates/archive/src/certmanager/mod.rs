//! cert-manager knowledge: which Secrets an object references, what a backup selects, how objects are
//! sanitized, which phase each belongs to, and whether a restore will make cert-manager reissue.

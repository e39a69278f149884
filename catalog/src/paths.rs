//! Local paths a user may read or write: only those under the allowed roots.
//!
//! A `CREATE EXTERNAL TABLE` or `COPY ... TO` naming a local file is checked here, so
//! that a database user cannot read `/etc/shadow` through a CSV table. Relative paths
//! are taken relative to the first root, so `LOCATION 'sales.csv'` means
//! `<data-dir>/files/sales.csv` by default.

use std::path::{Component, Path, PathBuf};

use crate::error::{Error, Result};

#[derive(Debug, Clone)]
pub struct AllowedRoots {
    roots: Vec<PathBuf>,
}

impl AllowedRoots {
    /// Creates the roots, making each directory if it does not exist yet.
    pub fn new(roots: Vec<PathBuf>) -> Result<Self> {
        let mut canonical = Vec::with_capacity(roots.len());
        for root in roots {
            std::fs::create_dir_all(&root).map_err(|source| Error::Io {
                path: root.display().to_string(),
                source,
            })?;
            let c = root.canonicalize().map_err(|source| Error::Io {
                path: root.display().to_string(),
                source,
            })?;
            canonical.push(c);
        }
        Ok(Self { roots: canonical })
    }

    pub fn roots(&self) -> &[PathBuf] {
        &self.roots
    }

    /// True when `location` names a local file (no URL scheme, or `file://`).
    pub fn is_local(location: &str) -> bool {
        match location.split_once("://") {
            None => true,
            Some((scheme, _)) => scheme.eq_ignore_ascii_case("file"),
        }
    }

    /// Resolves a local location against the roots and checks it lies under one.
    /// Returns the absolute location to use instead (globs and a trailing `/` kept).
    pub fn resolve(&self, location: &str) -> Result<String> {
        let raw = location.strip_prefix("file://").unwrap_or(location);
        let path = Path::new(raw);
        let absolute = if path.is_absolute() {
            path.to_path_buf()
        } else {
            match self.roots.first() {
                Some(root) => root.join(path),
                None => return Err(self.not_allowed(location)),
            }
        };
        let normalized = normalize(&absolute).ok_or_else(|| self.not_allowed(location))?;
        let resolved = resolve_existing_prefix(&normalized);
        if !self.roots.iter().any(|root| resolved.starts_with(root)) {
            return Err(self.not_allowed(location));
        }
        let mut out = resolved.display().to_string();
        if raw.ends_with('/') && !out.ends_with('/') {
            out.push('/');
        }
        Ok(out)
    }

    fn not_allowed(&self, location: &str) -> Error {
        Error::PathNotAllowed {
            path: location.to_string(),
            roots: self
                .roots
                .iter()
                .map(|r| r.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        }
    }
}

/// Removes `.` and `..` lexically; `None` if `..` climbs above the root.
fn normalize(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::CurDir => {}
            other => out.push(other.as_os_str()),
        }
    }
    Some(out)
}

/// Canonicalizes the longest existing prefix (following symlinks, so a link out of a
/// root is caught) and appends the rest, which may hold globs or not exist yet.
fn resolve_existing_prefix(path: &Path) -> PathBuf {
    let mut existing = path.to_path_buf();
    let mut rest = Vec::new();
    loop {
        let has_glob = existing
            .file_name()
            .map(|n| n.to_string_lossy().contains(['*', '?', '[']))
            .unwrap_or(false);
        if !has_glob {
            if let Ok(c) = existing.canonicalize() {
                let mut out = c;
                for part in rest.iter().rev() {
                    out.push(part);
                }
                return out;
            }
        }
        match (
            existing.file_name().map(|n| n.to_os_string()),
            existing.parent(),
        ) {
            (Some(name), Some(parent)) => {
                rest.push(name);
                existing = parent.to_path_buf();
            }
            _ => return path.to_path_buf(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_inside_and_outside_roots() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("files");
        let roots = AllowedRoots::new(vec![root.clone()]).unwrap();
        std::fs::write(root.join("a.csv"), "x\n1\n").unwrap();
        let ok = roots.resolve("a.csv").unwrap();
        assert!(ok.ends_with("files/a.csv"), "{ok}");
        assert!(roots.resolve(&format!("{}/*.csv", root.display())).is_ok());
        assert!(roots.resolve("sub/dir/").unwrap().ends_with('/'));
        assert!(matches!(
            roots.resolve("/etc/passwd"),
            Err(Error::PathNotAllowed { .. })
        ));
        assert!(matches!(
            roots.resolve("../outside.csv"),
            Err(Error::PathNotAllowed { .. })
        ));
        assert!(matches!(
            roots.resolve(&format!("file://{}/../x.csv", root.display())),
            Err(Error::PathNotAllowed { .. })
        ));
    }

    #[test]
    fn symlink_out_of_root_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("files");
        let roots = AllowedRoots::new(vec![root.clone()]).unwrap();
        std::os::unix::fs::symlink("/etc", root.join("etc")).unwrap();
        assert!(roots.resolve("etc/passwd").is_err());
    }

    #[test]
    fn schemes() {
        assert!(AllowedRoots::is_local("/a/b.csv"));
        assert!(AllowedRoots::is_local("file:///a/b.csv"));
        assert!(!AllowedRoots::is_local("s3://bucket/b.csv"));
    }
}

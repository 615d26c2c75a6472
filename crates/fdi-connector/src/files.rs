//! Confinement of file-backed datasources (SQLite today, local files later).
//!
//! Every path a datasource names must resolve — made absolute against the root, symlinks
//! followed — to a place under the files root (`--files-root`). `..` is refused outright. Paths
//! the server itself owns (its data dir, the metadata store file, the key file) are never
//! reachable, whatever the root: not by name, not through a symlink, not through a hard link.

use std::io;
use std::path::{Component, Path, PathBuf};

use crate::ConnectorError;

/// Where file-backed datasources may point.
#[derive(Debug, Clone)]
pub struct FilesRoot {
    /// Canonical root directory.
    root: PathBuf,
    /// Canonical directories that are off limits (outside the root's own subtree).
    protected_dirs: Vec<PathBuf>,
    /// Files that are off limits (with their SQLite side files `-wal`, `-shm`, `-journal`).
    protected_files: Vec<PathBuf>,
}

impl FilesRoot {
    /// The root directory, created when missing.
    pub fn new(root: impl AsRef<Path>) -> io::Result<Self> {
        let root = root.as_ref();
        std::fs::create_dir_all(root)?;
        Ok(Self {
            root: root.canonicalize()?,
            protected_dirs: Vec::new(),
            protected_files: Vec::new(),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Make a directory unreachable (the server's data dir). When the root itself lies inside it
    /// (the default `<data-dir>/files`), only the root's subtree stays reachable.
    pub fn protect_dir(mut self, dir: impl AsRef<Path>) -> io::Result<Self> {
        let dir = dir.as_ref().canonicalize()?;
        if self.root == dir {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "the files root {} is a protected directory (the data dir): choose a directory inside or beside it",
                    dir.display()
                ),
            ));
        }
        self.protected_dirs.push(dir);
        Ok(self)
    }

    /// Make a file unreachable (the metadata store, the key file); it need not exist yet.
    pub fn protect_file(mut self, file: impl AsRef<Path>) -> Self {
        let file = file.as_ref();
        let canonical = match (file.parent(), file.file_name()) {
            (Some(parent), Some(name)) if !parent.as_os_str().is_empty() => parent
                .canonicalize()
                .map(|p| p.join(name))
                .unwrap_or_else(|_| file.to_path_buf()),
            _ => file.to_path_buf(),
        };
        self.protected_files.push(canonical);
        self
    }

    /// Resolve the path a datasource names. `field` names it in errors (`content.url`).
    pub fn resolve(&self, field: &str, raw: &str) -> Result<PathBuf, ConnectorError> {
        let given = Path::new(raw);
        if given.components().any(|c| c == Component::ParentDir) {
            return Err(ConnectorError::user(format!(
                "{field}: '..' is not allowed in a path"
            )));
        }
        let joined = if given.is_absolute() {
            given.to_path_buf()
        } else {
            self.root.join(given)
        };
        let resolved = canonical_or_nearest(&joined)
            .map_err(|e| ConnectorError::user(format!("{field}: cannot resolve {raw:?}: {e}")))?;
        if !resolved.starts_with(&self.root) {
            return Err(ConnectorError::user(format!(
                "{field}: {raw:?} is outside the files root {} (--files-root); put the file under it and use a path relative to it",
                self.root.display()
            )));
        }
        if self.is_protected(&resolved) {
            return Err(ConnectorError::user(format!(
                "{field}: {raw:?} is a file of the fdi server itself and cannot be used as a datasource"
            )));
        }
        Ok(resolved)
    }

    fn is_protected(&self, p: &Path) -> bool {
        let in_dir = self.protected_dirs.iter().any(|dir| {
            let root_inside = self.root.starts_with(dir) && self.root != *dir;
            p.starts_with(dir) && !(root_inside && p.starts_with(&self.root))
        });
        in_dir || self.protected_files.iter().any(|f| same_file(p, f))
    }
}

/// `p` is `protected`, one of its SQLite side files, or a hard link to either.
fn same_file(p: &Path, protected: &Path) -> bool {
    let side_files = ["", "-wal", "-shm", "-journal"].map(|suffix| {
        let mut s = protected.as_os_str().to_owned();
        s.push(suffix);
        PathBuf::from(s)
    });
    if side_files.iter().any(|f| f == p) {
        return true;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if let Ok(m) = std::fs::metadata(p) {
            return side_files.iter().any(|f| {
                std::fs::metadata(f).is_ok_and(|pm| pm.dev() == m.dev() && pm.ino() == m.ino())
            });
        }
    }
    false
}

/// The canonical form of `p`; for a path that does not exist yet, the canonical form of its
/// nearest existing ancestor joined with the rest. A dangling symlink is an error.
fn canonical_or_nearest(p: &Path) -> io::Result<PathBuf> {
    match p.canonicalize() {
        Ok(c) => return Ok(c),
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        Err(_) => {}
    }
    if p.symlink_metadata().is_ok() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            "a symbolic link whose target does not exist",
        ));
    }
    let (Some(parent), Some(name)) = (p.parent(), p.file_name()) else {
        return Err(io::Error::new(io::ErrorKind::NotFound, "no such path"));
    };
    Ok(canonical_or_nearest(parent)?.join(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("fdi-files-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d.canonicalize().unwrap()
    }

    #[test]
    fn confines_paths_to_the_root() {
        let data = tmp("confine");
        std::fs::write(data.join("fdi.db"), b"store").unwrap();
        std::fs::write(data.join("secret.key"), b"key").unwrap();
        let root = FilesRoot::new(data.join("files"))
            .unwrap()
            .protect_dir(&data)
            .unwrap()
            .protect_file(data.join("fdi.db"));
        let files = data.join("files");
        std::fs::write(files.join("a.sqlite"), b"").unwrap();

        assert_eq!(
            root.resolve("content.url", "a.sqlite").unwrap(),
            files.join("a.sqlite")
        );
        assert_eq!(
            root.resolve("content.url", files.join("new.sqlite").to_str().unwrap())
                .unwrap(),
            files.join("new.sqlite")
        );
        assert_eq!(
            root.resolve("content.url", "sub/not-yet.sqlite").unwrap(),
            files.join("sub/not-yet.sqlite")
        );
        for bad in [
            data.join("fdi.db").to_str().unwrap(),
            "/etc/passwd",
            "../fdi.db",
            "sub/../../fdi.db",
        ] {
            let e = root.resolve("content.url", bad).unwrap_err();
            assert!(e.message.starts_with("content.url: "), "{bad}: {e}");
        }
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(data.join("fdi.db"), files.join("link.sqlite")).unwrap();
            assert!(root.resolve("content.url", "link.sqlite").is_err());
            std::os::unix::fs::symlink(&data, files.join("up")).unwrap();
            assert!(root.resolve("content.url", "up/secret.key").is_err());
            std::os::unix::fs::symlink(data.join("gone"), files.join("dangling")).unwrap();
            assert!(root.resolve("content.url", "dangling").is_err());
            std::fs::hard_link(data.join("fdi.db"), files.join("hard.sqlite")).unwrap();
            assert!(root.resolve("content.url", "hard.sqlite").is_err());
        }
        let _ = std::fs::remove_dir_all(&data);
    }

    #[test]
    fn a_wide_root_still_excludes_the_data_dir_and_store() {
        let base = tmp("wide");
        let data = base.join("data");
        std::fs::create_dir_all(&data).unwrap();
        let store = base.join("elsewhere.db");
        std::fs::write(&store, b"").unwrap();
        let root = FilesRoot::new(&base)
            .unwrap()
            .protect_dir(&data)
            .unwrap()
            .protect_file(&store);
        assert!(root.resolve("content.url", "data/x.sqlite").is_err());
        assert!(root.resolve("content.url", "elsewhere.db").is_err());
        assert!(root.resolve("content.url", "elsewhere.db-wal").is_err());
        assert!(root.resolve("content.url", "ok.sqlite").is_ok());
        assert!(FilesRoot::new(&data).unwrap().protect_dir(&data).is_err());
        let _ = std::fs::remove_dir_all(&base);
    }
}

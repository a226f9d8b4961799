//! Writing an archive's files into a folder (`unpack --dir`) without ever following a link or opening anything but
//! a file this writer created.
//!
//! The folder may hold what someone else put there: a symbolic link at a Secret's path would send the Secret (its
//! private key included) wherever the link points, a linked subfolder would send whole phases there, a FIFO would
//! block the write forever. So the folder is walked first without following links and refused if it holds
//! anything but regular files and folders; then every folder is opened relative to its parent with `O_NOFOLLOW`,
//! every file is written to a new temporary file in its folder (`O_CREAT | O_EXCL | O_NOFOLLOW`, mode from the
//! start) and renamed over its name only when all of them are written ([`FolderWriter::commit`]): a rename
//! replaces a link or a hard link instead of writing through it, and a failure part way leaves the folder as it
//! was (the temporary files and the folders this writer made are removed again).

use rustix::fd::{AsFd, OwnedFd};
use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};

/// Why a folder could not be written.
#[derive(Debug, thiserror::Error)]
pub enum FolderError {
    /// The folder has entries, and overwriting was not asked for.
    #[error("{0}: folder is not empty")]
    NotEmpty(PathBuf),
    /// Something in the folder that is neither a regular file nor a folder (or a file where a folder belongs).
    #[error("{}: {what}; refusing to write into a folder that holds links or special files", .path.display())]
    Unsafe {
        /// Where.
        path: PathBuf,
        /// What it is.
        what: &'static str,
    },
    /// A path that is not a plain relative path of names (cmarchive's writers never produce one).
    #[error("{0:?} is not a relative path of plain names")]
    BadPath(String),
    /// The system refused an operation.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, naming the path.
        context: String,
        /// The OS error.
        source: io::Error,
    },
}

type Result<T, E = FolderError> = std::result::Result<T, E>;

/// Writes files into one folder; see the module documentation. Nothing shows under the final names before
/// [`FolderWriter::commit`]; dropped without it, everything it made is removed.
pub struct FolderWriter {
    root: PathBuf,
    /// Open folders by their path relative to the root (`""` is the root).
    folders: HashMap<String, OwnedFd>,
    /// Folders this writer created, parents first (relative paths; `""` when it created the root).
    created: Vec<String>,
    /// Written temporary files: (folder, temporary name, final name).
    staged: Vec<(String, String, String)>,
    committed: bool,
}

/// The kind of a directory entry, named for an error message.
fn what_is(file_type: FileType) -> &'static str {
    match file_type {
        FileType::Symlink => "is a symbolic link",
        FileType::Fifo => "is a FIFO",
        FileType::Socket => "is a socket",
        FileType::CharacterDevice | FileType::BlockDevice => "is a device",
        FileType::Directory => "is a folder where a file belongs",
        _ => "is not a regular file",
    }
}

fn os_error(context: impl FnOnce() -> String) -> impl FnOnce(rustix::io::Errno) -> FolderError {
    move |errno| FolderError::Io {
        context: context(),
        source: errno.into(),
    }
}

impl FolderWriter {
    /// Opens `dir` (following links in the path given: it is the user's choice), creating it with mode 0700 when
    /// missing. A folder with entries is refused unless `overwrite`; with it, the whole tree is walked and
    /// refused if it holds anything but regular files and folders.
    pub fn open(dir: &Path, overwrite: bool) -> Result<FolderWriter> {
        let mut created = Vec::new();
        match rustix::fs::mkdir(dir, Mode::from_raw_mode(0o700)) {
            Ok(()) => created.push(String::new()),
            Err(rustix::io::Errno::EXIST) => {}
            Err(rustix::io::Errno::NOENT) => {
                // Missing parents are made like `mkdir -p` (they are part of the path the user chose).
                let mut builder = std::fs::DirBuilder::new();
                std::os::unix::fs::DirBuilderExt::mode(builder.recursive(true), 0o700);
                builder.create(dir).map_err(|source| FolderError::Io {
                    context: format!("creating {}", dir.display()),
                    source,
                })?;
                created.push(String::new());
            }
            Err(errno) => return Err(os_error(|| format!("creating {}", dir.display()))(errno)),
        }
        let root = rustix::fs::open(dir, OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
            .map_err(os_error(|| format!("opening {}", dir.display())))?;
        let writer = FolderWriter {
            root: dir.to_owned(),
            folders: HashMap::from([(String::new(), root)]),
            created,
            staged: Vec::new(),
            committed: false,
        };
        if writer.created.is_empty() {
            let root = &writer.folders[""];
            if !overwrite && has_entries(root).map_err(os_error(|| format!("reading {}", dir.display())))? {
                return Err(FolderError::NotEmpty(dir.to_owned()));
            }
            let root = rustix::io::dup(root).map_err(os_error(|| format!("reading {}", dir.display())))?;
            writer.refuse_links_and_special_files(root, dir.to_owned())?;
        }
        Ok(writer)
    }

    /// Walks a folder without following links; anything but regular files and folders is an error.
    fn refuse_links_and_special_files(&self, start: OwnedFd, start_path: PathBuf) -> Result<()> {
        let mut pending = vec![(start, start_path)];
        while let Some((folder, path)) = pending.pop() {
            let reading = || format!("reading {}", path.display());
            let mut entries = rustix::fs::Dir::read_from(&folder).map_err(os_error(reading))?;
            while let Some(entry) = entries.read() {
                let entry = entry.map_err(os_error(reading))?;
                let name = entry.file_name();
                if name.to_bytes() == b"." || name.to_bytes() == b".." {
                    continue;
                }
                let child = path.join(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(
                    name.to_bytes(),
                ));
                let stat = rustix::fs::statat(&folder, name, AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(os_error(|| format!("reading {}", child.display())))?;
                match FileType::from_raw_mode(stat.st_mode) {
                    FileType::RegularFile => {}
                    FileType::Directory => {
                        let opened = rustix::fs::openat(
                            &folder,
                            name,
                            OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::RDONLY | OFlags::CLOEXEC,
                            Mode::empty(),
                        )
                        .map_err(os_error(|| format!("opening {}", child.display())))?;
                        pending.push((opened, child));
                    }
                    other => {
                        return Err(FolderError::Unsafe {
                            path: child,
                            what: what_is(other),
                        });
                    }
                }
            }
        }
        Ok(())
    }

    /// Writes `data` to `relative` (names separated by `/`) with `mode`, into a temporary file beside it; the
    /// folders on the way are opened without following links, or made with mode 0700.
    pub fn write(&mut self, relative: &str, data: &[u8], mode: u32) -> Result<()> {
        let (folder_path, name) = relative.rsplit_once('/').unwrap_or(("", relative));
        for component in relative.split('/') {
            if component.is_empty() || component == "." || component == ".." || component.contains('\0') {
                return Err(FolderError::BadPath(relative.to_owned()));
            }
        }
        self.open_folder(folder_path)?;
        let folder = &self.folders[folder_path];
        let shown = || self.root.join(relative).display().to_string();
        match rustix::fs::statat(folder, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(stat) if FileType::from_raw_mode(stat.st_mode) == FileType::RegularFile => {}
            Ok(stat) => {
                return Err(FolderError::Unsafe {
                    path: self.root.join(relative),
                    what: what_is(FileType::from_raw_mode(stat.st_mode)),
                });
            }
            Err(rustix::io::Errno::NOENT) => {}
            Err(errno) => return Err(os_error(|| format!("reading {}", shown()))(errno)),
        }
        let temporary = format!(".{name}.cmarchive-{}-{}", std::process::id(), self.staged.len());
        let file = rustix::fs::openat(
            folder,
            temporary.as_str(),
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(mode),
        )
        .map_err(os_error(|| format!("creating a temporary file for {}", shown())))?;
        self.staged.push((folder_path.to_owned(), temporary, name.to_owned()));
        let mut file = std::fs::File::from(file);
        io::Write::write_all(&mut file, data).map_err(|source| FolderError::Io {
            context: format!("writing {}", shown()),
            source,
        })
    }

    /// Opens (and makes, when missing) the folder at `relative` and each one on its way.
    fn open_folder(&mut self, relative: &str) -> Result<()> {
        if self.folders.contains_key(relative) {
            return Ok(());
        }
        let (parent_path, name) = relative.rsplit_once('/').unwrap_or(("", relative));
        self.open_folder(parent_path)?;
        let parent = &self.folders[parent_path];
        let shown = || self.root.join(relative).display().to_string();
        match rustix::fs::mkdirat(parent, name, Mode::from_raw_mode(0o700)) {
            Ok(()) => self.created.push(relative.to_owned()),
            Err(rustix::io::Errno::EXIST) => {}
            Err(errno) => return Err(os_error(|| format!("creating {}", shown()))(errno)),
        }
        let opened = match rustix::fs::openat(
            parent,
            name,
            OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(opened) => opened,
            Err(rustix::io::Errno::LOOP | rustix::io::Errno::NOTDIR) => {
                let what = match rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW) {
                    Ok(stat) if FileType::from_raw_mode(stat.st_mode) == FileType::RegularFile => {
                        "is a file where a folder belongs"
                    }
                    Ok(stat) => what_is(FileType::from_raw_mode(stat.st_mode)),
                    Err(_) => "is not a folder",
                };
                return Err(FolderError::Unsafe {
                    path: self.root.join(relative),
                    what,
                });
            }
            Err(errno) => return Err(os_error(|| format!("opening {}", shown()))(errno)),
        };
        self.folders.insert(relative.to_owned(), opened);
        Ok(())
    }

    /// Renames every written file over its name; returns how many there were.
    pub fn commit(mut self) -> Result<usize> {
        for (folder_path, temporary, name) in &self.staged {
            let folder = &self.folders[folder_path.as_str()];
            rustix::fs::renameat(folder, temporary.as_str(), folder, name.as_str()).map_err(os_error(|| {
                let relative = if folder_path.is_empty() {
                    name.clone()
                } else {
                    format!("{folder_path}/{name}")
                };
                format!("renaming into {}", self.root.join(relative).display())
            }))?;
        }
        self.committed = true;
        Ok(self.staged.len())
    }
}

impl Drop for FolderWriter {
    /// Without a commit, takes away what this writer made: its temporary files, then its folders, deepest first.
    fn drop(&mut self) {
        if self.committed {
            return;
        }
        for (folder_path, temporary, _) in self.staged.drain(..) {
            if let Some(folder) = self.folders.get(&folder_path) {
                let _ = rustix::fs::unlinkat(folder, temporary.as_str(), AtFlags::empty());
            }
        }
        for relative in self.created.iter().rev() {
            let _ = match relative.rsplit_once('/') {
                _ if relative.is_empty() => rustix::fs::rmdir(&self.root),
                Some((parent, name)) => match self.folders.get(parent) {
                    Some(parent) => rustix::fs::unlinkat(parent, name, AtFlags::REMOVEDIR),
                    None => Ok(()),
                },
                None => rustix::fs::unlinkat(&self.folders[""], relative.as_str(), AtFlags::REMOVEDIR),
            };
        }
    }
}

/// Whether a folder has any entry besides `.` and `..`.
fn has_entries(folder: impl AsFd) -> rustix::io::Result<bool> {
    let mut entries = rustix::fs::Dir::read_from(folder)?;
    while let Some(entry) = entries.read() {
        let name = entry?.file_name().to_bytes().to_vec();
        if name != b"." && name != b".." {
            return Ok(true);
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::{PermissionsExt, symlink};

    const SECRET: &str = "03-secrets/core/secret/prod/web-tls.json";

    /// A folder to write into and one beside it that nothing may touch.
    fn places() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let base = tempfile::tempdir().unwrap();
        let target = base.path().join("target");
        let outside = base.path().join("outside");
        fs::create_dir_all(target.join("03-secrets/core/secret/prod")).unwrap();
        fs::create_dir_all(&outside).unwrap();
        fs::write(outside.join("victim"), "untouched").unwrap();
        fs::set_permissions(outside.join("victim"), fs::Permissions::from_mode(0o644)).unwrap();
        (base, target, outside)
    }

    fn unpack(target: &Path) -> Result<usize> {
        let mut writer = FolderWriter::open(target, true)?;
        writer.write(SECRET, b"{\"kind\":\"Secret\"}", 0o600)?;
        writer.write("manifest.json", b"{}", 0o644)?;
        writer.commit()
    }

    fn assert_outside_untouched(outside: &Path) {
        let names: Vec<_> = fs::read_dir(outside).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["victim"]);
        assert_eq!(fs::read_to_string(outside.join("victim")).unwrap(), "untouched");
        assert_eq!(
            fs::metadata(outside.join("victim")).unwrap().permissions().mode() & 0o777,
            0o644
        );
    }

    #[test]
    fn links_at_a_secrets_path_or_on_its_way_are_refused_and_never_followed() {
        for (place, kind) in [
            (SECRET, "symlink"),
            (SECRET, "dangling"),
            ("03-secrets/core/secret/prod", "symlinked folder"),
            ("03-secrets", "symlinked folder"),
            ("manifest.json", "symlink"),
            ("elsewhere", "symlink"),
        ] {
            let (_base, target, outside) = places();
            let at = target.join(place);
            if at.is_dir() {
                fs::remove_dir_all(&at).unwrap();
            }
            match kind {
                "symlink" => symlink(outside.join("victim"), &at).unwrap(),
                "dangling" => symlink(outside.join("created-by-following"), &at).unwrap(),
                _ => symlink(&outside, &at).unwrap(),
            }
            let err = unpack(&target).unwrap_err();
            assert!(matches!(err, FolderError::Unsafe { .. }), "{place} {kind}: {err}");
            assert!(err.to_string().contains("symbolic link"), "{err}");
            assert_outside_untouched(&outside);
        }
    }

    #[test]
    fn a_fifo_is_refused_without_opening_it() {
        let (_base, target, _outside) = places();
        let prod = rustix::fs::open(
            target.join("03-secrets/core/secret/prod"),
            OFlags::DIRECTORY,
            Mode::empty(),
        )
        .unwrap();
        rustix::fs::mknodat(&prod, "web-tls.json", FileType::Fifo, Mode::from_raw_mode(0o600), 0).unwrap();
        let err = unpack(&target).unwrap_err();
        assert!(err.to_string().contains("is a FIFO"), "{err}");
    }

    /// A hard link at a Secret's path is replaced, not written through: the other name keeps its content and mode.
    #[test]
    fn a_hard_link_is_replaced_not_written_through() {
        let (_base, target, outside) = places();
        fs::hard_link(outside.join("victim"), target.join(SECRET)).unwrap();
        assert_eq!(unpack(&target).unwrap(), 2);
        assert_outside_untouched(&outside);
        assert_eq!(fs::read(target.join(SECRET)).unwrap(), b"{\"kind\":\"Secret\"}");
        assert_eq!(
            fs::metadata(target.join(SECRET)).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    /// Links that appear after the walk (a race) are still never followed: folders open with O_NOFOLLOW.
    #[test]
    fn a_link_placed_after_the_walk_is_not_followed() {
        let (_base, target, outside) = places();
        let mut writer = FolderWriter::open(&target, true).unwrap();
        fs::remove_dir_all(target.join("03-secrets")).unwrap();
        symlink(&outside, target.join("03-secrets")).unwrap();
        let err = writer.write(SECRET, b"x", 0o600).unwrap_err();
        assert!(err.to_string().contains("symbolic link"), "{err}");
        drop(writer);
        assert_outside_untouched(&outside);
    }

    /// Nothing appears under a final name before the commit, and without one everything made is taken away.
    #[test]
    fn without_a_commit_nothing_is_left() {
        let base = tempfile::tempdir().unwrap();
        let target = base.path().join("new/folder");
        let mut writer = FolderWriter::open(&target, false).unwrap();
        writer.write(SECRET, b"x", 0o600).unwrap();
        assert!(!target.join(SECRET).exists());
        drop(writer);
        assert!(!target.exists());

        let (_base, target, _outside) = places();
        fs::write(target.join("keep"), "mine").unwrap();
        let mut writer = FolderWriter::open(&target, true).unwrap();
        writer.write("04-issuers/x/y.json", b"x", 0o644).unwrap();
        writer.write(SECRET, b"x", 0o600).unwrap();
        drop(writer);
        assert!(!target.join("04-issuers").exists());
        let left: Vec<_> = fs::read_dir(target.join("03-secrets/core/secret/prod"))
            .unwrap()
            .collect();
        assert!(left.is_empty(), "{left:?}");
        assert_eq!(fs::read_to_string(target.join("keep")).unwrap(), "mine");
    }

    #[test]
    fn a_folder_with_files_needs_overwrite() {
        let (_base, target, _outside) = places();
        assert!(matches!(
            FolderWriter::open(&target, false),
            Err(FolderError::NotEmpty(_))
        ));
        let mut writer = FolderWriter::open(&target, true).unwrap();
        assert!(matches!(writer.write("../x", b"", 0o600), Err(FolderError::BadPath(_))));
    }
}

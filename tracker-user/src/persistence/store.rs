//! The snapshot file on disk: read at start, written durably, and moved
//! aside when it cannot be used.
//!
//! Every operation goes through a descriptor of the file's directory,
//! opened at start: after a privilege drop with a chroot the path may no
//! longer resolve, but the directory stays reachable, and fsyncing the
//! directory after a rename needs it anyway.

use std::ffi::{CString, OsStr};
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use tracker_swarm::snapshot::SnapshotFile;

/// Where snapshots live: a directory and a file name in it.
pub struct SnapshotStore {
    dir: OwnedFd,
    name: CString,
    temp: CString,
    /// The path as configured, for messages.
    path: PathBuf,
}

fn cstring(bytes: &[u8]) -> io::Result<CString> {
    CString::new(bytes).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in path"))
}

/// -1 into the error it stands for.
fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

impl SnapshotStore {
    /// Opens the directory of `path`; the file itself may not exist yet.
    pub fn open(path: &Path) -> io::Result<Self> {
        let name = path
            .file_name()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name"))?;
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        let dir_c = cstring(dir.as_os_str().as_bytes())?;
        // SAFETY: `dir_c` is a valid NUL-terminated string that outlives
        // the call; the returned descriptor is checked and owned below.
        let fd = check(unsafe {
            libc::open(
                dir_c.as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        })
        .map_err(|e| io::Error::new(e.kind(), format!("directory {}: {e}", dir.display())))?;
        // SAFETY: `fd` was just opened and is owned by nothing else.
        let dir = unsafe { OwnedFd::from_raw_fd(fd) };
        let mut temp = name.as_bytes().to_vec();
        temp.extend_from_slice(b".tmp");
        Ok(Self {
            dir,
            name: cstring(name.as_bytes())?,
            temp: cstring(&temp)?,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn open_at(&self, name: &CString, flags: libc::c_int) -> io::Result<File> {
        // SAFETY: the directory descriptor is open for the life of `self`,
        // `name` is NUL-terminated; the result is checked and owned below.
        let fd = check(unsafe {
            libc::openat(
                self.dir.as_raw_fd(),
                name.as_ptr(),
                flags | libc::O_CLOEXEC | libc::O_NOFOLLOW,
                0o600 as libc::c_uint,
            )
        })?;
        // SAFETY: `fd` was just opened and is owned by nothing else.
        Ok(unsafe { File::from_raw_fd(fd) })
    }

    fn rename_at(&self, from: &CString, to: &CString) -> io::Result<()> {
        let dir = self.dir.as_raw_fd();
        // SAFETY: both names are NUL-terminated and the descriptor is open.
        check(unsafe { libc::renameat(dir, from.as_ptr(), dir, to.as_ptr()) })?;
        Ok(())
    }

    /// The file's bytes, or `None` if there is no file (a first start).
    pub fn read(&self) -> io::Result<Option<Vec<u8>>> {
        let mut file = match self.open_at(&self.name, libc::O_RDONLY) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        Ok(Some(bytes))
    }

    /// Renames the file out of the way (`NAME.bad-UNIXTIME`), so that the
    /// next snapshot does not overwrite what an operator may want to look
    /// at; returns the new name.
    pub fn move_aside(&self) -> io::Result<PathBuf> {
        let stamp = tracker_swarm::clock::unix_tick();
        let mut aside = self.name.as_bytes().to_vec();
        aside.extend_from_slice(format!(".bad-{stamp}").as_bytes());
        let aside_c = cstring(&aside)?;
        self.rename_at(&self.name, &aside_c)?;
        Ok(self.path.with_file_name(OsStr::from_bytes(&aside)))
    }

    /// Writes `file` durably: to a temporary file (mode 0600, as it holds
    /// the connection-id secret), fsynced, renamed over the old snapshot,
    /// then the directory fsynced so the rename itself survives a power
    /// cut. A crash at any point leaves the previous snapshot whole.
    pub fn write(&self, file: &SnapshotFile) -> io::Result<()> {
        let result = self.write_temp(file).and_then(|()| {
            self.rename_at(&self.temp, &self.name)?;
            File::from(self.dir.try_clone()?).sync_all()
        });
        if result.is_err() {
            // SAFETY: the name is NUL-terminated and the descriptor open;
            // failing to remove a temporary file leaves only clutter.
            unsafe { libc::unlinkat(self.dir.as_raw_fd(), self.temp.as_ptr(), 0) };
        }
        result
    }

    fn write_temp(&self, file: &SnapshotFile) -> io::Result<()> {
        let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC;
        let mut out = self.open_at(&self.temp, flags)?;
        // A temporary file left by another user's run keeps its old mode
        // through O_TRUNC; the secret must not be readable by others.
        // SAFETY: `out` is an open descriptor for the call's duration.
        check(unsafe { libc::fchmod(out.as_raw_fd(), 0o600) })?;
        file.write_to(&mut out)?;
        out.sync_all()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn sample() -> SnapshotFile {
        SnapshotFile::new([3; 16], 77, Vec::new())
    }

    #[test]
    fn written_files_are_private_and_replace_the_old_one_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("swarm.snapshot");
        let store = SnapshotStore::open(&path).unwrap();
        assert_eq!(store.read().unwrap(), None, "no file is a first start");
        // A stale temporary file, readable by all, from an interrupted run.
        std::fs::write(dir.path().join("swarm.snapshot.tmp"), b"old").unwrap();
        std::fs::set_permissions(
            dir.path().join("swarm.snapshot.tmp"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        store.write(&sample()).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let mut expected = Vec::new();
        sample().write_to(&mut expected).unwrap();
        assert_eq!(store.read().unwrap(), Some(expected));
        assert!(!dir.path().join("swarm.snapshot.tmp").exists());
        let aside = store.move_aside().unwrap();
        assert!(aside.to_string_lossy().contains("swarm.snapshot.bad-"));
        assert!(aside.exists());
        assert_eq!(store.read().unwrap(), None);
    }

    #[test]
    fn a_missing_directory_is_an_error_naming_it() {
        let err = SnapshotStore::open(Path::new("/nonexistent-dir/swarm.snapshot"))
            .err()
            .unwrap();
        assert!(err.to_string().contains("/nonexistent-dir"), "{err}");
    }
}

//! DynamoDB Local, in memory or on a data folder. A persistent database runs from a working
//! copy in memory (tmpfs), saved back to its folder when the stack stops: on disk, SQLite's
//! syncs made every write wait on the disk (PutItem p50 16 ms, 15 items in BatchWriteItem
//! 197 ms, in TransactWriteItems 56 ms; on tmpfs 4.8, 13.7 and 20.1 ms, docs/benchmarks.md).
//!
//! A working copy belongs to one data folder, not to a path: the folder holds a random id
//! (`working-copy.id`) that names its copy. A folder moved aside takes its id along, so a new
//! folder at the same path never picks up the old one's copy; a copy left by a killed run is
//! picked up by its own folder only (it is newer than what was saved), and copies whose folder
//! is gone are removed.

use std::path::{Path, PathBuf};

use crate::process::{Failure, Readiness, Spec};
use crate::tools::Tools;

/// Where the working copies live.
const SHM: &str = "/dev/shm";
const COPY_PREFIX: &str = "chat-backend-dynamodb-";
const DATABASE: &str = "shared-local-instance.db";
const ID_FILE: &str = "working-copy.id";
/// In each copy: the folder it belongs to.
const OWNER_FILE: &str = "owner";

/// A persistent database's working copy, and where to save it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkingCopy {
    pub copy: PathBuf,
    pub folder: PathBuf,
}

impl WorkingCopy {
    /// The copy of `folder`'s database in `shm`, made from the saved one unless the copy is
    /// newer (a killed run's); `None` when there is no tmpfs or the folder is on one already.
    pub fn prepare(folder: &Path, shm: &Path) -> Result<Option<Self>, Failure> {
        let io = |e: std::io::Error| Failure(format!("{}: {e}", folder.display()));
        std::fs::create_dir_all(folder).map_err(io)?;
        if !writable_dir(shm) || on_tmpfs(folder) {
            return Ok(None);
        }
        remove_orphans(shm);
        let folder = folder.canonicalize().map_err(io)?;
        let id_file = folder.join(ID_FILE);
        let id = match std::fs::read_to_string(&id_file) {
            Ok(id) if !id.trim().is_empty() => id.trim().to_owned(),
            _ => {
                let id = uuid::Uuid::new_v4().simple().to_string();
                std::fs::write(&id_file, &id).map_err(io)?;
                id
            }
        };
        let copy = shm.join(format!("{COPY_PREFIX}{id}"));
        std::fs::create_dir_all(&copy).map_err(io)?;
        std::fs::write(copy.join(OWNER_FILE), folder.display().to_string()).map_err(io)?;
        let (saved, working) = (folder.join(DATABASE), copy.join(DATABASE));
        let copy_is_newer = match (modified(&working), modified(&saved)) {
            (Some(w), Some(s)) => w > s,
            (Some(_), None) => true,
            _ => false,
        };
        if saved.exists() && !copy_is_newer {
            copy_preserving_time(&saved, &working).map_err(io)?;
        }
        Ok(Some(Self { copy, folder }))
    }

    /// Back to the folder (a whole file, then renamed), then the copy goes: it never outlives
    /// what it saved.
    pub fn save(&self) -> Result<(), Failure> {
        let working = self.copy.join(DATABASE);
        if working.exists() {
            let saved = self.folder.join(DATABASE);
            let partial = self.folder.join(format!("{DATABASE}.saving"));
            copy_preserving_time(&working, &partial)
                .and_then(|()| std::fs::rename(&partial, &saved))
                .map_err(|e| {
                    Failure(format!(
                        "could not save the DynamoDB Local database ({e}); it is still in {}",
                        self.copy.display()
                    ))
                })?;
        }
        std::fs::remove_dir_all(&self.copy)
            .map_err(|e| Failure(format!("{}: {e}", self.copy.display())))
    }
}

fn modified(path: &Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn copy_preserving_time(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::copy(from, to)?;
    if let Some(time) = modified(from) {
        std::fs::File::options()
            .write(true)
            .open(to)?
            .set_modified(time)?;
    }
    Ok(())
}

fn writable_dir(dir: &Path) -> bool {
    std::fs::metadata(dir).is_ok_and(|m| m.is_dir() && !m.permissions().readonly())
}

/// Whether `path` is on a tmpfs (its mount, from /proc/self/mounts).
fn on_tmpfs(path: &Path) -> bool {
    let Ok(path) = path.canonicalize() else {
        return false;
    };
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    mounts
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (_, point, kind) = (fields.next()?, fields.next()?, fields.next()?);
            Some((PathBuf::from(point), kind == "tmpfs"))
        })
        .filter(|(point, _)| path.starts_with(point))
        .max_by_key(|(point, _)| point.components().count())
        .is_some_and(|(_, tmpfs)| tmpfs)
}

/// Removes the copies whose folder is gone or holds another id (it was moved aside and
/// replaced): nothing can ever pick them up.
fn remove_orphans(shm: &Path) {
    let Ok(entries) = std::fs::read_dir(shm) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(id) = name.strip_prefix(COPY_PREFIX) else {
            continue;
        };
        // Copies of an earlier layout have no owner: left alone (a run of that version may
        // still be using one).
        let Ok(owner) = std::fs::read_to_string(entry.path().join(OWNER_FILE)) else {
            continue;
        };
        let current = std::fs::read_to_string(Path::new(owner.trim()).join(ID_FILE));
        if current.map(|c| c.trim() != id).unwrap_or(true) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// DynamoDB Local on `port`: in memory, or on `folder` (through its working copy, to be saved
/// when the stack stops).
pub fn prepare(
    tools: &Tools,
    port: u16,
    folder: &Path,
    persistent: bool,
) -> Result<(Spec, Option<WorkingCopy>), Failure> {
    std::fs::create_dir_all(folder).map_err(|e| Failure(format!("{}: {e}", folder.display())))?;
    let (storage, copy) = if persistent {
        let copy = WorkingCopy::prepare(folder, Path::new(SHM))?;
        let dir = copy.as_ref().map_or(folder.to_owned(), |c| c.copy.clone());
        (vec!["-dbPath".to_owned(), dir.display().to_string()], copy)
    } else {
        (vec!["-inMemory".to_owned()], None)
    };
    let lib = tools.dynamodb_local_dir.join("DynamoDBLocal_lib");
    let jar = tools.dynamodb_local_dir.join("DynamoDBLocal.jar");
    // -sharedDb: one database whatever access key and region a client signs with.
    // -disableTelemetry: it would otherwise call home.
    // -cors: it would otherwise let any web page a developer visits read and write the tables
    // (its default allows every origin); no page needs it, so the one origin allowed is none.
    let spec = Spec::new("DynamoDB", folder, "java")
        .args([
            "-Xmx512m".to_owned(),
            format!("-Djava.library.path={}", lib.display()),
            "-jar".to_owned(),
            jar.display().to_string(),
            "-port".to_owned(),
            port.to_string(),
            "-sharedDb".to_owned(),
            "-disableTelemetry".to_owned(),
            "-cors".to_owned(),
            NO_ORIGIN.to_owned(),
        ])
        .args(storage)
        .ready_on(Readiness::Port(port));
    Ok((spec, copy))
}

/// An origin no page can have (`.invalid` never resolves).
const NO_ORIGIN: &str = "https://no-page.invalid";

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        // Not on a tmpfs, or there would be no working copy to test.
        let base = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir)
            .join("stack-tests")
            .join(format!("{name}-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&base).expect("scratch");
        base
    }

    fn write_db(dir: &Path, text: &str) {
        std::fs::write(dir.join(DATABASE), text).expect("db");
    }

    fn read_db(dir: &Path) -> Option<String> {
        std::fs::read_to_string(dir.join(DATABASE)).ok()
    }

    #[test]
    fn a_fresh_folder_at_an_old_path_never_gets_the_old_folders_copy() {
        let (base, shm) = (scratch("fresh"), scratch("shm"));
        let folder = base.join("dev");
        let first = WorkingCopy::prepare(&folder, &shm)
            .expect("prepare")
            .expect("a copy");
        // A run that was killed: its copy holds data the folder never got.
        write_db(&first.copy, "messages up to offset 41");
        std::fs::rename(&folder, base.join("dev-aside")).expect("move aside");
        let second = WorkingCopy::prepare(&folder, &shm)
            .expect("prepare")
            .expect("a copy");
        assert_ne!(second.copy, first.copy);
        assert_eq!(read_db(&second.copy), None, "a fresh folder starts empty");
        assert!(!first.copy.exists(), "the orphaned copy is removed");
    }

    #[test]
    fn a_killed_runs_copy_is_picked_up_by_its_own_folder_and_a_save_removes_it() {
        let (base, shm) = (scratch("killed"), scratch("shm"));
        let folder = base.join("dev");
        std::fs::create_dir_all(&folder).expect("folder");
        write_db(&folder, "saved");
        let first = WorkingCopy::prepare(&folder, &shm)
            .expect("prepare")
            .expect("a copy");
        assert_eq!(read_db(&first.copy).as_deref(), Some("saved"));
        std::thread::sleep(std::time::Duration::from_millis(20));
        write_db(&first.copy, "newer, never saved");
        let again = WorkingCopy::prepare(&folder, &shm)
            .expect("prepare")
            .expect("a copy");
        assert_eq!(again, first);
        assert_eq!(read_db(&again.copy).as_deref(), Some("newer, never saved"));
        again.save().expect("save");
        assert_eq!(read_db(&folder).as_deref(), Some("newer, never saved"));
        assert!(
            !again.copy.exists(),
            "a saved copy does not outlive its save"
        );
        let next = WorkingCopy::prepare(&folder, &shm)
            .expect("prepare")
            .expect("a copy");
        assert_eq!(read_db(&next.copy).as_deref(), Some("newer, never saved"));
    }

    #[test]
    fn a_folder_on_a_tmpfs_needs_no_copy() {
        if !on_tmpfs(Path::new(SHM)) {
            panic!("{SHM} is no tmpfs on this machine: this test needs one");
        }
        let folder = Path::new(SHM).join(format!("stack-test-{}", uuid::Uuid::new_v4().simple()));
        assert_eq!(
            WorkingCopy::prepare(&folder, Path::new(SHM)).expect("prepare"),
            None
        );
        let _ = std::fs::remove_dir_all(folder);
    }
}

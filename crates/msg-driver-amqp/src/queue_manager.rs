//! `use_queue_manager`: reply and fanout queue names `<hostname>:<processname>:<n>` that are
//! unique among the live processes of a host and come back the same after a restart, so a
//! restarted service finds its queues again instead of making new ones.
//!
//! oslo keeps one counter per (hostname, processname) in a file under `/dev/shm`, reset when
//! the process group changes. msg leases numbers instead: number `n` is held by whoever holds
//! an exclusive lock on the file `msg-qmanager_<hostname>_<processname>_<n>.lock` (under
//! `/dev/shm`, or the temporary directory where there is none). A process takes the lowest
//! number nobody holds; the kernel lets go of its locks when it exits, however it exits, so a
//! restarted process takes the same numbers again, and two live processes never hold the same
//! one (see docs/decisions.md for why msg does not share oslo's counter file).

use std::fs::{File, OpenOptions};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use fs4::{FileExt, TryLockError};
use msg_core::{Error, Result};

/// The most numbers one (hostname, processname) may hold at once on a host.
const MAX_NUMBERS: u32 = 65_536;

/// Hands out queue-name numbers for one (hostname, processname).
#[derive(Debug, Clone)]
pub(crate) struct QueueManager {
    dir: PathBuf,
    hostname: String,
    processname: String,
}

/// A leased number: `<hostname>:<processname>:<n>`, ours until this is dropped.
#[derive(Debug)]
pub(crate) struct QueueNumber {
    name: String,
    /// The locked file; closing it lets go of the number.
    _lock: File,
}

impl QueueNumber {
    /// `<hostname>:<processname>:<n>`, the suffix of the queue's name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// The number leased.
    #[cfg(test)]
    pub(crate) fn number(&self) -> u32 {
        self.name
            .rsplit(':')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }
}

impl QueueManager {
    /// The queue manager of these names, keeping its lock files under `/dev/shm` (as oslo
    /// keeps its counter) or, where there is none, the temporary directory.
    pub(crate) fn new(hostname: &str, processname: &str) -> Self {
        let shm = Path::new("/dev/shm");
        let dir = if shm.is_dir() {
            shm.to_path_buf()
        } else {
            std::env::temp_dir()
        };
        Self::in_dir(dir, hostname, processname)
    }

    /// The same, with the lock files in `dir`.
    pub(crate) fn in_dir(dir: PathBuf, hostname: &str, processname: &str) -> Self {
        QueueManager {
            dir,
            hostname: hostname.to_string(),
            processname: processname.to_string(),
        }
    }

    /// `<hostname>:<processname>`, for messages.
    pub(crate) fn label(&self) -> String {
        format!("{}:{}", self.hostname, self.processname)
    }

    /// Leases the lowest number no live holder has (from 1, as oslo counts).
    pub(crate) fn take(&self) -> Result<QueueNumber> {
        for number in 1..=MAX_NUMBERS {
            let path = self.dir.join(format!(
                "msg-qmanager_{}_{}_{number}.lock",
                self.hostname, self.processname
            ));
            let file = match OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
            {
                Ok(f) => f,
                // another user's file (or one we may not write): that number is not ours
                Err(e) if e.kind() == ErrorKind::PermissionDenied => continue,
                Err(e) => return Err(self.error(&path, &e.to_string())),
            };
            // fs4's (std's own needs Rust 1.89): `flock`, let go when the file closes
            match FileExt::try_lock(&file) {
                Ok(()) => {
                    tracing::debug!(path = %path.display(), number, "queue manager number leased");
                    return Ok(QueueNumber {
                        name: format!("{}:{}:{number}", self.hostname, self.processname),
                        _lock: file,
                    });
                }
                Err(TryLockError::WouldBlock) => continue,
                Err(TryLockError::Error(e)) => return Err(self.error(&path, &e.to_string())),
            }
        }
        Err(Error::Config(format!(
            "use_queue_manager: all {MAX_NUMBERS} queue numbers of hostname `{}` and processname \
             `{}` are held by live processes",
            self.hostname, self.processname
        )))
    }

    fn error(&self, path: &Path, reason: &str) -> Error {
        Error::Config(format!(
            "use_queue_manager: can't lock `{}`: {reason}",
            path.display()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "msg-qmanager-test-{tag}-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn numbers_start_at_one_and_are_unique_while_held() {
        let qm = QueueManager::in_dir(temp_dir("unique"), "node1", "nova-api");
        let a = qm.take().unwrap();
        let b = qm.take().unwrap();
        let c = qm.take().unwrap();
        assert_eq!((a.number(), b.number(), c.number()), (1, 2, 3));
        assert_eq!(a.name(), "node1:nova-api:1");
        assert_eq!(c.name(), "node1:nova-api:3");
    }

    #[test]
    fn a_released_number_is_taken_again_lowest_first() {
        // a restart: the process's numbers are released, and the same ones come back
        let dir = temp_dir("restart");
        let qm = QueueManager::in_dir(dir.clone(), "node1", "nova-api");
        let first: Vec<u32> = {
            let held: Vec<_> = (0..3).map(|_| qm.take().unwrap()).collect();
            held.iter().map(|n| n.number()).collect()
        };
        let again = QueueManager::in_dir(dir, "node1", "nova-api");
        let second: Vec<_> = (0..3).map(|_| again.take().unwrap()).collect();
        let second: Vec<u32> = second.iter().map(|n| n.number()).collect();
        assert_eq!(first, second);
        assert_eq!(second, vec![1, 2, 3]);
    }

    #[test]
    fn a_hole_is_filled_while_the_others_stay_held() {
        let qm = QueueManager::in_dir(temp_dir("hole"), "h", "p");
        let one = qm.take().unwrap();
        let two = qm.take().unwrap();
        drop(one);
        let three = qm.take().unwrap();
        assert_eq!((two.number(), three.number()), (2, 1));
    }

    #[test]
    fn names_are_counted_apart() {
        let dir = temp_dir("apart");
        let a = QueueManager::in_dir(dir.clone(), "h", "api")
            .take()
            .unwrap();
        let b = QueueManager::in_dir(dir.clone(), "h", "conductor")
            .take()
            .unwrap();
        let c = QueueManager::in_dir(dir, "other", "api").take().unwrap();
        assert_eq!((a.number(), b.number(), c.number()), (1, 1, 1));
        assert_eq!(b.name(), "h:conductor:1");
        assert_eq!(c.name(), "other:api:1");
    }

    #[test]
    fn a_missing_directory_is_an_error_naming_the_option() {
        let qm = QueueManager::in_dir(PathBuf::from("/nonexistent/msg-qm"), "h", "p");
        let e = qm.take().unwrap_err().to_string();
        assert!(e.contains("use_queue_manager"), "{e}");
    }
}

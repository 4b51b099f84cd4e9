//! The adapter's bearer token for the fulfilment service, read from a file
//! (`FULFIL_FULFILMENT_TOKEN_FILE`, typically a mounted Kubernetes Secret)
//! and read again when the file changes, so a rotated token takes effect
//! without a restart.
//!
//! The file's identity (modification time, size, inode) is looked at no
//! more than once per check interval; a changed file is read again. When
//! the service answers UNAUTHENTICATED the file is looked at at once. A
//! file that is briefly unreadable or empty keeps the last good token. The
//! token is never logged: the metadata value is marked sensitive.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use tonic::metadata::{Ascii, MetadataValue};

/// The variable naming the token file.
pub const TOKEN_FILE_VAR: &str = "FULFIL_FULFILMENT_TOKEN_FILE";
/// How often the file is looked at for a change, at most.
pub const CHECK_INTERVAL: Duration = Duration::from_secs(5);

/// Why the token file cannot be used at start.
#[derive(Debug, thiserror::Error)]
pub enum TokenFileError {
    /// Unreadable.
    #[error("{TOKEN_FILE_VAR}: cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Empty, or not a token that fits in metadata.
    #[error("{TOKEN_FILE_VAR}: {path} does not hold a token (one line of visible ASCII)")]
    Invalid {
        /// The file.
        path: PathBuf,
    },
}

/// What identifies one version of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
    device: u64,
}

fn stamp(path: &Path) -> std::io::Result<Stamp> {
    use std::os::unix::fs::MetadataExt;
    // Follows symlinks: a Kubernetes Secret volume swaps a `..data` link.
    let meta = std::fs::metadata(path)?;
    Ok(Stamp {
        modified: meta.modified().ok(),
        len: meta.len(),
        inode: meta.ino(),
        device: meta.dev(),
    })
}

struct State {
    value: MetadataValue<Ascii>,
    stamp: Stamp,
    checked: Instant,
}

/// A bearer token kept in step with its file.
#[derive(Clone)]
pub struct TokenFile {
    path: Arc<PathBuf>,
    check_every: Duration,
    state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for TokenFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenFile")
            .field("path", &self.path)
            .field("check_every", &self.check_every)
            .finish_non_exhaustive()
    }
}

fn read(path: &Path) -> Result<(MetadataValue<Ascii>, Stamp), TokenFileError> {
    let read_error = |source| TokenFileError::Read {
        path: path.to_owned(),
        source,
    };
    let before = stamp(path).map_err(read_error)?;
    let text = std::fs::read_to_string(path).map_err(read_error)?;
    let token = text.trim();
    let invalid = || TokenFileError::Invalid {
        path: path.to_owned(),
    };
    if token.is_empty() || token.contains(char::is_whitespace) {
        return Err(invalid());
    }
    let mut value: MetadataValue<Ascii> =
        format!("Bearer {token}").parse().map_err(|_| invalid())?;
    value.set_sensitive(true);
    Ok((value, before))
}

impl TokenFile {
    /// Reads the token at `path` now (failing if it is unusable) and then
    /// looks for changes at most every [`CHECK_INTERVAL`].
    pub fn open(path: impl Into<PathBuf>) -> Result<Self, TokenFileError> {
        Self::open_with_interval(path, CHECK_INTERVAL)
    }

    /// As [`TokenFile::open`], looking for changes at most every
    /// `check_every` (zero: on every call).
    pub fn open_with_interval(
        path: impl Into<PathBuf>,
        check_every: Duration,
    ) -> Result<Self, TokenFileError> {
        let path = path.into();
        let (value, stamp) = read(&path)?;
        Ok(TokenFile {
            path: Arc::new(path),
            check_every,
            state: Arc::new(Mutex::new(State {
                value,
                stamp,
                checked: Instant::now(),
            })),
        })
    }

    /// The `authorization` metadata value to send now.
    pub fn value(&self) -> MetadataValue<Ascii> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.checked.elapsed() >= self.check_every {
            self.check(&mut state);
        }
        state.value.clone()
    }

    /// Looks at the file now, whatever the interval; true if the token
    /// changed (worth retrying a refused call).
    pub fn refresh(&self) -> bool {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let before = state.value.clone();
        self.check(&mut state);
        state.value != before
    }

    fn check(&self, state: &mut State) {
        state.checked = Instant::now();
        match stamp(&self.path) {
            Ok(now) if now == state.stamp => {}
            Ok(_) => match read(&self.path) {
                Ok((value, stamp)) => {
                    if value != state.value {
                        tracing::info!(path = %self.path.display(), "fulfilment token reloaded");
                    }
                    state.value = value;
                    state.stamp = stamp;
                }
                Err(err) => {
                    tracing::warn!(error = %err, "keeping the previous fulfilment token");
                }
            },
            Err(err) => {
                tracing::warn!(path = %self.path.display(), %err, "keeping the previous fulfilment token");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_rotations_and_keeps_the_last_good_token() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("token");
        std::fs::write(&path, "first.token.value\n").expect("write");
        let token = TokenFile::open_with_interval(&path, Duration::ZERO).expect("open");
        assert_eq!(
            token.value().to_str().ok(),
            Some("Bearer first.token.value")
        );
        assert!(token.value().is_sensitive());

        // Atomic replacement, as a Kubernetes Secret volume does it.
        let next = dir.path().join("token.next");
        std::fs::write(&next, "second.token.value").expect("write");
        std::fs::rename(&next, &path).expect("rename");
        assert_eq!(
            token.value().to_str().ok(),
            Some("Bearer second.token.value")
        );

        std::fs::write(&path, "").expect("truncate");
        assert_eq!(
            token.value().to_str().ok(),
            Some("Bearer second.token.value")
        );
        std::fs::remove_file(&path).expect("remove");
        assert_eq!(
            token.value().to_str().ok(),
            Some("Bearer second.token.value")
        );
        assert!(!token.refresh());
        assert!(!format!("{token:?}").contains("second"));
    }

    #[test]
    fn unusable_files_fail_at_start_naming_the_variable() {
        let dir = tempfile::tempdir().expect("temp dir");
        let err = TokenFile::open(dir.path().join("missing")).expect_err("missing");
        assert!(err.to_string().starts_with(TOKEN_FILE_VAR), "{err}");
        let path = dir.path().join("two-words");
        std::fs::write(&path, "secret-one secret-two").expect("write");
        let err = TokenFile::open(&path).expect_err("invalid");
        assert!(!err.to_string().contains("secret-one"), "{err}");
    }

    #[test]
    fn waits_for_the_interval_unless_refreshed() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("token");
        std::fs::write(&path, "aaa").expect("write");
        let token = TokenFile::open_with_interval(&path, Duration::from_secs(3600)).expect("open");
        std::fs::write(&path, "bbbb").expect("write");
        assert_eq!(token.value().to_str().ok(), Some("Bearer aaa"));
        assert!(token.refresh());
        assert_eq!(token.value().to_str().ok(), Some("Bearer bbbb"));
    }
}

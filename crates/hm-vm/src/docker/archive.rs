//! The workspace sync as the Docker API takes it: the written entries as a
//! tar stream (extracted by the daemon, which replaces a path whose kind
//! changed), and the removals as arguments of a shell command. What goes
//! into the stream is hashed as it is read, and entries that differ from
//! what the plan expected are reported (see [`crate::backend::Drift`]).

use std::io::{self, Read, Write};

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::backend::{Drift, SyncKind, SyncPlan};

/// Bytes of tar handed to the upload at a time.
const CHUNK: usize = 256 * 1024;
/// Bytes of paths given to one removal command (well under `ARG_MAX`).
const REMOVE_BATCH: usize = 64 * 1024;

/// Removes each argument relative to the current directory: a directory
/// only when it is empty (build outputs in it stay), anything else always.
/// An argument starting with `/` (never a relative path) is a name that is
/// not UTF-8, which an exec's arguments cannot carry: its bytes as `printf
/// %b` octal escapes after the `/` (see [`shell_arg`]).
pub(crate) const REMOVE_SCRIPT: &str = r#"for p do case $p in /*) p=$(printf '%bx' "${p#/}"); p=${p%x};; esac; if [ -d "$p" ] && [ ! -L "$p" ]; then rmdir -- "$p" 2>/dev/null || :; else rm -f -- "$p"; fi; done"#;

/// A relative path as an argument of [`REMOVE_SCRIPT`]: as it is when it
/// is UTF-8, else `/` and every byte as a `\0NNN` octal escape.
fn shell_arg(path: &std::path::Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    match path.to_str() {
        Some(text) => text.to_owned(),
        None => std::iter::once("/".to_owned())
            .chain(path.as_os_str().as_bytes().iter().map(|b| format!("\\0{b:03o}")))
            .collect(),
    }
}

/// The removal commands for `plan` (`sh -c REMOVE_SCRIPT sh PATH...`),
/// deepest paths first as the plan lists them.
pub(crate) fn removals(plan: &SyncPlan) -> Vec<Vec<String>> {
    let mut batches = Vec::new();
    let mut batch: Vec<String> = Vec::new();
    let mut size = 0;
    for path in &plan.remove {
        let path = shell_arg(path);
        if size + path.len() > REMOVE_BATCH && !batch.is_empty() {
            batches.push(std::mem::take(&mut batch));
            size = 0;
        }
        size += path.len() + 1;
        batch.push(path);
    }
    if !batch.is_empty() {
        batches.push(batch);
    }
    batches
        .into_iter()
        .map(|paths| {
            let mut argv = vec![
                "sh".to_owned(),
                "-c".to_owned(),
                REMOVE_SCRIPT.to_owned(),
                "sh".to_owned(),
            ];
            argv.extend(paths);
            argv
        })
        .collect()
}

/// Sends written bytes on as chunks; a closed receiver is an error, which
/// stops the tar writer.
struct ChunkWriter {
    buf: Vec<u8>,
    out: mpsc::Sender<io::Result<Bytes>>,
}

impl ChunkWriter {
    fn send(&mut self) -> io::Result<()> {
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.out
            .blocking_send(Ok(chunk))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the upload stopped"))
    }
}

impl Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            self.send()?;
        }
        Ok(())
    }
}

/// The written entries of `plan` as a tar stream, built on a blocking
/// thread; an error reading the source ends the stream with that error.
/// Once the stream is complete, the second receiver has the entries copied
/// other than the plan expected (those whose source was gone are not in
/// the stream).
pub(crate) fn tar_stream(
    plan: &SyncPlan,
) -> (
    mpsc::Receiver<io::Result<Bytes>>,
    tokio::sync::oneshot::Receiver<Vec<Drift>>,
) {
    let (tx, rx) = mpsc::channel(4);
    let (drift_tx, drift_rx) = tokio::sync::oneshot::channel();
    let plan = plan.clone();
    tokio::task::spawn_blocking(move || {
        let errors = tx.clone();
        let writer = ChunkWriter {
            buf: Vec::with_capacity(CHUNK),
            out: tx,
        };
        match write_tar(&plan, writer) {
            Ok(drift) => {
                let _ = drift_tx.send(drift);
            }
            Err(err) => {
                let _ = errors.blocking_send(Err(err));
            }
        }
    });
    (rx, drift_rx)
}

/// Reads exactly `len` bytes: what `inner` gives, then zeros if it ends
/// early (a file truncated while it is read: the tar header promised
/// `len`), hashing everything it yields.
struct HashingReader<R> {
    inner: R,
    left: u64,
    hasher: blake3::Hasher,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = buf.len().min(usize::try_from(self.left).unwrap_or(usize::MAX));
        if want == 0 {
            return Ok(0);
        }
        let n = match self.inner.read(&mut buf[..want])? {
            0 => {
                buf[..want].fill(0);
                want
            }
            n => n,
        };
        self.hasher.update(&buf[..n]);
        self.left -= n as u64;
        Ok(n)
    }
}

/// Whether an error opening a source path means it is no longer there (or
/// no longer a file: `O_NOFOLLOW` refuses a link put in its place).
fn gone(err: &io::Error) -> bool {
    err.kind() == io::ErrorKind::NotFound || matches!(err.raw_os_error(), Some(libc::ELOOP | libc::ENOTDIR))
}

fn write_tar(plan: &SyncPlan, writer: impl Write) -> io::Result<Vec<Drift>> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut tar = tar::Builder::new(writer);
    let mut drift = Vec::new();
    for entry in &plan.write {
        let source = plan.source_root.join(&entry.path);
        let context =
            |err: io::Error| io::Error::new(err.kind(), format!("`{}`: {err}", crate::os_path::escaped(&source)));
        let mut header = tar::Header::new_gnu();
        let path = &entry.path;
        let copied = match entry.kind {
            SyncKind::Dir { mode } => {
                if let Ok(meta) = std::fs::symlink_metadata(&source) {
                    header.set_metadata_in_mode(&meta, tar::HeaderMode::Complete);
                }
                header.set_uid(0);
                header.set_gid(0);
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(mode);
                header.set_size(0);
                tar.append_data(&mut header, path, io::empty())?;
                continue;
            }
            SyncKind::File { mode } => {
                let opened = std::fs::File::options()
                    .read(true)
                    .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
                    .open(&source);
                let file = match opened {
                    Ok(file) => file,
                    Err(err) if gone(&err) => {
                        drift.push(Drift {
                            path: path.clone(),
                            copied: None,
                        });
                        continue;
                    }
                    Err(err) => return Err(context(err)),
                };
                let meta = file.metadata().map_err(context)?;
                if !meta.is_file() {
                    drift.push(Drift {
                        path: path.clone(),
                        copied: None,
                    });
                    continue;
                }
                header.set_metadata_in_mode(&meta, tar::HeaderMode::Complete);
                header.set_uid(0);
                header.set_gid(0);
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(mode);
                header.set_size(meta.len());
                let mut reader = HashingReader {
                    inner: file,
                    left: meta.len(),
                    hasher: blake3::Hasher::new(),
                };
                tar.append_data(&mut header, path, &mut reader)?;
                *reader.hasher.finalize().as_bytes()
            }
            SyncKind::Symlink => {
                let target = match std::fs::read_link(&source) {
                    Ok(target) => target,
                    Err(err) if gone(&err) || err.raw_os_error() == Some(libc::EINVAL) => {
                        drift.push(Drift {
                            path: path.clone(),
                            copied: None,
                        });
                        continue;
                    }
                    Err(err) => return Err(context(err)),
                };
                if let Ok(meta) = std::fs::symlink_metadata(&source) {
                    header.set_metadata_in_mode(&meta, tar::HeaderMode::Complete);
                }
                header.set_uid(0);
                header.set_gid(0);
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_mode(0o777);
                header.set_size(0);
                tar.append_link(&mut header, path, &target)?;
                *blake3::hash(target.as_os_str().as_encoded_bytes()).as_bytes()
            }
        };
        if entry.expected.is_some_and(|e| e != copied) {
            drift.push(Drift {
                path: path.clone(),
                copied: Some(copied),
            });
        }
    }
    tar.into_inner()?.flush()?;
    Ok(drift)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::SyncEntry;
    use std::os::unix::fs::PermissionsExt;
    use std::path::PathBuf;

    #[tokio::test]
    async fn the_stream_is_the_written_entries_with_their_kinds_and_modes() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("src")).unwrap();
        std::fs::write(dir.path().join("src/run.sh"), "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(dir.path().join("src/run.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::symlink("src/run.sh", dir.path().join("link")).unwrap();
        std::fs::write(dir.path().join("edited"), "now").unwrap();
        let plan = SyncPlan {
            source_root: dir.path().to_owned(),
            target: "/workspace".into(),
            remove: vec!["old/file".into(), "old".into()],
            write: vec![
                SyncEntry {
                    path: "src".into(),
                    kind: SyncKind::Dir { mode: 0o755 },
                    expected: None,
                },
                SyncEntry {
                    path: "src/run.sh".into(),
                    kind: SyncKind::File { mode: 0o755 },
                    expected: Some(*blake3::hash(b"#!/bin/sh\n").as_bytes()),
                },
                SyncEntry {
                    path: "link".into(),
                    kind: SyncKind::Symlink,
                    expected: Some(*blake3::hash(b"src/run.sh").as_bytes()),
                },
                // Edited, and deleted, since the plan was made.
                SyncEntry {
                    path: "edited".into(),
                    kind: SyncKind::File { mode: 0o644 },
                    expected: Some([7; 32]),
                },
                SyncEntry {
                    path: "deleted".into(),
                    kind: SyncKind::File { mode: 0o644 },
                    expected: Some([7; 32]),
                },
            ],
        };
        let (mut rx, drift) = tar_stream(&plan);
        let mut bytes = Vec::new();
        while let Some(chunk) = rx.recv().await {
            bytes.extend_from_slice(&chunk.unwrap());
        }
        let mut archive = tar::Archive::new(bytes.as_slice());
        let entries: Vec<_> = archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let h = e.header();
                (
                    e.path().unwrap().display().to_string(),
                    h.entry_type(),
                    h.mode().unwrap(),
                    h.uid().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            entries,
            [
                ("src".to_owned(), tar::EntryType::Directory, 0o755, 0),
                ("src/run.sh".to_owned(), tar::EntryType::Regular, 0o755, 0),
                ("link".to_owned(), tar::EntryType::Symlink, 0o777, 0),
                ("edited".to_owned(), tar::EntryType::Regular, 0o644, 0),
            ]
        );
        let drift = drift.await.unwrap();
        assert_eq!(
            drift,
            [
                Drift {
                    path: "edited".into(),
                    copied: Some(*blake3::hash(b"now").as_bytes())
                },
                Drift {
                    path: "deleted".into(),
                    copied: None
                },
            ]
        );
        let removals = removals(&plan);
        assert_eq!(removals.len(), 1);
        assert_eq!(&removals[0][4..], ["old/file", "old"]);
    }

    #[test]
    fn names_that_are_not_utf8_are_removed_by_the_shell() {
        use std::os::unix::ffi::OsStringExt;
        let dir = tempfile::tempdir().unwrap();
        let odd = PathBuf::from(std::ffi::OsString::from_vec(b"f\xff\n".to_vec()));
        std::fs::write(dir.path().join(&odd), "x").unwrap();
        std::fs::write(dir.path().join("plain"), "x").unwrap();
        std::fs::write(dir.path().join("kept\\xff"), "x").unwrap();
        let plan = SyncPlan {
            remove: vec![odd, "plain".into()],
            ..Default::default()
        };
        let argv = &removals(&plan)[0];
        assert_eq!(argv[4], "/\\0146\\0377\\0012");
        let status = std::process::Command::new(&argv[0])
            .args(&argv[1..])
            .current_dir(dir.path())
            .status()
            .unwrap();
        assert!(status.success());
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, [std::ffi::OsString::from("kept\\xff")]);
    }

    #[test]
    fn long_removal_lists_are_split() {
        let plan = SyncPlan {
            remove: (0..20_000).map(|i| PathBuf::from(format!("dir/file-{i:05}"))).collect(),
            ..Default::default()
        };
        let batches = removals(&plan);
        assert!(batches.len() > 1);
        let total: usize = batches.iter().map(|b| b.len() - 4).sum();
        assert_eq!(total, 20_000);
        assert!(batches
            .iter()
            .all(|b| b[4..].iter().map(|p| p.len() + 1).sum::<usize>() <= REMOVE_BATCH + 64));
    }
}

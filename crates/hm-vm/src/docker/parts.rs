//! Docker parts as files ([`crate::VmBackend::export_part`]): a stored
//! image leaves the daemon as one file holding its config and the layers
//! above its base image, and comes back, into this daemon or another one
//! that has the base image, as the same image under the same id. The
//! file's format is in [`blob`]; docs/decisions.md says why it is so.

mod blob;

use std::io;
use std::path::Path;

use bollard::models::ImageInspect;
use bollard::query_parameters::{ImportImageOptionsBuilder, TagImageOptionsBuilder};
use bytes::{Buf, Bytes};
use futures_util::StreamExt;
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;

use super::{docker_error, is_not_found, Inner, LABEL_BASE};
use crate::error::VmError;

/// Bytes of a blob sent to `docker load` at a time.
const CHUNK: usize = 256 * 1024;

/// Why a part could not be written to a file or made from one.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PartError {
    #[error("cannot read it")]
    Read(#[source] io::Error),
    #[error("cannot write it")]
    Write(#[source] io::Error),
    #[error("cannot read the archive `docker save` sent")]
    Save(#[source] io::Error),
    #[error("`{part}` is not the digest of its image's config (a daemon with the containerd image store names images by their manifests; their parts cannot be exported)")]
    NotConfig { part: String },
    #[error("`docker save` of `{part}` left out its config")]
    ConfigNotSaved { part: String },
    #[error("`docker save` of `{part}` left out its layer `{layer}`")]
    LayerNotSaved { part: String, layer: String },
    #[error("it is damaged: {why}")]
    Damaged { why: &'static str },
    #[error("it is damaged: `{entry}` in it does not match its digest")]
    Mismatch { entry: String },
    #[error("it is damaged: it holds `{entry}`, which hm does not write there")]
    Unexpected { entry: String },
    #[error("it holds part `{found}`, not `{part}`")]
    OtherPart { part: String, found: String },
    #[error("it is in format {found}; this hm reads format {}", blob::VERSION)]
    Version { found: u32 },
    #[error("the base image `{base}`{} is not in the Docker daemon; pull it first", named(.name))]
    BaseMissing { base: String, name: Option<String> },
    #[error("the base image `{base}` in the Docker daemon has other layers than the part was made on")]
    BaseDiffers { base: String },
    #[error("the Docker daemon loaded `{loaded}` from it, not `{part}`")]
    Loaded { part: String, loaded: String },
}

fn named(name: &Option<String>) -> String {
    name.as_ref().map(|n| format!(" (`{n}`)")).unwrap_or_default()
}

/// The [`VmError`] of `op` on the file `path` failing with a [`PartError`].
fn part_error(op: &'static str, path: &Path) -> impl FnOnce(PartError) -> VmError {
    let path = path.to_owned();
    move |err| match err {
        PartError::Read(source) | PartError::Write(source) => VmError::Io { op, path, source },
        other => VmError::Io {
            op,
            path,
            source: io::Error::other(other),
        },
    }
}

/// A blocking task that failed to finish (it panicked).
fn task_error(op: &'static str, path: &Path) -> impl FnOnce(tokio::task::JoinError) -> VmError {
    let path = path.to_owned();
    move |err| VmError::Io {
        op,
        path,
        source: io::Error::other(err),
    }
}

/// The image's layers, bottom first, as diff ids.
fn layers_of(image: &ImageInspect) -> Vec<String> {
    image
        .root_fs
        .as_ref()
        .and_then(|r| r.layers.clone())
        .unwrap_or_default()
}

fn size_of(image: &ImageInspect) -> u64 {
    image.size.and_then(|s| u64::try_from(s).ok()).unwrap_or(0)
}

/// Reads on a blocking thread what the async side receives (the body of
/// `docker save`), chunk by chunk.
struct Received {
    rx: mpsc::Receiver<io::Result<Bytes>>,
    chunk: Bytes,
}

impl io::Read for Received {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.chunk.is_empty() {
            match self.rx.blocking_recv() {
                Some(chunk) => self.chunk = chunk?,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk[..n]);
        self.chunk.advance(n);
        Ok(n)
    }
}

impl Inner {
    /// Reaches the daemon for `op` on `path`, if nothing did before (the
    /// cache commands use parts without checking the backend first).
    async fn reach(&self, op: &'static str, path: &Path) -> Result<(), VmError> {
        self.connect().await.map(drop).map_err(|err| VmError::Io {
            op,
            path: path.to_owned(),
            source: io::Error::other(err),
        })
    }

    /// The image `name` in the daemon, if it is there.
    async fn find_image(&self, name: &str) -> Result<Option<ImageInspect>, VmError> {
        match self.docker()?.inspect_image(name).await {
            Ok(image) => Ok(Some(image)),
            Err(err) if is_not_found(&err) => Ok(None),
            Err(err) => Err(docker_error("inspect an image")(err)),
        }
    }

    /// Tags image `id` as one of this cache's entries.
    pub(super) async fn tag_entry(&self, id: &str) -> Result<(), VmError> {
        let options = TagImageOptionsBuilder::new()
            .repo(&self.cache_repo())
            .tag(id.trim_start_matches("sha256:"))
            .build();
        self.docker()?
            .tag_image(id, Some(options))
            .await
            .map_err(docker_error("tag a cache entry"))
    }

    /// When the tag `tag` was last set, in seconds since the epoch, where
    /// the daemon says.
    pub(super) async fn tagged_at(&self, tag: &str) -> Option<i64> {
        let image = self.find_image(tag).await.ok()??;
        unix_seconds(&image.metadata?.last_tag_time?)
    }

    /// What the file of `part` holds: its layers above the base image
    /// (found by the label `commit` sets), all of them when the base is
    /// unknown or not here.
    async fn plan(&self, part: &str) -> Result<blob::Plan, VmError> {
        let image = match self.find_image(part).await? {
            Some(image) if image.id.as_deref() == Some(part) => image,
            Some(_) => return Err(VmError::StoredMissing(format!("part `{part}` names another image"))),
            None => return Err(VmError::StoredMissing(format!("part `{part}` is gone"))),
        };
        let diff_ids = layers_of(&image);
        let labels = image.config.as_ref().and_then(|c| c.labels.clone()).unwrap_or_default();
        let base = match labels.get(LABEL_BASE) {
            Some(base) => self.find_image(base).await?,
            None => None,
        };
        // Left out only when they are the part's bottom layers.
        let base = base.filter(|b| {
            let layers = layers_of(b);
            !layers.is_empty() && diff_ids.starts_with(&layers) && b.id.is_some()
        });
        // As `commit` counts, what the steps added to the image their
        // container started from: its one layer, the top one (the image
        // it started from may not be here: an imported part comes alone).
        let size = match labels.contains_key(LABEL_BASE) {
            true => {
                let history = self
                    .docker()?
                    .image_history(part)
                    .await
                    .map_err(docker_error("read an image's history"))?;
                history.first().and_then(|h| u64::try_from(h.size).ok()).unwrap_or(0)
            }
            false => size_of(&image),
        };
        Ok(blob::Plan {
            meta: blob::Meta {
                version: blob::VERSION,
                part: part.to_owned(),
                base_layers: base.as_ref().map_or(0, |b| layers_of(b).len()),
                base_name: base.as_ref().and_then(|b| b.repo_tags.as_ref()?.first().cloned()),
                base: base.and_then(|b| b.id),
                size,
            },
            diff_ids,
        })
    }

    /// See [`crate::VmBackend::export_part`]: `docker save` streamed into
    /// the file, the base's layers left out as they pass.
    pub(super) async fn export_part(&self, part: &str, dest: &Path) -> Result<(), VmError> {
        const OP: &str = "export an image part to";
        self.reach(OP, dest).await?;
        let plan = self.plan(part).await?;
        let docker = self.docker()?;
        let (tx, rx) = mpsc::channel(16);
        let path = dest.to_owned();
        let writer = tokio::task::spawn_blocking(move || {
            let save = Received {
                rx,
                chunk: Bytes::new(),
            };
            blob::write(save, &plan, &path)
        });
        let mut save = docker.export_image(part);
        let mut failed = None;
        while let Some(chunk) = save.next().await {
            let chunk = chunk.map_err(|err| {
                failed = Some(err);
                io::Error::other("the daemon stopped sending the image")
            });
            let stop = chunk.is_err();
            // A writer that stopped has its own error.
            if tx.send(chunk).await.is_err() || stop {
                break;
            }
        }
        drop(tx);
        let written = writer.await.map_err(task_error(OP, dest))?;
        if let Some(err) = failed {
            // A writer that failed left no file; one that did not never
            // saw the whole image.
            if written.is_ok() {
                let _ = std::fs::remove_file(dest);
            }
            return Err(docker_error("save an image")(err));
        }
        written.map_err(part_error(OP, dest))
    }

    /// See [`crate::VmBackend::import_part`]: the file checked whole, its
    /// base image looked for, then `docker load` and the cache's tag.
    pub(super) async fn import_part(&self, part: &str, blob: &Path) -> Result<u64, VmError> {
        const OP: &str = "import an image part from";
        self.reach(OP, blob).await?;
        let file = blob.to_owned();
        let wanted = part.to_owned();
        if self
            .find_image(part)
            .await?
            .is_some_and(|image| image.id.as_deref() == Some(part))
        {
            let meta = tokio::task::spawn_blocking(move || blob::read_meta(&file, &wanted))
                .await
                .map_err(task_error(OP, blob))?
                .map_err(part_error(OP, blob))?;
            self.tag_entry(part).await?;
            return Ok(meta.size);
        }
        let checked = tokio::task::spawn_blocking(move || blob::check(&file, &wanted))
            .await
            .map_err(task_error(OP, blob))?
            .map_err(part_error(OP, blob))?;
        let meta = &checked.meta;
        if let Some(base) = &meta.base {
            let refused = match self.find_image(base).await? {
                None => Some(PartError::BaseMissing {
                    base: base.clone(),
                    name: meta.base_name.clone(),
                }),
                Some(image) if layers_of(&image) != checked.diff_ids[..meta.base_layers] => {
                    Some(PartError::BaseDiffers { base: base.clone() })
                }
                Some(_) => None,
            };
            if let Some(err) = refused {
                return Err(part_error(OP, blob)(err));
            }
        }
        let loaded = self.load(blob).await?;
        let others: Vec<&String> = loaded.iter().filter(|id| *id != part).collect();
        for id in &others {
            self.remove_tag(id).await;
        }
        let here = self.find_image(part).await?.is_some();
        if !others.is_empty() || !here {
            let loaded = others.first().map_or_else(|| "nothing".to_owned(), |id| (*id).clone());
            return Err(part_error(OP, blob)(PartError::Loaded {
                part: part.to_owned(),
                loaded,
            }));
        }
        self.tag_entry(part).await?;
        Ok(checked.meta.size)
    }

    /// `docker load` of the file `blob`, streamed; the ids it loaded.
    async fn load(&self, blob: &Path) -> Result<Vec<String>, VmError> {
        let file = tokio::fs::File::open(blob).await.map_err(VmError::io("read", blob))?;
        let body = futures_util::stream::try_unfold(file, |mut file| async move {
            let mut buf = vec![0; CHUNK];
            let n = file.read(&mut buf).await?;
            buf.truncate(n);
            Ok::<_, io::Error>((n > 0).then(|| (Bytes::from(buf), file)))
        });
        let options = ImportImageOptionsBuilder::new().quiet(true).build();
        let mut progress = self
            .docker()?
            .import_image(options, bollard::body_try_stream(body), None);
        let mut loaded = Vec::new();
        while let Some(info) = progress.next().await {
            let info = info.map_err(docker_error("load an image part"))?;
            for line in info.stream.iter().flat_map(|s| s.lines()) {
                if let Some(id) = line.trim().strip_prefix("Loaded image ID: ") {
                    loaded.push(id.to_owned());
                }
            }
        }
        Ok(loaded)
    }
}

/// Seconds since the epoch of a time as the daemon writes it (RFC 3339:
/// `2024-05-01T10:00:00.123456789Z`, or with an offset `+02:00`).
fn unix_seconds(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't') || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |from: usize, to: usize| -> Option<i64> {
        let digits = text.get(from..to)?;
        digits
            .bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| digits.parse().ok())?
    };
    let (year, month, day) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (hour, minute, second) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    let rest = text[19..].strip_prefix('.').map_or(&text[19..], |frac| {
        frac.trim_start_matches(|c: char| c.is_ascii_digit())
    });
    let offset = match rest.as_bytes() {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let minutes = num(text.len() - 5, text.len() - 3)? * 60 + num(text.len() - 2, text.len())?;
            if *sign == b'+' {
                minutes * 60
            } else {
                -minutes * 60
            }
        }
        _ => return None,
    };
    // Days since 1970-01-01 of a proleptic Gregorian date.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    let days = era * 146_097 + day_of_era - 719_468;
    Some(days * 86_400 + hour * 3_600 + minute * 60 + second - offset)
}

#[cfg(test)]
mod tests {
    use super::unix_seconds;

    #[test]
    fn daemon_times_are_read() {
        assert_eq!(unix_seconds("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(unix_seconds("2026-12-02T00:13:45.446213271Z"), Some(1_796_170_425));
        assert_eq!(unix_seconds("2026-12-02T02:13:45+02:00"), Some(1_796_170_425));
        assert_eq!(unix_seconds("2000-02-29T12:00:00-01:30"), Some(951_831_000));
        assert!(unix_seconds("0001-01-01T00:00:00Z").is_some_and(|t| t < 0));
        assert_eq!(unix_seconds("yesterday"), None);
        assert_eq!(unix_seconds("2026-12-02T00:13:45"), None);
    }
}

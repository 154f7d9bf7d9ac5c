use std::path::PathBuf;

use crate::backend::SnapshotId;

/// The backend cannot run anything here; `hm run` exits 4 before any step
/// starts.
#[derive(Debug, thiserror::Error)]
pub enum BackendUnavailable {
    #[error("image `{name}` not found; pull it with `hm image pull {name}` (or run without `--pull never`), import a root filesystem with `hm image import {name} PATH` (a directory or a tarball, e.g. from `debootstrap` or `docker export`), or use the `host` image")]
    ImageNotFound { name: String },
    #[error("image `{name}` is damaged; import it again with `hm image import {name} PATH`")]
    ImageDamaged {
        name: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the sandbox backend cannot run here: {what} failed; it needs Linux user and mount namespaces and overlayfs (kernel 5.11 or newer for unprivileged use)")]
    Namespaces {
        what: String,
        #[source]
        source: Option<VmError>,
    },
    #[error("the docker backend cannot reach a Docker daemon: {detail}; start Docker (or Podman's API socket), or set DOCKER_HOST")]
    Docker { detail: String },
    #[error("image `{name}` is not in the Docker daemon and could not be pulled: {source}; pull it (`docker pull {name}`) or import one (`docker import ROOTFS.tar {name}`)")]
    DockerImage {
        name: String,
        #[source]
        source: DockerPullError,
    },
    #[error("the `host` image is only for the sandbox backend; name an image for the docker backend")]
    DockerHost,
    #[error("cache directory `{}` is not usable", crate::os_path::escaped(path))]
    CacheDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A VM operation failed; for a step this is an infrastructure error, not a
/// failure of its command.
#[derive(Debug, thiserror::Error)]
pub enum VmError {
    #[error("cannot {op} `{}`", crate::os_path::escaped(path))]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    #[error("snapshot `{0}` does not exist")]
    UnknownSnapshot(SnapshotId),
    #[error("image `{name}` was removed or replaced while the build ran")]
    ImageChanged { name: String },
    #[error("the stored snapshot is incomplete: {0}")]
    StoredMissing(String),
    #[error(transparent)]
    Docker(#[from] DockerError),
    #[error("the cache directory `{}` is full: free some space, or remove cache entries with `hm cache prune` or `hm cache clean`", crate::os_path::escaped(dir))]
    DiskFull { dir: PathBuf },
    /// The terminal lent to a shell could not be used.
    #[error("cannot {op} the terminal")]
    Terminal {
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
}

/// The sandbox backend's helper could not set a step up or run it.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("cannot start the sandbox helper `{}`", crate::os_path::escaped(helper))]
    Spawn {
        helper: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The helper reported a failure: its stage, and its message (text
    /// from another process).
    #[error("sandbox setup failed at `{stage}`: {message}")]
    Setup { stage: String, message: String },
    #[error("the sandbox helper ended ({status}) without reporting a result")]
    NoResult { status: String },
    /// A sandbox was used against its contract.
    #[error("sandbox setup failed at `{stage}`: {why}")]
    Misuse { stage: &'static str, why: &'static str },
}

/// Why the Docker daemon could not pull an image.
#[derive(Debug, thiserror::Error)]
pub enum DockerPullError {
    #[error(transparent)]
    Credentials(#[from] crate::credentials::CredentialsError),
    #[error(transparent)]
    Daemon(#[from] bollard::errors::Error),
    #[error("the daemon reports no id for it")]
    NoId,
}

/// The Docker daemon did not do what the docker backend asked.
#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    /// The API call failed.
    #[error("the Docker daemon failed to {op}")]
    Api {
        op: &'static str,
        #[source]
        source: bollard::errors::Error,
    },
    /// It answered, but not as it should have.
    #[error("the Docker daemon failed to {op}: {why}")]
    Unexpected { op: &'static str, why: &'static str },
    /// A command the backend ran in a container failed.
    #[error("the Docker daemon failed to {op}: exit code {code}: {output}")]
    Command {
        op: &'static str,
        code: i64,
        output: String,
    },
}

impl VmError {
    pub(crate) fn terminal(op: &'static str) -> impl FnOnce(std::io::Error) -> Self {
        move |source| Self::Terminal { op, source }
    }

    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { op, path, source }
    }
}

/// Why an image could not be imported, listed or removed.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("invalid image name `{0}`: use letters, digits and `.-_:/@`, and not `host`")]
    InvalidName(String),
    #[error("image `{0}` not found (see `hm image ls`)")]
    NotFound(String),
    #[error("`{}` is neither a directory nor a tar archive", crate::os_path::escaped(.0))]
    NotARootfs(PathBuf),
    #[error("`{}` does not exist", crate::os_path::escaped(.0))]
    Missing(PathBuf),
    #[error("the import was interrupted; its partial copy is removed")]
    Interrupted,
    #[error("cannot import the image in `{}`: {source}", crate::os_path::escaped(path))]
    BadImage {
        path: PathBuf,
        #[source]
        source: BadImage,
    },
    #[error("cannot read `{}`: permission denied; import as root, or from a tarball made as root (`sudo tar -C {} -c . > rootfs.tar`)", crate::os_path::escaped(path), crate::os_path::escaped(dir))]
    Unreadable {
        /// The entry of the source directory that could not be read.
        path: PathBuf,
        /// The directory being imported.
        dir: PathBuf,
    },
    #[error("cannot {op} `{}`", crate::os_path::escaped(path))]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// What is wrong with an image file or directory being imported.
#[derive(Debug, thiserror::Error)]
pub enum BadImage {
    #[error(transparent)]
    Read(#[from] crate::oci::layout::ReadImageError),
    #[error(transparent)]
    Unpack(#[from] crate::oci::layout::UnpackImageError),
}

impl ImageError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { op, path, source }
    }
}

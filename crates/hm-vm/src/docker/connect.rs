//! Finding and reaching a Docker-compatible daemon: `DOCKER_HOST`, else the
//! usual sockets of Docker and Podman, rootful and rootless.

use std::path::PathBuf;
use std::time::Duration;

use bollard::{Docker, API_DEFAULT_VERSION};

use crate::error::BackendUnavailable;

/// How long one API call may take before the daemon counts as hung. Long
/// operations (pulls, uploads, commits) stream and are not bound by it.
const TIMEOUT: Duration = Duration::from_secs(600);

/// Where to look for a Docker-compatible daemon (read from the environment
/// by the caller).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DockerDaemon {
    /// `DOCKER_HOST`: when set, the one address tried.
    pub host: Option<String>,
    /// `XDG_RUNTIME_DIR` (else `/run/user/UID`): rootless daemons' sockets.
    pub runtime_dir: Option<PathBuf>,
    /// The home directory: Docker Desktop's sockets.
    pub home: Option<PathBuf>,
}

impl DockerDaemon {
    /// The daemon addresses tried, in order: `host` alone when set.
    pub(crate) fn candidates(&self) -> Vec<String> {
        if let Some(host) = &self.host {
            return vec![host.clone()];
        }
        let mut sockets: Vec<PathBuf> = vec!["/var/run/docker.sock".into(), "/run/docker.sock".into()];
        let runtime = self
            .runtime_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(format!("/run/user/{}", nix::unistd::getuid())));
        sockets.push(runtime.join("docker.sock"));
        if let Some(home) = &self.home {
            sockets.push(home.join(".docker/run/docker.sock"));
            sockets.push(home.join(".docker/desktop/docker.sock"));
        }
        sockets.push(runtime.join("podman/podman.sock"));
        sockets.push("/run/podman/podman.sock".into());
        sockets.into_iter().map(|p| format!("unix://{}", p.display())).collect()
    }
}

/// Connects to the first address that answers a ping, with the API version
/// both sides speak.
pub(crate) async fn connect(daemon: &DockerDaemon) -> Result<Docker, BackendUnavailable> {
    let candidates = daemon.candidates();
    let explicit = daemon.host.is_some();
    let mut tried = Vec::new();
    for address in &candidates {
        if let Some(path) = address.strip_prefix("unix://") {
            if !explicit && !std::path::Path::new(path).exists() {
                continue;
            }
        }
        match try_connect(address).await {
            Ok(docker) => return Ok(docker),
            Err(reason) => tried.push(format!("{address}: {reason}")),
        }
    }
    let detail = if tried.is_empty() {
        "no daemon socket found (looked for Docker's and Podman's usual sockets)".to_owned()
    } else {
        tried.join("; ")
    };
    Err(BackendUnavailable::Docker { detail })
}

/// Why one daemon address did not answer.
#[derive(Debug, thiserror::Error)]
enum ConnectError {
    #[error("unsupported address (use unix:// or tcp://)")]
    Unsupported,
    #[error("{}{}", .0, permission_hint(.0))]
    Daemon(#[from] bollard::errors::Error),
    #[error("no answer within 10 s")]
    Timeout,
}

async fn try_connect(address: &str) -> Result<Docker, ConnectError> {
    let docker = if let Some(path) = address.strip_prefix("unix://") {
        Docker::connect_with_unix(path, TIMEOUT.as_secs(), API_DEFAULT_VERSION)?
    } else if address.starts_with("tcp://") || address.starts_with("http://") {
        Docker::connect_with_http(address, TIMEOUT.as_secs(), API_DEFAULT_VERSION)?
    } else {
        return Err(ConnectError::Unsupported);
    };
    // A daemon that never answers must not hang `hm`.
    let ping = tokio::time::timeout(Duration::from_secs(10), docker.ping()).await;
    ping.map_err(|_| ConnectError::Timeout)??;
    Ok(docker.negotiate_version().await?)
}

/// What to do about a connection error, in a user's words (permission
/// problems are common).
fn permission_hint(err: &bollard::errors::Error) -> &'static str {
    let text = err.to_string();
    match text.contains("Permission denied") || text.contains("permission denied") {
        true => " (add yourself to the `docker` group, or use a rootless daemon)",
        false => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_host_alone_when_set() {
        let daemon = DockerDaemon {
            host: Some("unix:///tmp/hm-test.sock".to_owned()),
            ..DockerDaemon::default()
        };
        assert_eq!(daemon.candidates(), ["unix:///tmp/hm-test.sock"]);
        let daemon = DockerDaemon {
            home: Some("/home/u".into()),
            runtime_dir: Some("/run/user/7".into()),
            ..DockerDaemon::default()
        };
        let found = daemon.candidates();
        assert_eq!(found[0], "unix:///var/run/docker.sock");
        assert!(found.contains(&"unix:///run/user/7/podman/podman.sock".to_owned()));
        assert!(found.contains(&"unix:///home/u/.docker/desktop/docker.sock".to_owned()));
    }
}

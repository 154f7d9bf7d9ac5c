//! Finding and reaching a Docker-compatible daemon: `DOCKER_HOST`, else the
//! usual sockets of Docker and Podman, rootful and rootless.

use std::path::PathBuf;
use std::time::Duration;

use bollard::{Docker, API_DEFAULT_VERSION};

use crate::error::BackendUnavailable;

/// How long one API call may take before the daemon counts as hung. Long
/// operations (pulls, uploads, commits) stream and are not bound by it.
const TIMEOUT: Duration = Duration::from_secs(600);

/// The daemon addresses tried, in order: `DOCKER_HOST` alone when set.
pub(crate) fn candidates() -> Vec<String> {
    if let Some(host) = std::env::var("DOCKER_HOST").ok().filter(|h| !h.is_empty()) {
        return vec![host];
    }
    let mut sockets: Vec<PathBuf> = vec!["/var/run/docker.sock".into(), "/run/docker.sock".into()];
    let runtime = std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(format!("/run/user/{}", nix::unistd::getuid())));
    sockets.push(runtime.join("docker.sock"));
    if let Some(home) = std::env::var_os("HOME").map(PathBuf::from) {
        sockets.push(home.join(".docker/run/docker.sock"));
        sockets.push(home.join(".docker/desktop/docker.sock"));
    }
    sockets.push(runtime.join("podman/podman.sock"));
    sockets.push("/run/podman/podman.sock".into());
    sockets.into_iter().map(|p| format!("unix://{}", p.display())).collect()
}

/// Connects to the first address that answers a ping, with the API version
/// both sides speak.
pub(crate) async fn connect() -> Result<Docker, BackendUnavailable> {
    let candidates = candidates();
    let explicit = std::env::var("DOCKER_HOST").is_ok_and(|h| !h.is_empty());
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

async fn try_connect(address: &str) -> Result<Docker, String> {
    let docker = if let Some(path) = address.strip_prefix("unix://") {
        Docker::connect_with_unix(path, TIMEOUT.as_secs(), API_DEFAULT_VERSION)
    } else if address.starts_with("tcp://") || address.starts_with("http://") {
        Docker::connect_with_http(address, TIMEOUT.as_secs(), API_DEFAULT_VERSION)
    } else {
        return Err("unsupported address (use unix:// or tcp://)".to_owned());
    }
    .map_err(|e| e.to_string())?;
    // A daemon that never answers must not hang `hm`.
    let ping = tokio::time::timeout(Duration::from_secs(10), docker.ping()).await;
    match ping {
        Ok(Ok(_)) => {}
        Ok(Err(err)) => return Err(describe(&err)),
        Err(_) => return Err("no answer within 10 s".to_owned()),
    }
    docker.negotiate_version().await.map_err(|e| describe(&e))
}

/// A connection error in a user's words (permission problems are common).
fn describe(err: &bollard::errors::Error) -> String {
    let text = err.to_string();
    if text.contains("Permission denied") || text.contains("permission denied") {
        format!("{text} (add yourself to the `docker` group, or use a rootless daemon)")
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_host_alone_when_set() {
        // One test touches DOCKER_HOST, so no other test races with it.
        let saved = std::env::var_os("DOCKER_HOST");
        std::env::set_var("DOCKER_HOST", "unix:///tmp/hm-test.sock");
        assert_eq!(candidates(), ["unix:///tmp/hm-test.sock"]);
        std::env::remove_var("DOCKER_HOST");
        let found = candidates();
        assert_eq!(found[0], "unix:///var/run/docker.sock");
        assert!(found.iter().any(|c| c.ends_with("podman/podman.sock")));
        if let Some(saved) = saved {
            std::env::set_var("DOCKER_HOST", saved);
        }
    }
}

//! Registry credentials for pulling an image, read from the Docker client's
//! configuration (`config.json` in the directory the caller names:
//! `$DOCKER_CONFIG`, else `~/.docker`):
//! a credential helper for the registry, the default credential store, or
//! the `auths` entry. One reading for both backends: the docker backend
//! hands them to the daemon, the sandbox's puller to the registry.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine;
use serde::Deserialize;

/// The key Docker Hub's credentials are stored under.
const DOCKER_HUB: &str = "https://index.docker.io/v1/";

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConfigFile {
    #[serde(default)]
    auths: HashMap<String, AuthEntry>,
    #[serde(default)]
    creds_store: Option<String>,
    #[serde(default)]
    cred_helpers: HashMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    identitytoken: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct HelperReply {
    username: String,
    secret: String,
}

/// What the configuration holds for a registry.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    /// A user name and password (or access token used as one).
    Basic { username: String, password: String },
    /// An OAuth2 refresh token (`identitytoken`, or a helper's `<token>`).
    IdentityToken(String),
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never a secret in a log.
        match self {
            Credentials::Basic { username, .. } => write!(f, "Basic({username}, ***)"),
            Credentials::IdentityToken(_) => f.write_str("IdentityToken(***)"),
        }
    }
}

/// The registry an image reference names: its first component when that
/// looks like a host (`localhost`, a dot or a port), else Docker Hub.
pub(crate) fn registry_of(image: &str) -> &str {
    match image.split_once('/') {
        Some((first, _)) if first == "localhost" || first.contains('.') || first.contains(':') => first,
        _ => "docker.io",
    }
}

/// Why the Docker configuration's credentials could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("cannot read `{}`", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`{}` is not valid", path.display())]
    Invalid {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("the `auth` of `{server}` in `{}` is not base64", path.display())]
    NotBase64 {
        server: String,
        path: PathBuf,
        #[source]
        source: base64::DecodeError,
    },
    #[error("the `auth` of `{server}` in `{}` is not `user:password`", path.display())]
    NotUserPassword { server: String, path: PathBuf },
    #[error("cannot run the credential helper `{program}`")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the credential helper `{program}` failed")]
    Helper {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the credential helper `{program}` answered something else")]
    Reply {
        program: String,
        #[source]
        source: serde_json::Error,
    },
}

/// The credentials to pull `image` with, if the configuration in
/// `config_dir` has any.
pub(crate) fn credentials(config_dir: Option<&Path>, image: &str) -> Result<Option<Credentials>, CredentialsError> {
    for_registry(config_dir, registry_of(image))
}

/// The key `registry` (`docker.io`, `host:port`) is stored under.
pub(crate) fn server_key(registry: &str) -> &str {
    if registry == "docker.io" {
        DOCKER_HUB
    } else {
        registry
    }
}

/// The credentials the configuration in `config_dir` has for `registry`
/// (`docker.io`, `ghcr.io`, `host:port`).
pub(crate) fn for_registry(config_dir: Option<&Path>, registry: &str) -> Result<Option<Credentials>, CredentialsError> {
    let Some(path) = config_dir.map(|d| d.join("config.json")) else {
        return Ok(None);
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(CredentialsError::Read { path, source }),
    };
    let config: ConfigFile = match serde_json::from_str(&text) {
        Ok(config) => config,
        Err(source) => return Err(CredentialsError::Invalid { path, source }),
    };
    let server = server_key(registry);
    if let Some(helper) = config.cred_helpers.get(registry).or(config.creds_store.as_ref()) {
        if let Some(found) = from_helper(helper, server)? {
            return Ok(Some(found));
        }
    }
    let entry = config.auths.iter().find(|(key, _)| normalize(key) == normalize(server));
    let Some((_, entry)) = entry else { return Ok(None) };
    if let Some(token) = &entry.identitytoken {
        return Ok(Some(Credentials::IdentityToken(token.clone())));
    }
    if let Some(auth) = &entry.auth {
        let decoded = match base64::engine::general_purpose::STANDARD.decode(auth.trim()) {
            Ok(decoded) => String::from_utf8_lossy(&decoded).into_owned(),
            Err(source) => {
                let server = server.to_owned();
                return Err(CredentialsError::NotBase64 { server, path, source });
            }
        };
        let Some((user, password)) = decoded.split_once(':') else {
            let server = server.to_owned();
            return Err(CredentialsError::NotUserPassword { server, path });
        };
        return Ok(Some(Credentials::Basic {
            username: user.to_owned(),
            password: password.to_owned(),
        }));
    }
    Ok(None)
}

/// A registry key without scheme and path: `https://r.io/v1/` is `r.io`.
fn normalize(key: &str) -> &str {
    let key = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let host = key.split('/').next().unwrap_or(key);
    if host == "index.docker.io" || host == "registry-1.docker.io" {
        "docker.io"
    } else {
        host
    }
}

/// Asks `docker-credential-HELPER get` for `server`'s credentials.
fn from_helper(helper: &str, server: &str) -> Result<Option<Credentials>, CredentialsError> {
    let program = format!("docker-credential-{helper}");
    let mut command = Command::new(&program);
    crate::child::die_with_parent(&mut command);
    let child = command
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(source) => return Err(CredentialsError::Spawn { program, source }),
    };
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(server.as_bytes());
    }
    let output = match child.wait_with_output() {
        Ok(output) => output,
        Err(source) => return Err(CredentialsError::Helper { program, source }),
    };
    if !output.status.success() {
        // Helpers answer "credentials not found" with a failure.
        return Ok(None);
    }
    let reply: HelperReply = match serde_json::from_slice(&output.stdout) {
        Ok(reply) => reply,
        Err(source) => return Err(CredentialsError::Reply { program, source }),
    };
    Ok(Some(if reply.username == "<token>" {
        Credentials::IdentityToken(reply.secret)
    } else {
        Credentials::Basic {
            username: reply.username,
            password: reply.secret,
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registries_are_read_off_references() {
        assert_eq!(registry_of("ubuntu:24.04"), "docker.io");
        assert_eq!(registry_of("library/ubuntu"), "docker.io");
        assert_eq!(registry_of("127.0.0.1:5000/team/app:1"), "127.0.0.1:5000");
        assert_eq!(registry_of("ghcr.io/o/r"), "ghcr.io");
        assert_eq!(registry_of("localhost/x"), "localhost");
        assert_eq!(normalize("https://index.docker.io/v1/"), "docker.io");
        assert_eq!(normalize("http://127.0.0.1:5000"), "127.0.0.1:5000");
    }
}

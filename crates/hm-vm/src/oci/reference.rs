//! Image references as Docker writes them, and where to fetch them from.

use std::net::IpAddr;

use oci_client::Reference;

/// Why text is not an image reference.
#[derive(Debug, thiserror::Error)]
pub enum ReferenceError {
    #[error("a reference has no spaces and is not empty")]
    Blank,
    #[error(transparent)]
    Syntax(#[from] oci_client::ParseError),
    #[error("repository names are lowercase")]
    Uppercase,
}

/// A reference parsed and made canonical: `ubuntu:24.04` is
/// `docker.io/library/ubuntu:24.04`, a reference without tag or digest is
/// `:latest`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageName {
    reference: Reference,
}

impl ImageName {
    /// Parses `text`; the error says what is wrong with it.
    pub fn parse(text: &str) -> Result<Self, ReferenceError> {
        if text.trim() != text || text.is_empty() {
            return Err(ReferenceError::Blank);
        }
        let reference: Reference = text.parse()?;
        if reference.repository().chars().any(|c| c.is_ascii_uppercase()) {
            return Err(ReferenceError::Uppercase);
        }
        Ok(ImageName { reference })
    }

    /// The canonical form, under which a pulled image is stored.
    pub fn canonical(&self) -> String {
        self.reference.whole()
    }

    /// The registry as the reference names it (`docker.io`, `ghcr.io`,
    /// `127.0.0.1:5000`).
    pub fn registry(&self) -> &str {
        self.reference.registry()
    }

    /// The repository within the registry (`library/ubuntu`).
    pub fn repository(&self) -> &str {
        self.reference.repository()
    }

    /// The digest the reference pins, if any.
    pub fn digest(&self) -> Option<&str> {
        self.reference.digest()
    }

    /// The same image fetched from `host` (a mirror) instead.
    pub(crate) fn via(&self, host: Option<&str>) -> Reference {
        let mut reference = self.reference.clone();
        if let Some(host) = host {
            reference.set_mirror_registry(host.to_owned());
        }
        reference
    }

    /// The same repository at `digest`, on the same host.
    pub(crate) fn at(&self, digest: &str, host: Option<&str>) -> Reference {
        let mut reference = self.reference.clone_with_digest(digest.to_owned());
        if let Some(host) = host {
            reference.set_mirror_registry(host.to_owned());
        }
        reference
    }
}

impl std::fmt::Display for ImageName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.canonical())
    }
}

/// The host the protocol talks to for a registry as references name it.
pub(crate) fn endpoint(registry: &str) -> &str {
    if registry == "docker.io" {
        "index.docker.io"
    } else {
        registry
    }
}

/// Whether `host` (`name`, `name:port`, `[::1]:port`) is this machine's
/// loopback, where Docker allows plain HTTP without configuration.
pub fn is_loopback(host: &str) -> bool {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return ip.is_loopback();
    }
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(rest),
        None => match host.rsplit_once(':') {
            Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) => name,
            _ => host,
        },
    };
    name == "localhost" || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_made_canonical_as_docker_does() {
        let cases = [
            ("ubuntu:24.04", "docker.io/library/ubuntu:24.04"),
            ("ubuntu", "docker.io/library/ubuntu:latest"),
            ("team/app:1", "docker.io/team/app:1"),
            ("ghcr.io/o/i:tag", "ghcr.io/o/i:tag"),
            ("127.0.0.1:5000/demo:1", "127.0.0.1:5000/demo:1"),
            ("localhost/x", "localhost/x:latest"),
        ];
        for (text, canonical) in cases {
            assert_eq!(ImageName::parse(text).unwrap().canonical(), canonical, "{text}");
        }
        let pinned = format!("alpine@sha256:{}", "a".repeat(64));
        let name = ImageName::parse(&pinned).unwrap();
        assert_eq!(name.digest(), Some(format!("sha256:{}", "a".repeat(64)).as_str()));
        assert_eq!(name.registry(), "docker.io");
        assert_eq!(name.repository(), "library/alpine");
        for bad in ["", "UPPER/case", "a b", "x:"] {
            assert!(ImageName::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn loopback_hosts() {
        for host in [
            "localhost",
            "localhost:5000",
            "127.0.0.1:5000",
            "127.9.9.9",
            "[::1]:5000",
            "::1",
        ] {
            assert!(is_loopback(host), "{host}");
        }
        for host in ["example.com", "10.0.0.1:5000", "ghcr.io", "localhost.example"] {
            assert!(!is_loopback(host), "{host}");
        }
    }
}

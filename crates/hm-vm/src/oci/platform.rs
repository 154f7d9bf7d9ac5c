//! Platforms (`linux/amd64`, `linux/arm64/v8`) and the pick from an index.

use serde::Deserialize;

/// Why text is not a platform.
#[derive(Debug, thiserror::Error)]
#[error("`{text}` is not a platform (os/arch or os/arch/variant, as linux/arm64/v8)")]
pub struct ParsePlatformError {
    pub text: String,
}

/// An index has no image for the platform wanted.
#[derive(Debug, thiserror::Error)]
#[error("it has no image for {want} (it has {})", listed(available))]
pub struct NoPlatformImage {
    pub want: Platform,
    /// The platforms it has, as `os/arch[/variant]`.
    pub available: Vec<String>,
}

fn listed(platforms: &[String]) -> String {
    match platforms.is_empty() {
        true => "none".to_owned(),
        false => platforms.join(", "),
    }
}

/// An operating system, architecture and optional variant, as OCI names
/// them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl Platform {
    /// This machine's platform.
    pub fn host() -> Self {
        let (architecture, variant) = match std::env::consts::ARCH {
            "x86_64" => ("amd64", None),
            "aarch64" => ("arm64", Some("v8")),
            "arm" => ("arm", Some("v7")),
            "x86" => ("386", None),
            "powerpc64" => ("ppc64le", None),
            "s390x" => ("s390x", None),
            "riscv64" => ("riscv64", None),
            other => (other, None),
        };
        Platform {
            os: std::env::consts::OS.to_owned(),
            architecture: architecture.to_owned(),
            variant: variant.map(str::to_owned),
        }
    }
}

impl std::str::FromStr for Platform {
    type Err = ParsePlatformError;

    /// Parses `os/arch[/variant]`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = text.split('/').collect();
        match parts[..] {
            [os, architecture] if !os.is_empty() && !architecture.is_empty() => Ok(Platform {
                os: os.to_owned(),
                architecture: architecture.to_owned(),
                variant: None,
            }),
            [os, architecture, variant] if !os.is_empty() && !architecture.is_empty() && !variant.is_empty() => {
                Ok(Platform {
                    os: os.to_owned(),
                    architecture: architecture.to_owned(),
                    variant: Some(variant.to_owned()),
                })
            }
            _ => Err(ParsePlatformError { text: text.to_owned() }),
        }
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(variant) = &self.variant {
            write!(f, "/{variant}")?;
        }
        Ok(())
    }
}

/// A manifest an index lists.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct IndexEntry {
    pub digest: String,
    #[serde(default)]
    pub platform: Option<EntryPlatform>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct EntryPlatform {
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub variant: Option<String>,
}

impl EntryPlatform {
    fn show(&self) -> String {
        match &self.variant {
            Some(variant) => format!("{}/{}/{variant}", self.os, self.architecture),
            None => format!("{}/{}", self.os, self.architecture),
        }
    }
}

/// The entry of `entries` for `want`: same os and architecture, and the
/// same variant when both name one (`arm64` without a variant is `v8`).
/// Entries without a platform (attestations) never match.
pub(crate) fn pick<'a>(entries: &'a [IndexEntry], want: &Platform) -> Result<&'a IndexEntry, NoPlatformImage> {
    let normal = |arch: &str, variant: Option<&str>| -> Option<String> {
        match (arch, variant) {
            ("arm64", None) => Some("v8".to_owned()),
            (_, v) => v.map(str::to_owned),
        }
    };
    let want_variant = normal(&want.architecture, want.variant.as_deref());
    let matches = |p: &EntryPlatform| p.os == want.os && p.architecture == want.architecture;
    let exact = entries.iter().find(|e| {
        e.platform
            .as_ref()
            .is_some_and(|p| matches(p) && normal(&p.architecture, p.variant.as_deref()) == want_variant)
    });
    // An index that names no variant for a variant-less request, or the
    // other way round, still has the one image for the architecture.
    exact
        .or_else(|| entries.iter().find(|e| e.platform.as_ref().is_some_and(matches)))
        .ok_or_else(|| NoPlatformImage {
            want: want.clone(),
            available: entries
                .iter()
                .filter_map(|e| e.platform.as_ref())
                .filter(|p| p.os != "unknown")
                .map(EntryPlatform::show)
                .collect(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(digest: &str, os: &str, arch: &str, variant: Option<&str>) -> IndexEntry {
        IndexEntry {
            digest: digest.to_owned(),
            platform: Some(EntryPlatform {
                os: os.to_owned(),
                architecture: arch.to_owned(),
                variant: variant.map(str::to_owned),
            }),
        }
    }

    #[test]
    fn the_matching_platform_is_picked() {
        let entries = vec![
            entry("arm7", "linux", "arm", Some("v7")),
            entry("arm64", "linux", "arm64", Some("v8")),
            entry("amd", "linux", "amd64", None),
            entry("att", "unknown", "unknown", None),
        ];
        let pick_for = |text: &str| pick(&entries, &text.parse().unwrap()).map(|e| e.digest.clone());
        assert_eq!(pick_for("linux/amd64").unwrap(), "amd");
        assert_eq!(pick_for("linux/arm64").unwrap(), "arm64");
        assert_eq!(pick_for("linux/arm64/v8").unwrap(), "arm64");
        assert_eq!(pick_for("linux/arm/v7").unwrap(), "arm7");
        let err = pick_for("linux/s390x").unwrap_err();
        assert_eq!(
            err.to_string(),
            "it has no image for linux/s390x (it has linux/arm/v7, linux/arm64/v8, linux/amd64)"
        );
        assert_eq!(
            "linux".parse::<Platform>().unwrap_err().to_string(),
            "`linux` is not a platform (os/arch or os/arch/variant, as linux/arm64/v8)"
        );
        assert_eq!(
            "linux/arm64/v8".parse::<Platform>().unwrap().to_string(),
            "linux/arm64/v8"
        );
        let host = Platform::host();
        assert_eq!(host.os, "linux");
    }
}

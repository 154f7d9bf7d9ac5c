//! Subordinate ids: the ranges of uids and gids `/etc/subuid` and
//! `/etc/subgid` give an ordinary user, mapped into a rootless step's user
//! namespace as rootless Podman does (root inside is the caller, ids 1 and
//! up are the range), so that steps may switch users (`apt` runs its
//! downloads as `_apt`, uid 42). Only the setuid `newuidmap` and
//! `newgidmap` (package `uidmap`) may write such a map; without a range or
//! without them, root inside is the caller and no other id exists.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

const SUBUID: &str = "/etc/subuid";
const SUBGID: &str = "/etc/subgid";

/// Where `newuidmap` and `newgidmap` are looked for after `PATH`.
const TOOL_DIRS: [&str; 4] = ["/usr/bin", "/usr/sbin", "/bin", "/sbin"];

/// A range of host ids: `start` to `start + count - 1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct IdRange {
    pub start: u32,
    pub count: u32,
}

/// Why the caller's subordinate ids cannot be used: one line for the user,
/// saying what to add or install.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum NoSubIds {
    #[error(
        "no subordinate ids for user {user} in {missing}; steps that switch users (apt) will fail: \
         add '{user}:{start}:65536' to {to} (usermod {usermod} {user}){install}"
    )]
    NoRange {
        user: String,
        /// The files without a range.
        missing: String,
        /// A free range's start.
        start: u64,
        /// Which files to add it to.
        to: String,
        usermod: String,
        /// ` and install uidmap` when the tools are missing too.
        install: &'static str,
    },
    #[error(
        "newuidmap and newgidmap are not installed, so the subordinate ids of user {user} cannot be used; \
         steps that switch users (apt) will fail: install uidmap"
    )]
    NoTools { user: String },
}

/// The caller's subordinate ids and the programs that map them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SubIds {
    pub uids: IdRange,
    pub gids: IdRange,
    #[serde(with = "crate::os_path")]
    pub newuidmap: PathBuf,
    #[serde(with = "crate::os_path")]
    pub newgidmap: PathBuf,
}

impl SubIds {
    /// The caller's ranges, or the note that says what to add (one line,
    /// for the user); the tools are looked for in `search_path` (`PATH`),
    /// then the usual directories.
    pub(crate) fn find(uid: u32, search_path: &OsStr) -> Result<SubIds, NoSubIds> {
        let name = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
            .ok()
            .flatten()
            .map(|user| user.name);
        let read = |path| fs::read_to_string(path).unwrap_or_default();
        let (subuid, subgid) = (read(SUBUID), read(SUBGID));
        let tools = [tool("newuidmap", search_path), tool("newgidmap", search_path)];
        decide(name.as_deref(), uid, &subuid, &subgid, tools)
    }
}

/// What [`SubIds::find`] concludes from the files' contents and the tools
/// found.
fn decide(
    name: Option<&str>,
    uid: u32,
    subuid: &str,
    subgid: &str,
    tools: [Option<PathBuf>; 2],
) -> Result<SubIds, NoSubIds> {
    let user = name.map_or_else(|| uid.to_string(), str::to_owned);
    let (uids, gids) = (range_of(subuid, name, uid), range_of(subgid, name, uid));
    let (Some(uids), Some(gids)) = (uids, gids) else {
        let missing = match (uids, gids) {
            (None, None) => format!("{SUBUID} and {SUBGID}"),
            (None, Some(_)) => SUBUID.to_owned(),
            _ => SUBGID.to_owned(),
        };
        let start = free_start(subuid, subgid);
        let end = start + 65535;
        let (to, usermod) = match (uids, gids) {
            (None, None) => (
                "both".to_owned(),
                format!("--add-subuids {start}-{end} --add-subgids {start}-{end}"),
            ),
            (None, Some(_)) => (SUBUID.to_owned(), format!("--add-subuids {start}-{end}")),
            _ => (SUBGID.to_owned(), format!("--add-subgids {start}-{end}")),
        };
        let install = match tools.iter().all(Option::is_some) {
            true => "",
            false => " and install uidmap",
        };
        return Err(NoSubIds::NoRange {
            user,
            missing,
            start,
            to,
            usermod,
            install,
        });
    };
    let [Some(newuidmap), Some(newgidmap)] = tools else {
        return Err(NoSubIds::NoTools { user });
    };
    Ok(SubIds {
        uids,
        gids,
        newuidmap,
        newgidmap,
    })
}

/// The first range of `name` (or of the numeric `uid`) in the contents of
/// a subordinate id file (`owner:start:count` lines).
fn range_of(file: &str, name: Option<&str>, uid: u32) -> Option<IdRange> {
    let uid = uid.to_string();
    file.lines().find_map(|line| {
        let mut fields = line.trim().split(':');
        let (owner, start, count) = (fields.next()?, fields.next()?, fields.next()?);
        if fields.next().is_some() || !(Some(owner) == name || owner == uid) {
            return None;
        }
        let range = IdRange {
            start: start.parse().ok()?,
            count: count.parse().ok()?,
        };
        // Ids inside run from 1 to `count`; the map must fit in 32 bits.
        let fits = range.count > 0 && range.start.checked_add(range.count).is_some() && range.count < u32::MAX;
        fits.then_some(range)
    })
}

/// A start for a new 65536-id range that overlaps none in either file: the
/// usual 100000, or the end of the highest range given.
fn free_start(subuid: &str, subgid: &str) -> u64 {
    let ends = subuid.lines().chain(subgid.lines()).filter_map(|line| {
        let mut fields = line.trim().split(':').skip(1);
        let start: u64 = fields.next()?.parse().ok()?;
        let count: u64 = fields.next()?.parse().ok()?;
        Some(start + count)
    });
    ends.fold(100_000, u64::max)
}

/// The path of the executable `name`, in `search_path` or the usual
/// directories.
pub(super) fn tool(name: &str, search_path: &OsStr) -> Option<PathBuf> {
    let dirs = std::env::split_paths(search_path).chain(TOOL_DIRS.iter().map(PathBuf::from));
    dirs.map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    path.is_absolute() && fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tools() -> [Option<PathBuf>; 2] {
        [Some("/usr/bin/newuidmap".into()), Some("/usr/bin/newgidmap".into())]
    }

    #[test]
    fn a_range_is_found_by_name_or_by_uid() {
        let subuid = "# comment\nbob:300000:65536\nalice:100000:65536\nalice:400000:10\n";
        let subgid = "1000:200000:1000\n";
        let ids = decide(Some("alice"), 1000, subuid, subgid, tools()).unwrap();
        assert_eq!(
            ids.uids,
            IdRange {
                start: 100000,
                count: 65536
            }
        );
        assert_eq!(
            ids.gids,
            IdRange {
                start: 200000,
                count: 1000
            }
        );
        assert_eq!(ids.newuidmap, Path::new("/usr/bin/newuidmap"));
    }

    #[test]
    fn without_a_range_the_note_says_what_to_add() {
        let note = decide(Some("alice"), 1000, "bob:100000:65536\n", "", tools())
            .unwrap_err()
            .to_string();
        assert_eq!(
            note,
            "no subordinate ids for user alice in /etc/subuid and /etc/subgid; steps that switch users (apt) \
             will fail: add 'alice:165536:65536' to both (usermod --add-subuids 165536-231071 \
             --add-subgids 165536-231071 alice)"
        );
        let note = decide(None, 1000, "1000:100000:65536\n", "", [None, None])
            .unwrap_err()
            .to_string();
        assert_eq!(
            note,
            "no subordinate ids for user 1000 in /etc/subgid; steps that switch users (apt) will fail: \
             add '1000:165536:65536' to /etc/subgid (usermod --add-subgids 165536-231071 1000) and install uidmap"
        );
        let note = decide(Some("alice"), 1000, "alice:1:0\n", "alice:100000:x\n", tools())
            .unwrap_err()
            .to_string();
        assert!(note.contains("add 'alice:100000:65536' to both"), "{note}");
    }

    #[test]
    fn without_the_tools_the_note_says_to_install_them() {
        let file = "alice:100000:65536\n";
        let note = decide(
            Some("alice"),
            1000,
            file,
            file,
            [Some("/usr/bin/newuidmap".into()), None],
        )
        .unwrap_err()
        .to_string();
        assert!(note.contains("install uidmap"), "{note}");
    }
}

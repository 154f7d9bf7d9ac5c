//! A small filesystem of a test's own for its cache (a tmpfs, so root
//! only), to fill up; unmounted on every path, panics included.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A mounted tmpfs; unmounted when dropped.
pub struct SmallDisk {
    mount: PathBuf,
}

impl SmallDisk {
    /// Mounts a tmpfs of `bytes` on `at` (created). Where this cannot be
    /// done (not root), the test is skipped (a failure in CI, which runs
    /// as root).
    pub fn mount(at: &Path, bytes: u64) -> Option<Self> {
        if !super::root_available("mounting a small filesystem") {
            return None;
        }
        fs::create_dir_all(at).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes},mode=0700"), "hm-test-disk"])
            .arg(at)
            .output()
            .unwrap();
        assert!(out.status.success(), "mount: {}", String::from_utf8_lossy(&out.stderr));
        Some(SmallDisk { mount: at.to_owned() })
    }

    /// The cache directory on it.
    pub fn cache(&self) -> PathBuf {
        self.mount.join("cache")
    }

    /// Writes `filler` until the disk is full; returns its path.
    pub fn fill(&self) -> PathBuf {
        let path = self.mount.join("filler");
        let mut file = fs::File::create(&path).unwrap();
        let chunk = vec![0x5au8; 64 * 1024];
        loop {
            if file.write_all(&chunk).and_then(|()| file.flush()).is_err() {
                break;
            }
        }
        // What is left is less than a chunk; take it too.
        while file.write_all(&[0x5a; 512]).is_ok() {}
        path
    }

    /// Bytes still free.
    pub fn free(&self) -> u64 {
        let out = Command::new("df")
            .args(["-B1", "--output=avail"])
            .arg(&self.mount)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .nth(1)
            .and_then(|l| l.trim().parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        for _ in 0..50 {
            let unmounted = Command::new("umount")
                .arg(&self.mount)
                .status()
                .is_ok_and(|s| s.success());
            if unmounted {
                return;
            }
            // Busy: a process of the test is still on its way out.
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let _ = Command::new("umount").arg("-l").arg(&self.mount).status();
    }
}

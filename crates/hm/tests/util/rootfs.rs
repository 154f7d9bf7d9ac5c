//! A tiny root filesystem built from host programs, for tests and
//! benchmarks that need an imported image without a registry or
//! debootstrap.

use std::path::Path;
use std::process::Command;

/// Copies `tools` (absolute paths of host programs) and the libraries they
/// load into `dir`, keeping each program's path (`/bin/sh` too, as a link
/// when it is one on the host).
pub fn tiny_rootfs(dir: &Path, tools: &[&str]) {
    for tool in tools {
        let real = std::fs::canonicalize(tool).unwrap();
        let ldd = Command::new("ldd").arg(&real).output().unwrap();
        let mut files = vec![real.clone()];
        for line in String::from_utf8_lossy(&ldd.stdout).lines() {
            if let Some(path) = line.split_whitespace().find(|w| w.starts_with('/')) {
                files.push(path.into());
            }
        }
        for file in files {
            let target = dir.join(file.strip_prefix("/").unwrap());
            std::fs::create_dir_all(target.parent().unwrap()).unwrap();
            std::fs::copy(&file, &target).unwrap();
        }
        let link = dir.join(Path::new(tool).strip_prefix("/").unwrap());
        if std::fs::symlink_metadata(&link).is_err() {
            std::fs::create_dir_all(link.parent().unwrap()).unwrap();
            std::os::unix::fs::symlink(&real, &link).unwrap();
        }
    }
}

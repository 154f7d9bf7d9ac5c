//! A toolchain preset run for real: `hm.python.project()` on a Debian
//! image, with apt and PyPI, in the sandbox. (The other presets download
//! from hosts this machine cannot reach; their commands are checked by the
//! SDK's golden files.)
//!
//! Needs a Debian root filesystem in `HM_TEST_DEBIAN_ROOTFS` (`.ci/run`
//! builds one with `.ci/debian-rootfs.sh`).

mod util;

use util::{python_available, sandbox_available, Fixture, Run};

/// The Debian root filesystem to test on; skips outside CI without one.
fn debian_rootfs() -> Option<String> {
    match std::env::var("HM_TEST_DEBIAN_ROOTFS") {
        Ok(dir) if std::path::Path::new(&dir).join("usr/bin/apt-get").exists() => Some(dir),
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("CI=true but HM_TEST_DEBIAN_ROOTFS does not name a Debian root filesystem")
        }
        _ => {
            eprintln!("skipping: set HM_TEST_DEBIAN_ROOTFS to a Debian root filesystem (.ci/debian-rootfs.sh DIR)");
            None
        }
    }
}

const PROJECT: &[(&str, &str)] = &[
    (
        ".hm/pipeline.py",
        "import harmont as hm\n\n\n@hm.pipeline\ndef ci():\n    return hm.python.project(image=\"debian:bookworm\")\n",
    ),
    (
        "pyproject.toml",
        "[project]\nname = \"sample\"\nversion = \"0.1.0\"\nrequires-python = \">=3.10\"\n\n\
         [build-system]\nrequires = [\"setuptools>=61\"]\nbuild-backend = \"setuptools.build_meta\"\n\n\
         [tool.setuptools]\npackages = [\"sample\"]\n",
    ),
    (
        "sample/__init__.py",
        "def add(a: int, b: int) -> int:\n    return a + b\n",
    ),
    (
        "tests/test_add.py",
        "from sample import add\n\n\ndef test_add() -> None:\n    assert add(1, 2) == 3\n",
    ),
];

#[test]
fn the_python_preset_installs_checks_and_tests_a_project() {
    if !sandbox_available() || !python_available() {
        return;
    }
    let Some(rootfs) = debian_rootfs() else { return };
    let fx = Fixture::new();
    for (path, text) in PROJECT {
        fx.write(path, text);
    }
    let import = fx.hm(&["image", "import", "debian:bookworm", &rootfs]);
    assert!(import.status.success(), "{}", String::from_utf8_lossy(&import.stderr));

    // pip uses its own certificate bundle; point it at the system's, which
    // the apt base builds (and which trusts a local proxy's authority).
    let run = || {
        Run::from(
            fx.command(&[
                "run",
                "--format",
                "json",
                "-e",
                "PIP_CERT=/etc/ssl/certs/ca-certificates.crt",
            ])
            .output()
            .unwrap(),
        )
    };
    let first = run();
    assert_eq!(first.code, 0, "{}", first.dump());
    let every = [
        "apt-base",
        "mypy",
        "pip-install",
        "pytest",
        "python-venv",
        "ruff-check",
        "ruff-format",
    ];
    assert_eq!(first.executed(), every);
    assert!(
        first.logs("pytest").iter().any(|l| l.contains("1 passed")),
        "{}",
        first.dump()
    );

    // Nothing changed: the base, the tools and the dependencies are hits,
    // the checks run again.
    let second = run();
    assert_eq!(second.code, 0, "{}", second.dump());
    assert_eq!(second.executed(), ["mypy", "pytest", "ruff-check", "ruff-format"]);

    // A broken test fails the build, and only the actions re-ran.
    fx.write(
        "tests/test_add.py",
        "from sample import add\n\n\ndef test_add() -> None:\n    assert add(1, 2) == 4\n",
    );
    let broken = run();
    assert_eq!(broken.code, 1, "{}", broken.dump());
    assert_eq!(broken.status("pytest"), "failed");
    assert_eq!(broken.status("pip-install"), "cache_hit");
    fx.assert_clean();
}

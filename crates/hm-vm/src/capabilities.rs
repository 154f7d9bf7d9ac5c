//! The capabilities a step keeps on every backend, as root and rootless.

/// Capabilities a step keeps, and why (docs/decisions.md has the full
/// list of what is dropped):
/// - `CAP_CHOWN`, `CAP_DAC_OVERRIDE`, `CAP_FOWNER`, `CAP_FSETID`: package
///   managers and archive tools write, chown and chmod files of every user
///   (dpkg keeps setuid and setgid bits as packages ship them);
/// - `CAP_SETUID`, `CAP_SETGID`: apt drops to `_apt` to download, and
///   tests run services as their own users (`su`, `runuser`, `setpriv`);
/// - `CAP_KILL`: stopping those services (only inside the step's pid
///   namespace);
/// - `CAP_SETPCAP`: tools that drop capabilities further (`setpriv`,
///   `capsh`, bubblewrap as root);
/// - `CAP_NET_BIND_SERVICE`: test servers on ports below 1024;
/// - `CAP_SYS_CHROOT`: debootstrap, pbuilder and other chroot builders;
/// - `CAP_AUDIT_WRITE`: `sudo` and PAM fail without it;
/// - `CAP_SETFCAP`: package scripts that `setcap` their binaries (such
///   file capabilities never take effect inside a step: layers are
///   mounted `nosuid` and steps run with no new privileges).
///
/// Container runtimes also grant `CAP_NET_RAW` and `CAP_MKNOD`: a raw
/// socket in the host's network sees all of its traffic, and a device node
/// with no device cgroup reaches the host's disks.
pub const STEP_CAPABILITIES: [(u32, &str); 12] = [
    (0, "CAP_CHOWN"),
    (1, "CAP_DAC_OVERRIDE"),
    (3, "CAP_FOWNER"),
    (4, "CAP_FSETID"),
    (5, "CAP_KILL"),
    (6, "CAP_SETGID"),
    (7, "CAP_SETUID"),
    (8, "CAP_SETPCAP"),
    (10, "CAP_NET_BIND_SERVICE"),
    (18, "CAP_SYS_CHROOT"),
    (29, "CAP_AUDIT_WRITE"),
    (31, "CAP_SETFCAP"),
];

//! Child processes that die with `hm`, however `hm` ends.

/// Makes the child of `command` die with `hm`, even after a SIGKILL that
/// leaves `hm` no chance to kill it: the kernel sends the child SIGKILL
/// when the thread that spawned it exits, and a parent that died before
/// the signal was armed is caught by comparing the parent pid. Spawn from
/// a thread that outlives the child (the main thread or a runtime worker).
pub fn die_with_parent(command: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    let parent = std::process::id();
    // SAFETY: only async-signal-safe calls (prctl, getppid, kill) run
    // between fork and exec.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::getppid() as u32 != parent {
                libc::kill(libc::getpid(), libc::SIGKILL);
            }
            Ok(())
        });
    }
}

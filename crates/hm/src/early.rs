//! Interrupts that arrive before `hm run` listens for them: from the start
//! of `main` until the runtime's signal handlers are in place, a SIGINT or
//! SIGTERM is only noted, and `hm run` then stops before anything ran
//! (exit 130) instead of dying by the signal's default action.

use std::sync::atomic::{AtomicBool, Ordering};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn note(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Notes SIGINT and SIGTERM from now on.
pub fn listen() {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is
        // async-signal-safe; the sigaction struct is fully initialised.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = note as *const () as usize;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(sig, &action, std::ptr::null_mut());
        }
    }
}

/// Whether a SIGINT or SIGTERM arrived since [`listen`].
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

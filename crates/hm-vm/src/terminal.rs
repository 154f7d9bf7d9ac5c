//! The caller's terminal, lent to an interactive command in a VM (see
//! [`crate::Vm::shell`]).
//!
//! A [`Terminal`] is a file descriptor of a terminal device with its type
//! (`TERM`). While a shell has it, a [`Hold`] remembers the two things a
//! shell may change and that the caller needs back, its modes and its
//! foreground process group, and puts them back when dropped, on every
//! path out. [`Keys`] reads what is typed on a thread of its own, which
//! stops when told, so that nothing reads the terminal once the shell is
//! gone.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use nix::sys::signal::{pthread_sigmask, SigSet, SigmaskHow, Signal};
use nix::sys::termios::{self, SetArg, Termios};
use nix::unistd::Pid;
use tokio::sync::mpsc;

/// The file descriptor given is not a terminal.
#[derive(Debug, thiserror::Error)]
#[error("not a terminal")]
pub struct NotATerminal;

/// A terminal for an interactive command.
#[derive(Debug)]
pub struct Terminal {
    fd: OwnedFd,
    term: Option<String>,
}

impl Terminal {
    /// `fd`, which must be a terminal; `term` is its type (the caller's
    /// `TERM`), given to the command as its `TERM`.
    pub fn new(fd: OwnedFd, term: Option<String>) -> Result<Self, NotATerminal> {
        match nix::unistd::isatty(&fd) {
            Ok(true) => Ok(Terminal { fd, term }),
            _ => Err(NotATerminal),
        }
    }

    /// A new pseudo-terminal: the terminal end, to give a command, and the
    /// controlling end, to drive it from (what is written there is typed,
    /// what the command writes is read there).
    pub fn pair(term: Option<String>, rows: u16, cols: u16) -> io::Result<(Terminal, OwnedFd)> {
        let size = nix::pty::Winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        let pty = nix::pty::openpty(&size, None)?;
        Ok((Terminal { fd: pty.slave, term }, pty.master))
    }

    /// The terminal's type, if known.
    pub fn term(&self) -> Option<&str> {
        self.term.as_deref()
    }

    /// Its size in rows and columns, when it has one.
    pub fn size(&self) -> Option<(u16, u16)> {
        // SAFETY: an all-zero `winsize` is a valid value (a C struct of
        // integers).
        let mut size: libc::winsize = unsafe { std::mem::zeroed() };
        // SAFETY: TIOCGWINSZ writes a `winsize` to the pointer, which is
        // valid for the call.
        let read = unsafe { libc::ioctl(self.fd.as_raw_fd(), libc::TIOCGWINSZ, &mut size) };
        (read == 0 && size.ws_row > 0 && size.ws_col > 0).then_some((size.ws_row, size.ws_col))
    }

    /// Another descriptor of the same terminal.
    pub fn try_clone(&self) -> io::Result<OwnedFd> {
        self.fd.try_clone()
    }

    /// Remembers the terminal's modes and foreground process group, to be
    /// restored when the returned [`Hold`] is dropped.
    pub fn hold(&self) -> Hold<'_> {
        Hold {
            terminal: self,
            modes: termios::tcgetattr(&self.fd).ok(),
            // Only a process's controlling terminal has one (for us).
            foreground: nix::unistd::tcgetpgrp(&self.fd).ok(),
        }
    }
}

impl AsFd for Terminal {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// A terminal lent to a command: dropping it gives the terminal its modes
/// and its foreground process group back.
pub struct Hold<'t> {
    terminal: &'t Terminal,
    modes: Option<Termios>,
    foreground: Option<Pid>,
}

impl Hold<'_> {
    /// Puts the terminal in raw mode (no echo, no line editing, no
    /// signals from keys: every byte typed goes to the command) until the
    /// hold is dropped.
    pub fn raw(&self) -> io::Result<()> {
        let Some(modes) = &self.modes else {
            return Err(io::Error::other("the terminal's modes cannot be read"));
        };
        let mut raw = modes.clone();
        termios::cfmakeraw(&mut raw);
        with_sigttou_blocked(|| termios::tcsetattr(&self.terminal.fd, SetArg::TCSANOW, &raw))?;
        Ok(())
    }
}

impl Drop for Hold<'_> {
    fn drop(&mut self) {
        let fd = &self.terminal.fd;
        // A process outside the foreground group may change these only
        // while SIGTTOU is blocked (otherwise the signal stops it).
        with_sigttou_blocked(|| {
            if let Some(group) = self.foreground {
                let _ = nix::unistd::tcsetpgrp(fd, group);
            }
            if let Some(modes) = &self.modes {
                let _ = termios::tcsetattr(fd, SetArg::TCSANOW, modes);
            }
            Ok(())
        })
        .ok();
    }
}

/// Runs `f` with SIGTTOU blocked on this thread.
fn with_sigttou_blocked<T>(f: impl FnOnce() -> nix::Result<T>) -> nix::Result<T> {
    let mut blocked = SigSet::empty();
    blocked.add(Signal::SIGTTOU);
    let mut old = SigSet::empty();
    pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&blocked), Some(&mut old))?;
    let result = f();
    let _ = pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&old), None);
    result
}

/// What is typed on a terminal, read on a thread of its own into a
/// channel until the [`Keys`] is dropped (or the terminal hangs up).
pub struct Keys {
    /// Closed on drop, which wakes the thread's `poll`.
    stop: Option<OwnedFd>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Keys {
    /// Starts reading `terminal`; what is read arrives on the returned
    /// channel.
    pub fn read(terminal: &Terminal) -> io::Result<(Keys, mpsc::Receiver<Vec<u8>>)> {
        let fd = terminal.try_clone()?;
        let (stop_read, stop_write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
        let (tx, rx) = mpsc::channel(16);
        let thread = std::thread::Builder::new()
            .name("hm-terminal-keys".to_owned())
            .spawn(move || read_keys(fd, stop_read, tx))?;
        Ok((
            Keys {
                stop: Some(stop_write),
                thread: Some(thread),
            },
            rx,
        ))
    }
}

impl Drop for Keys {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Reads `fd` whenever it is readable, until `stop` closes, the terminal
/// hangs up or nobody receives any more.
fn read_keys(fd: OwnedFd, stop: OwnedFd, keys: mpsc::Sender<Vec<u8>>) {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let mut buf = [0u8; 4096];
    loop {
        let mut fds = [
            PollFd::new(fd.as_fd(), PollFlags::POLLIN),
            PollFd::new(stop.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return,
        }
        if fds[1].any().unwrap_or(true) {
            return;
        }
        if !fds[0].any().unwrap_or(false) {
            continue;
        }
        let read = match nix::unistd::read(&fd, &mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if keys.blocking_send(buf[..read].to_vec()).is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_terminal_is_one() {
        let file = std::fs::File::open("/dev/null").unwrap();
        assert!(Terminal::new(file.into(), None).is_err());
        let (terminal, _controller) = Terminal::pair(Some("xterm".into()), 24, 80).unwrap();
        assert_eq!(terminal.size(), Some((24, 80)));
        assert_eq!(terminal.term(), Some("xterm"));
    }

    #[test]
    fn a_hold_restores_the_modes_it_found() {
        let (terminal, _controller) = Terminal::pair(None, 24, 80).unwrap();
        let before = termios::tcgetattr(&terminal).unwrap();
        {
            let hold = terminal.hold();
            hold.raw().unwrap();
            let raw = termios::tcgetattr(&terminal).unwrap();
            assert!(!raw.local_flags.contains(termios::LocalFlags::ECHO));
        }
        let after = termios::tcgetattr(&terminal).unwrap();
        assert_eq!(before.local_flags, after.local_flags);
        assert_eq!(before.input_flags, after.input_flags);
    }

    #[test]
    fn keys_are_read_until_dropped() {
        let (terminal, controller) = Terminal::pair(None, 24, 80).unwrap();
        let hold = terminal.hold();
        hold.raw().unwrap();
        let (keys, mut rx) = Keys::read(&terminal).unwrap();
        nix::unistd::write(&controller, b"ls\r").unwrap();
        let got = rx.blocking_recv().unwrap();
        assert_eq!(got, b"ls\r");
        drop(keys);
        assert!(rx.blocking_recv().is_none(), "the thread stopped");
    }
}

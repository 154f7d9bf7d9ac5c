//! A pseudo-terminal driver for tests of what `hm` does on a terminal:
//! the command runs with the terminal end as its standard input, output
//! and error and as its controlling terminal (a session of its own, as a
//! shell gives a job), and the test types into the controlling end and
//! reads what the command drew there.
//!
//! ```ignore
//! let pty = Pty::spawn(fx.command(&["shell", "build"]), 24, 80);
//! pty.wait_for("$ ", Duration::from_secs(30)).unwrap();
//! pty.write(b"exit 7\r");
//! assert_eq!(pty.wait(Duration::from_secs(30)).code(), Some(7));
//! ```

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// A command running on a pseudo-terminal.
pub struct Pty {
    controller: Arc<OwnedFd>,
    child: Child,
    output: Arc<Output>,
}

/// Everything read from the controlling end so far.
#[derive(Default)]
struct Output {
    bytes: Mutex<Read>,
    grew: Condvar,
}

#[derive(Default)]
struct Read {
    bytes: Vec<u8>,
    /// The terminal end is closed: nothing more will come.
    ended: bool,
}

fn winsize(rows: u16, cols: u16) -> nix::pty::Winsize {
    nix::pty::Winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    }
}

impl Pty {
    /// Starts `cmd` on a new `rows`×`cols` pseudo-terminal (whatever
    /// standard streams `cmd` had are replaced).
    pub fn spawn(mut cmd: Command, rows: u16, cols: u16) -> Pty {
        let pty = nix::pty::openpty(&winsize(rows, cols), None).expect("openpty");
        let terminal = pty.slave;
        let stream = || Stdio::from(terminal.try_clone().expect("dup the terminal"));
        cmd.stdin(stream()).stdout(stream()).stderr(stream());
        // SAFETY: only async-signal-safe calls (setsid, ioctl) run between
        // fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().expect("spawn on the pseudo-terminal");
        // Only the child holds the terminal end now: when it (and what it
        // started) lets go, reading the controlling end ends.
        drop(terminal);
        let controller = Arc::new(pty.master);
        let output = Arc::new(Output::default());
        let (reading, sink) = (controller.clone(), output.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            loop {
                match nix::unistd::read(reading.as_fd(), &mut buf) {
                    Ok(0) | Err(nix::errno::Errno::EIO) => break,
                    Err(nix::errno::Errno::EINTR) => continue,
                    Err(_) => break,
                    Ok(n) => {
                        sink.bytes.lock().unwrap().bytes.extend_from_slice(&buf[..n]);
                        sink.grew.notify_all();
                    }
                }
            }
            sink.bytes.lock().unwrap().ended = true;
            sink.grew.notify_all();
        });
        Pty {
            controller,
            child,
            output,
        }
    }

    /// The command's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Types `bytes` (a return is `\r`, Ctrl-C `\x03`).
    pub fn write(&self, bytes: &[u8]) {
        let mut rest = bytes;
        while !rest.is_empty() {
            match nix::unistd::write(self.controller.as_fd(), rest) {
                Ok(n) => rest = &rest[n..],
                Err(nix::errno::Errno::EINTR) => {}
                Err(err) => panic!("cannot type into the pseudo-terminal: {err}"),
            }
        }
    }

    /// Waits until `needle` has appeared in the output (anywhere since the
    /// start); the error carries the output seen, as text.
    pub fn wait_for(&self, needle: &str, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        let mut read = self.output.bytes.lock().unwrap();
        loop {
            if contains(&read.bytes, needle.as_bytes()) {
                return Ok(());
            }
            let now = Instant::now();
            if read.ended || now >= deadline {
                let why = if read.ended { "the terminal closed" } else { "timed out" };
                return Err(format!(
                    "{why} waiting for {needle:?}; the output so far:\n{}",
                    String::from_utf8_lossy(&read.bytes)
                ));
            }
            read = self.output.grew.wait_timeout(read, deadline - now).unwrap().0;
        }
    }

    /// Every byte read so far.
    pub fn output(&self) -> Vec<u8> {
        self.output.bytes.lock().unwrap().bytes.clone()
    }

    /// The output so far, as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.output()).into_owned()
    }

    /// The terminal's modes now (what `stty` would show): a command that
    /// changed them and exited should have put them back.
    pub fn modes(&self) -> nix::sys::termios::Termios {
        nix::sys::termios::tcgetattr(self.controller.as_fd()).expect("tcgetattr")
    }

    /// Changes the terminal's size (its foreground process group gets a
    /// SIGWINCH).
    pub fn resize(&self, rows: u16, cols: u16) {
        let size = winsize(rows, cols);
        // SAFETY: TIOCSWINSZ reads a `winsize` from the pointer, valid for
        // the call.
        let set = unsafe { libc::ioctl(self.controller.as_raw_fd(), libc::TIOCSWINSZ, &size) };
        assert_eq!(set, 0, "resize: {}", std::io::Error::last_os_error());
    }

    /// Waits for the command to exit; past `timeout` it is killed and the
    /// test panics with the output seen (wait for its last words with
    /// [`Pty::wait_for`] first: the output goes with the `Pty`).
    pub fn wait(mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait for the command") {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "the command did not exit within {timeout:?}; the output so far:\n{}",
                    self.text()
                );
            }
            std::thread::sleep(Duration::from_millis(1));
        };
        status
    }
}

impl Pty {
    /// Waits for the command to exit (as [`Pty::wait`]) and for the last of
    /// what it drew; its exit status and the whole output.
    pub fn finish(self, timeout: Duration) -> (ExitStatus, Vec<u8>) {
        let output = self.output.clone();
        let status = self.wait(timeout);
        let read = output.bytes.lock().unwrap();
        let (read, _) = output
            .grew
            .wait_timeout_while(read, Duration::from_secs(10), |r| !r.ended)
            .unwrap();
        (status, read.bytes.clone())
    }
}

impl Drop for Pty {
    /// A test that failed midway leaves no process behind.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

//! Writing what a command prints, without ever panicking on it (as
//! `println!` does): a closed pipe ends the command quietly, as `ls | head`
//! does, and any other failure (a full device) is one error, exit 1.
//! Messages on stderr go through [`say!`](crate::say), which ignores a
//! stderr that cannot be written.

use std::io::Write;

use crate::error::CliError;

/// Writes `text` to stdout and flushes it.
pub fn print(text: &str) -> Result<(), CliError> {
    print_bytes(text.as_bytes())
}

/// Writes `bytes` to stdout as they are, and flushes them.
pub fn print_bytes(bytes: &[u8]) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)
        .and_then(|()| out.flush())
        .map_err(CliError::Output)
}

/// Whether an output error only means that nobody reads any more.
pub fn is_closed(err: &std::io::Error) -> bool {
    err.kind() == std::io::ErrorKind::BrokenPipe
}

/// `eprintln!` that never panics: a message nobody can read is dropped.
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

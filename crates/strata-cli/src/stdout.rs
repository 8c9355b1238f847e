//! Writing to standard output without panicking: a closed pipe (`strata info | head -1`)
//! ends the program quietly with status 0, any other failure (a full disk behind
//! `> /dev/full`) is an error with a message.

use std::io::Write;

/// An error writing to standard output.
#[derive(Debug, thiserror::Error)]
#[error("cannot write to standard output: {0}")]
pub struct StdoutError(#[from] pub std::io::Error);

impl StdoutError {
    /// Whether the reader went away (a closed pipe), which is not a failure.
    pub fn is_broken_pipe(&self) -> bool {
        self.0.kind() == std::io::ErrorKind::BrokenPipe
    }
}

/// Writes one line to standard output and flushes it.
pub fn write_line(args: std::fmt::Arguments<'_>) -> Result<(), StdoutError> {
    let mut out = std::io::stdout().lock();
    out.write_fmt(args)?;
    out.write_all(b"\n")?;
    out.flush()?;
    Ok(())
}

/// `println!` that returns an error instead of panicking (see [`write_line`]).
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::stdout::write_line(format_args!($($arg)*))?
    };
}

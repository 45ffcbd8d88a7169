//! Child processes: sending signals, stopping within a deadline, saying how they ended.

use std::fmt;
use std::process::ExitStatus;
#[cfg(unix)]
use tokio::process::Child;

/// A Unix signal.
#[cfg(unix)]
pub use nix::sys::signal::Signal;

/// Sends `signal` to `child` (not to its process group). Does nothing once it has exited.
#[cfg(unix)]
pub fn send(child: &Child, signal: Signal) {
    if let Some(pid) = child.id().and_then(|id| i32::try_from(id).ok()) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal);
    }
}

/// How a process ended, and the exit code a shell would report for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exit {
    /// Its exit code, or `None` when a signal ended it.
    pub code: Option<i32>,
    /// The signal that ended it.
    pub signal: Option<i32>,
}

impl Exit {
    /// Reads an [`ExitStatus`].
    pub fn from_status(status: ExitStatus) -> Self {
        #[cfg(unix)]
        let signal = std::os::unix::process::ExitStatusExt::signal(&status);
        #[cfg(not(unix))]
        let signal = None;
        Exit {
            code: status.code(),
            signal,
        }
    }
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.code, self.signal) {
            (Some(code), _) => write!(f, "exit code {code}"),
            #[cfg(unix)]
            (None, Some(signal)) => match Signal::try_from(signal) {
                Ok(s) => write!(f, "killed by {s}"),
                Err(_) => write!(f, "killed by signal {signal}"),
            },
            #[cfg(not(unix))]
            (None, Some(signal)) => write!(f, "killed by signal {signal}"),
            (None, None) => f.write_str("ended"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signal_death_names_the_signal() {
        let term = Exit {
            code: None,
            signal: Some(15),
        };
        assert_eq!(term.to_string(), "killed by SIGTERM");
    }

    #[test]
    fn an_exit_shows_its_code() {
        let e = Exit {
            code: Some(3),
            signal: None,
        };
        assert_eq!(e.to_string(), "exit code 3");
    }
}

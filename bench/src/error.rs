//! The harness's error: what failed, said in words a user can act on.

use std::fmt;

/// Why a scenario could not produce its figures.
#[derive(Debug)]
pub enum BenchError {
    /// The benchmark could not be set up (a directory, a process, a driver, a connection).
    Setup(String),
    /// Something failed while measuring (a transport error, a lost or corrupt message).
    Measure(String),
    /// SIGINT or SIGTERM arrived; the scenario stopped early and cleaned up.
    Interrupted,
}

impl fmt::Display for BenchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Setup(what) => write!(f, "setup failed: {what}"),
            Self::Measure(what) => write!(f, "measurement failed: {what}"),
            Self::Interrupted => f.write_str("interrupted"),
        }
    }
}

impl std::error::Error for BenchError {}

/// Adds what was being done to an error, as a [`BenchError`].
pub trait Context<T> {
    /// A setup failure: "`what`: `error`".
    fn setup(self, what: impl fmt::Display) -> Result<T, BenchError>;
    /// A measurement failure: "`what`: `error`".
    fn measure(self, what: impl fmt::Display) -> Result<T, BenchError>;
}

// Inlined: `measure` sits in measuring loops, where a call per offer or poll would be
// harness overhead charged to the figure.
impl<T, E: fmt::Display> Context<T> for Result<T, E> {
    #[inline]
    fn setup(self, what: impl fmt::Display) -> Result<T, BenchError> {
        self.map_err(|e| BenchError::Setup(format!("{what}: {e}")))
    }

    #[inline]
    fn measure(self, what: impl fmt::Display) -> Result<T, BenchError> {
        match self {
            Ok(value) => Ok(value),
            Err(e) => Err(measure_error(what, e)),
        }
    }
}

/// The error path of [`Context::measure`], kept out of line.
#[cold]
#[inline(never)]
fn measure_error(what: impl fmt::Display, error: impl fmt::Display) -> BenchError {
    BenchError::Measure(format!("{what}: {error}"))
}

//! The live view's terminal: keys without Enter (`q` quits), Ctrl-C as a clean exit, the
//! alternate screen while running, and everything restored on the way out.

use std::io::Write as _;
use std::os::fd::BorrowedFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
use nix::sys::termios::{tcgetattr, tcsetattr, LocalFlags, SetArg, Termios};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: nix::libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// The terminal while the live view runs; dropping it restores the terminal.
pub struct LiveTerminal {
    saved: Option<Termios>,
}

impl LiveTerminal {
    /// Switches to the alternate screen and, when stdin is a terminal, reads keys as they
    /// are typed; SIGINT and SIGTERM end the view instead of the process.
    pub fn enter() -> Self {
        let action = SigAction::new(
            SigHandler::Handler(on_signal),
            SaFlags::empty(),
            SigSet::empty(),
        );
        for signal in [Signal::SIGINT, Signal::SIGTERM] {
            // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
            let _ = unsafe { sigaction(signal, &action) };
        }
        let stdin = std::io::stdin();
        let saved = tcgetattr(&stdin).ok();
        if let Some(saved) = &saved {
            let mut raw = saved.clone();
            // Keys arrive one by one and are not echoed; ISIG stays on so Ctrl-C is SIGINT.
            raw.local_flags
                .remove(LocalFlags::ICANON | LocalFlags::ECHO);
            let _ = tcsetattr(&stdin, SetArg::TCSANOW, &raw);
        }
        print!("\x1b[?1049h\x1b[?25l");
        let _ = std::io::stdout().flush();
        Self { saved }
    }

    /// Shows `text` as the whole screen.
    pub fn show(&self, text: &str) {
        let mut out = std::io::stdout().lock();
        let _ = write!(out, "\x1b[H\x1b[2J{text}");
        let _ = out.flush();
    }

    /// Waits up to `timeout` for a key; returns whether the user asked to quit (`q`, `Q`,
    /// Ctrl-C, SIGTERM, or stdin closed).
    pub fn wait_for_quit(&self, timeout: Duration) -> bool {
        if INTERRUPTED.load(Ordering::SeqCst) {
            return true;
        }
        if self.saved.is_none() {
            std::thread::sleep(timeout);
            return INTERRUPTED.load(Ordering::SeqCst);
        }
        // SAFETY: fd 0 stays open for the life of the process.
        let stdin = unsafe { BorrowedFd::borrow_raw(0) };
        let mut fds = [PollFd::new(stdin, PollFlags::POLLIN)];
        let millis = u16::try_from(timeout.as_millis()).unwrap_or(u16::MAX);
        match poll(&mut fds, PollTimeout::from(millis)) {
            Ok(n) if n > 0 => {
                let mut byte = [0u8; 1];
                match nix::unistd::read(0, &mut byte) {
                    Ok(0) => true,
                    Ok(_) => matches!(byte[0], b'q' | b'Q' | 0x03),
                    Err(_) => false,
                }
            }
            _ => INTERRUPTED.load(Ordering::SeqCst),
        }
    }
}

impl Drop for LiveTerminal {
    fn drop(&mut self) {
        print!("\x1b[?25h\x1b[?1049l");
        let _ = std::io::stdout().flush();
        if let Some(saved) = &self.saved {
            let _ = tcsetattr(std::io::stdin(), SetArg::TCSANOW, saved);
        }
    }
}

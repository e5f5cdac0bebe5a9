//! Child processes under supervision, the one place that sends them signals: the `--nproc`
//! launcher's ranks ([`crate::launch`]) and the recipe's stages ([`crate::children`]).

use std::process::{Child, ExitStatus};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How a child ended, in words (`exit code 1`, `signal 9 (killed)`).
pub fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit code {code}"),
        (None, Some(sig)) => format!("signal {sig}{}", if sig == libc::SIGKILL { " (killed)" } else { "" }),
        _ => status.to_string(),
    }
}

/// Sends `sig` to `child` if it is still running.
pub fn signal(child: &mut Child, sig: libc::c_int) {
    if let Ok(None) = child.try_wait() {
        // SAFETY: kill(2) on a child we spawned and have not reaped.
        unsafe {
            libc::kill(child.id() as libc::pid_t, sig);
        }
    }
}

/// Sends `sig` to every child still running.
pub fn signal_all(children: &mut [(usize, Child)], sig: libc::c_int) {
    for (_, child) in children.iter_mut() {
        signal(child, sig);
    }
}

/// Stops every child still running: SIGTERM, then SIGKILL after a grace period of 10 s.
pub fn stop_all(children: &mut [(usize, Child)]) {
    let mut refs: Vec<&mut Child> = children.iter_mut().map(|(_, c)| c).collect();
    stop(&mut refs, Some(Duration::from_secs(10)));
}

/// SIGTERM to each child still running, then waits for them; with a `grace` period, SIGKILL to
/// those still running after it.
fn stop(children: &mut [&mut Child], grace: Option<Duration>) {
    for c in children.iter_mut() {
        signal(c, libc::SIGTERM);
    }
    if let Some(grace) = grace {
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline && children.iter_mut().any(|c| matches!(c.try_wait(), Ok(None))) {
            std::thread::sleep(Duration::from_millis(50));
        }
        for c in children.iter_mut() {
            signal(c, libc::SIGKILL);
        }
    }
    for c in children.iter_mut() {
        let _ = c.wait();
    }
}

/// Waits for `child`; when `stop` is set first, sends it SIGTERM, waits for it to end and returns
/// `None` (a training child ends at once: its last checkpoint resumes it).
///
/// # Errors
/// Waiting failed.
pub fn wait_or_stop(child: &mut Child, stop_flag: &AtomicBool) -> std::io::Result<Option<ExitStatus>> {
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if stop_flag.load(Ordering::SeqCst) {
            stop(&mut [child], None);
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

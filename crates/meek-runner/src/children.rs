//! Measuring children never outlive their bench.
//!
//! A child stuck in a long computation (a hostile chat template once kept one at 100% CPU for ten minutes under
//! PID 1 after the parent had exited) must end with its parent, whatever the exit path. Two mechanisms, since
//! neither covers every case alone:
//! - on Linux the child asks the kernel for SIGKILL when its parent dies (`PR_SET_PDEATHSIG`), set between fork
//!   and exec, which covers a parent killed with SIGKILL, a panic and `process::exit` alike. The signal follows
//!   the *thread* that spawned the child, so children are spawned from the thread that waits for them;
//! - every running child is registered here, and [`kill_children`] (called by the binary before it exits at a
//!   second Ctrl-C, and by the guard when a launch returns early) kills and reaps them, on every unix.

use std::process::{Child, Command};
use std::sync::Mutex;

/// Pids of the measuring children now running.
static RUNNING: Mutex<Vec<u32>> = Mutex::new(Vec::new());

/// A running child, killed and reaped when dropped before it exited by itself.
#[derive(Debug)]
pub struct Guarded {
    child: Child,
    done: bool,
}

impl Guarded {
    /// The child.
    pub fn child(&mut self) -> &mut Child {
        &mut self.child
    }

    /// Records that the child has exited and been waited for.
    pub fn exited(&mut self) {
        self.done = true;
        forget(self.child.id());
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        if !self.done {
            let _ = self.child.kill();
            let _ = self.child.wait();
            forget(self.child.id());
        }
    }
}

fn forget(pid: u32) {
    if let Ok(mut r) = RUNNING.lock() {
        r.retain(|&p| p != pid);
    }
}

/// Spawns `cmd` so that the child dies with this process (see the module docs) and is registered until it exits.
pub fn spawn(cmd: &mut Command) -> std::io::Result<Guarded> {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        let parent = std::process::id();
        // SAFETY: the closure runs between fork and exec and calls only async-signal-safe functions (prctl,
        // getppid, _exit).
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // The parent may have died before the request took effect: then nobody would signal us.
                if libc::getppid() as u32 != parent {
                    libc::_exit(1);
                }
                Ok(())
            });
        }
    }
    // Registered while the lock is held, so a concurrent kill_children sees it.
    let mut running = RUNNING.lock().unwrap_or_else(|e| e.into_inner());
    let child = cmd.spawn()?;
    running.push(child.id());
    Ok(Guarded { child, done: false })
}

/// Kills every running measuring child at once (SIGKILL). For exit paths that skip destructors, such as
/// `process::exit` at a second Ctrl-C.
pub fn kill_children() {
    let pids = RUNNING
        .lock()
        .map(|r| r.clone())
        .unwrap_or_else(|e| e.into_inner().clone());
    for pid in pids {
        #[cfg(unix)]
        if let Ok(pid) = libc::pid_t::try_from(pid) {
            // SAFETY: kill(2) on a pid we spawned and have not reaped (it is removed from the list when reaped,
            // so it cannot have been reused).
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, std::ptr::null_mut(), 0);
            }
        }
        #[cfg(not(unix))]
        let _ = pid;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Re-runs this test binary as an intermediate "parent" that spawns a sleeping child and exits at once,
    /// the way meekbench exits at a second Ctrl-C: the child must not survive it.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_child_dies_with_its_parent() {
        if let Ok(pidfile) = std::env::var("MEEK_TEST_PARENT_PIDFILE") {
            let g = spawn(Command::new("sleep").arg("300")).expect("spawn sleep");
            fs_err::write(pidfile, g.child.id().to_string()).unwrap();
            std::mem::forget(g);
            std::process::exit(0);
        }
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("pid");
        let status = Command::new(std::env::current_exe().unwrap())
            .args([
                "children::tests::a_child_dies_with_its_parent",
                "--exact",
                "--nocapture",
            ])
            .env("MEEK_TEST_PARENT_PIDFILE", &pidfile)
            .status()
            .unwrap();
        assert!(status.success());
        let pid: i32 = fs_err::read_to_string(&pidfile).unwrap().parse().unwrap();
        let gone = (0..100).any(|_| {
            // Gone, or a zombie waiting for init to reap it.
            let state = fs_err::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let alive = state
                .rsplit(')')
                .next()
                .is_some_and(|s| !s.trim_start().starts_with('Z'));
            if alive {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            !alive
        });
        if !gone {
            // SAFETY: ends the stray child this test made.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        assert!(gone, "the child {pid} outlived its parent");
    }

    #[cfg(unix)]
    #[test]
    fn kill_children_ends_every_registered_child() {
        let mut g = spawn(Command::new("sleep").arg("300")).unwrap();
        assert!(RUNNING.lock().unwrap().contains(&g.child.id()));
        kill_children();
        let status = g.child().try_wait();
        // Reaped by kill_children: waiting again finds no child or a finished one.
        assert!(!matches!(status, Ok(None)), "{status:?}");
        g.exited();
        assert!(!RUNNING.lock().unwrap().contains(&g.child.id()));
    }
}

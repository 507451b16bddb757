//! How one (model, thread count) is measured: in a child process of the meekbench binary (the normal way: Candle
//! fixes its thread pools once per process, and a crash in one measurement cannot take the others down), or in
//! this process (tests). The child is told to stop by SIGINT and hands back what it has, marked `partial`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use meek_schema::ModelRun;
use serde::{Deserialize, Serialize};

use crate::children;
use crate::measure::{MeasureRequest, measure_until};

/// Runs one measurement and returns its result or the error message shown to the user.
pub trait Launcher {
    /// Measures `req`. Once `stop` says yes, the measurement finishes the repetition or item in progress and
    /// returns what it has, marked `partial` (or an error when it had nothing yet).
    fn launch(&self, req: &MeasureRequest, stop: &dyn Fn() -> bool) -> Result<ModelRun, String>;
}

/// Measures in this process (tests; a single thread count). The thread count is recorded but Candle's pools keep
/// whatever size they got first.
#[derive(Debug, Default)]
pub struct InProcess;

impl Launcher for InProcess {
    fn launch(&self, req: &MeasureRequest, stop: &dyn Fn() -> bool) -> Result<ModelRun, String> {
        measure_until(req, stop).map_err(|e| e.to_string())
    }
}

/// Measures in a child process: `program args... REQUEST.json RESULT.json`, with the thread count in
/// `CANDLE_NUM_THREADS` and `RAYON_NUM_THREADS`. The child runs [`child_main`]. When `stop` says yes while the
/// child runs, the child is sent SIGINT (once): a terminal's Ctrl-C reaches it directly, a SIGTERM sent to the
/// parent alone does not.
#[derive(Debug, Clone)]
pub struct ChildProcess {
    /// Program to run (normally the meekbench binary itself).
    pub program: PathBuf,
    /// Arguments before the two file names (normally the hidden measuring subcommand).
    pub args: Vec<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum ChildOutcome {
    Ok(Box<ModelRun>),
    Error(String),
}

impl Launcher for ChildProcess {
    fn launch(&self, req: &MeasureRequest, stop: &dyn Fn() -> bool) -> Result<ModelRun, String> {
        // Request folders of benches killed with -9 are removed first.
        let tmp = std::env::temp_dir();
        meek_hub::temporaries::sweep(&tmp, "meekbench-request");
        let dir = tempfile::Builder::new()
            .prefix(&meek_hub::temporaries::prefix("meekbench-request"))
            .tempdir_in(&tmp)
            .map_err(|e| format!("cannot create a temporary folder: {e}"))?;
        let request = dir.path().join("request.json");
        let result = dir.path().join("result.json");
        let text = serde_json::to_string(req).expect("request serialises");
        fs_err::write(&request, text).map_err(|e| e.to_string())?;
        let mut guarded = children::spawn(
            Command::new(&self.program)
                .args(&self.args)
                .arg(&request)
                .arg(&result)
                .env("CANDLE_NUM_THREADS", req.threads.to_string())
                .env("RAYON_NUM_THREADS", req.threads.to_string())
                .stdin(Stdio::null())
                .stdout(Stdio::null()),
        )
        .map_err(|e| format!("cannot start {}: {e}", self.program.display()))?;
        let mut signalled = false;
        let status = loop {
            match guarded.child().try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) => {}
                Err(e) => return Err(format!("waiting for the measuring process: {e}")),
            }
            if !signalled && stop() {
                signalled = true;
                interrupt_child(guarded.child());
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        };
        guarded.exited();
        match fs_err::read_to_string(&result)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
        {
            Some(ChildOutcome::Ok(run)) => Ok(*run),
            Some(ChildOutcome::Error(e)) => Err(e),
            None => Err(format!(
                "the measuring process ended with {status} and left no result"
            )),
        }
    }
}

/// Asks a measuring child to stop after its current repetition or item.
#[cfg(unix)]
fn interrupt_child(child: &std::process::Child) {
    if let Ok(pid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: kill(2) on the pid of a child we have not yet reaped (so it cannot have been reused).
        unsafe { libc::kill(pid, libc::SIGINT) };
    }
}

/// Asks a measuring child to stop: elsewhere the console's Ctrl-C reaches it directly; nothing more to do.
#[cfg(not(unix))]
fn interrupt_child(_child: &std::process::Child) {}

/// Body of the measuring child process: reads the request, measures (asking `stop` before each repetition and
/// accuracy item), writes the outcome. Returns the exit code.
pub fn child_main(request: &Path, result: &Path, stop: &dyn Fn() -> bool) -> i32 {
    let outcome = match fs_err::read_to_string(request)
        .map_err(|e| e.to_string())
        .and_then(|t| {
            serde_json::from_str::<MeasureRequest>(&t).map_err(|e| format!("bad request: {e}"))
        }) {
        Ok(req) => match measure_until(&req, stop) {
            Ok(run) => ChildOutcome::Ok(Box::new(run)),
            Err(e) => ChildOutcome::Error(e.to_string()),
        },
        Err(e) => ChildOutcome::Error(e),
    };
    let code = i32::from(matches!(outcome, ChildOutcome::Error(_)));
    let text = serde_json::to_string(&outcome).expect("outcome serialises");
    if fs_err::write(result, text).is_err() {
        return 2;
    }
    code
}

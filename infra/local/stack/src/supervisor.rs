//! What one run of the stack started, in order: stopped the last first (the event source and
//! the API finish their work while Kafka and DynamoDB still answer), with the work to do once
//! they are stopped (saving DynamoDB Local's database); watched until one of them stops
//! unexpectedly. Ctrl-C or SIGTERM at any moment stops them the same way, then ends the run
//! (status 130).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::process::{alive, fail, pid_of, Failure, Readiness, Spec};
use crate::say;

struct Started {
    name: String,
    dir: PathBuf,
    /// The pid it was started with; a restarted service's current pid is in its pid file.
    pid: i32,
}

impl Started {
    fn current_pid(&self) -> i32 {
        pid_of(&self.dir, &self.name).unwrap_or(self.pid)
    }
}

#[derive(Default)]
struct State {
    started: Vec<Started>,
    after_stop: Vec<Box<dyn FnOnce() + Send>>,
}

impl State {
    fn stop_all(&mut self) {
        if self.started.is_empty() && self.after_stop.is_empty() {
            return;
        }
        say("stopping the services this run started");
        while let Some(started) = self.started.pop() {
            crate::process::stop(started.current_pid(), Duration::from_secs(30));
        }
        for work in self.after_stop.drain(..) {
            work();
        }
    }
}

pub struct Supervisor {
    state: Arc<Mutex<State>>,
}

/// Whether a service was already running (another `make dev` owns it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reused {
    Yes,
    No,
}

impl Supervisor {
    /// A supervisor that stops what it started on Ctrl-C or SIGTERM, whatever it is doing.
    pub fn new() -> Result<Self, Failure> {
        let state = Arc::new(Mutex::new(State::default()));
        let on_signal = state.clone();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Failure(e.to_string()))?;
        let mut terminate = runtime
            .block_on(async {
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            })
            .map_err(|e| Failure(e.to_string()))?;
        // Registered before this returns: from here on, a signal no longer kills the process
        // outright (which would leave the services running).
        let interrupt = runtime
            .block_on(async {
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
            })
            .map_err(|e| Failure(e.to_string()))?;
        std::thread::spawn(move || {
            let mut interrupt = interrupt;
            runtime.block_on(async {
                tokio::select! {
                    _ = interrupt.recv() => {}
                    _ = terminate.recv() => {}
                }
            });
            lock(&on_signal).stop_all();
            std::process::exit(130);
        });
        Ok(Self { state })
    }

    /// Starts a service and waits until it is ready. A service whose port is taken is reused
    /// when its own pid file says it runs there (another `make dev`), else an error: a port is
    /// never silently shared with something else.
    pub fn start(&self, spec: Spec) -> Result<Reused, Failure> {
        if let Readiness::Port(port) = spec.readiness {
            if crate::process::listening(port) {
                return match pid_of(&spec.dir, &spec.name).filter(|pid| alive(*pid)) {
                    Some(pid) => {
                        say(&format!(
                            "{} already runs on port {port} (pid {pid}, started by another make dev): reusing it",
                            spec.name
                        ));
                        Ok(Reused::Yes)
                    }
                    None => fail(format!(
                        "port {port}, needed for {}, is in use by another process. Stop it, or \
                         point the stack at that service with the variables in README.md",
                        spec.name
                    )),
                };
            }
        }
        let pid = spec.spawn()?;
        lock(&self.state).started.push(Started {
            name: spec.name.clone(),
            dir: spec.dir.clone(),
            pid,
        });
        spec.wait_ready(pid)?;
        note_ready(&spec);
        Ok(Reused::No)
    }

    /// Runs `work` once the services are stopped.
    pub fn after_stop(&self, work: impl FnOnce() + Send + 'static) {
        lock(&self.state).after_stop.push(Box::new(work));
    }

    pub fn started_any(&self) -> bool {
        !lock(&self.state).started.is_empty()
    }

    /// Stops what was started, the last first, then does the work left for after.
    pub fn stop_all(&self) {
        lock(&self.state).stop_all();
    }

    /// Until a service stops unexpectedly (an error naming it; Ctrl-C ends the run
    /// meanwhile). Looks every 5 s without forking anything: an idle stack costs nothing here.
    pub fn watch(&self, logs: &Path) -> Result<(), Failure> {
        loop {
            std::thread::sleep(Duration::from_secs(5));
            let dead: Vec<(String, PathBuf)> = lock(&self.state)
                .started
                .iter()
                .filter(|s| !alive(s.current_pid()))
                .map(|s| (s.name.clone(), s.dir.clone()))
                .collect();
            if dead.is_empty() {
                continue;
            }
            // A restart (by a test) writes the new pid a moment after the old one ended.
            std::thread::sleep(Duration::from_secs(3));
            let state = lock(&self.state);
            if let Some(gone) = state
                .started
                .iter()
                .find(|s| dead.iter().any(|(n, _)| *n == s.name) && !alive(s.current_pid()))
            {
                return fail(format!(
                    "{} stopped unexpectedly; see {}/{}.log (all logs under {})",
                    gone.name,
                    gone.dir.display(),
                    gone.name,
                    logs.display()
                ));
            }
        }
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        self.stop_all();
    }
}

/// The order in which the services of a folder became ready at start (restarts by a test are
/// not noted): `ready.log` in the folder, one name a line.
pub const READY_LOG: &str = "ready.log";

fn note_ready(spec: &Spec) {
    use std::io::Write;
    let appended = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(spec.dir.join(READY_LOG))
        .and_then(|mut log| writeln!(log, "{}", spec.name));
    if let Err(e) = appended {
        crate::warn(&format!("cannot note that {} is ready: {e}", spec.name));
    }
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

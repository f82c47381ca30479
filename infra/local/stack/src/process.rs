//! Processes of the stack: started detached from the terminal (Ctrl-C reaches only the
//! supervisor, which then stops them in order), each with a pid file, a log and the record of
//! how it was started beside it in its directory, so that anyone (a test) can stop one and
//! start it again the same way; ready when its port answers or its ready file appears.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub use rustix::process::Signal;
use rustix::process::{kill_process, test_kill_process, Pid};
use serde::{Deserialize, Serialize};

/// How a service is started: everything needed to start it again.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Spec {
    /// Names its files in `dir`: `{name}.pid`, `{name}.json`.
    pub name: String,
    /// Its log, `{log}.log` in `dir`: instances of one function share theirs.
    pub log: String,
    pub program: PathBuf,
    pub args: Vec<String>,
    /// Added to the supervisor's own environment.
    pub env: BTreeMap<String, String>,
    /// The folder of its files (pid, log, spec), and its working directory unless `cwd` says.
    pub dir: PathBuf,
    #[serde(default)]
    pub cwd: Option<PathBuf>,
    pub readiness: Readiness,
}

/// When a started service counts as up.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Readiness {
    /// It accepts TCP connections on this loopback port.
    Port(u16),
    /// It wrote this file.
    File(PathBuf),
    /// Once it did not exit at once.
    Started,
}

#[derive(Debug)]
pub struct Failure(pub String);

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Failure {}

pub fn fail<T>(message: impl Into<String>) -> Result<T, Failure> {
    Err(Failure(message.into()))
}

/// How long a service may take to become ready.
pub const START_TIMEOUT: Duration = Duration::from_secs(90);

impl Spec {
    pub fn new(name: &str, dir: &Path, program: impl Into<PathBuf>) -> Self {
        Self {
            name: name.to_owned(),
            log: name.to_owned(),
            program: program.into(),
            args: Vec::new(),
            env: BTreeMap::new(),
            dir: dir.to_owned(),
            cwd: None,
            readiness: Readiness::Started,
        }
    }

    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    pub fn env(mut self, name: &str, value: impl Into<String>) -> Self {
        self.env.insert(name.to_owned(), value.into());
        self
    }

    pub fn envs(mut self, vars: &BTreeMap<String, String>) -> Self {
        self.env
            .extend(vars.iter().map(|(k, v)| (k.clone(), v.clone())));
        self
    }

    /// Runs it in `cwd` (its files stay in its folder).
    pub fn working_in(mut self, cwd: &Path) -> Self {
        self.cwd = Some(cwd.to_owned());
        self
    }

    /// Appends its output to `{log}.log` rather than its own.
    pub fn log_as(mut self, log: &str) -> Self {
        self.log = log.to_owned();
        self
    }

    pub fn ready_on(mut self, readiness: Readiness) -> Self {
        self.readiness = readiness;
        self
    }

    pub fn pid_file(&self) -> PathBuf {
        self.dir.join(format!("{}.pid", self.name))
    }

    pub fn log_file(&self) -> PathBuf {
        self.dir.join(format!("{}.log", self.log))
    }

    fn spec_file(dir: &Path, name: &str) -> PathBuf {
        dir.join(format!("{name}.json"))
    }

    /// Starts the process detached (its own process group), its output appended to its log,
    /// and writes its pid file and spec. Returns its pid; see [`Spec::wait_ready`].
    pub fn spawn(&self) -> Result<i32, Failure> {
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| Failure(format!("cannot create {}: {e}", self.dir.display())))?;
        if let Readiness::File(file) = &self.readiness {
            let _ = std::fs::remove_file(file);
        }
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_file())
            .map_err(|e| Failure(format!("cannot open {}: {e}", self.log_file().display())))?;
        let err = log
            .try_clone()
            .map_err(|e| Failure(format!("{}: {e}", self.log_file().display())))?;
        let child = Command::new(&self.program)
            .args(&self.args)
            .envs(&self.env)
            .current_dir(self.cwd.as_ref().unwrap_or(&self.dir))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            // Its own process group: a Ctrl-C in the terminal reaches the supervisor only,
            // which stops the services in order (the last started first).
            .process_group(0)
            .spawn()
            .map_err(|e| {
                Failure(format!(
                    "cannot start {} ({}): {e}",
                    self.name,
                    self.program.display()
                ))
            })?;
        let pid = child.id() as i32;
        // Not waited on here: `alive` tells a zombie from a live process, and the
        // supervisor's exit reaps what is left.
        std::mem::forget(child);
        write(&self.pid_file(), &format!("{pid}\n"))?;
        let spec = serde_json::to_string_pretty(self).map_err(|e| Failure(e.to_string()))?;
        write(&Self::spec_file(&self.dir, &self.name), &spec)?;
        Ok(pid)
    }

    /// Waits until the service is ready; fails, with the end of its log, when it exits first
    /// or is not ready within [`START_TIMEOUT`].
    pub fn wait_ready(&self, pid: i32) -> Result<(), Failure> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let ready = match &self.readiness {
                Readiness::Port(port) => listening(*port),
                Readiness::File(file) => file.exists(),
                Readiness::Started => {
                    std::thread::sleep(Duration::from_millis(100));
                    true
                }
            };
            if !alive(pid) {
                return fail(format!(
                    "{} exited at start (log: {}):\n{}",
                    self.name,
                    self.log_file().display(),
                    tail(&self.log_file(), 15)
                ));
            }
            if ready {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return fail(format!(
                    "{} was not ready within {} s ({:?}; log: {})",
                    self.name,
                    START_TIMEOUT.as_secs(),
                    self.readiness,
                    self.log_file().display()
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn write(path: &Path, text: &str) -> Result<(), Failure> {
    std::fs::write(path, text).map_err(|e| Failure(format!("cannot write {}: {e}", path.display())))
}

/// Whether something accepts connections on this loopback port.
pub fn listening(port: u16) -> bool {
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_ok()
}

/// A free loopback port.
pub fn free_port() -> Result<u16, Failure> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| Failure(format!("no free port: {e}")))
}

/// Whether `pid` runs (a zombie does not).
pub fn alive(pid: i32) -> bool {
    let Some(pid) = Pid::from_raw(pid) else {
        return false;
    };
    if test_kill_process(pid).is_err() {
        return false;
    }
    // A process that exited but was not reaped yet still takes signals: its state says.
    match std::fs::read_to_string(format!("/proc/{}/stat", pid.as_raw_nonzero())) {
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_none_or(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// Sends `signal` to `pid`; a process that is gone is no error.
pub fn signal(pid: i32, signal: Signal) {
    if let Some(pid) = Pid::from_raw(pid) {
        let _ = kill_process(pid, signal);
    }
}

/// SIGTERM, then SIGKILL if the process is still there after `grace`.
pub fn stop(pid: i32, grace: Duration) {
    if !alive(pid) {
        return;
    }
    signal(pid, Signal::TERM);
    let deadline = Instant::now() + grace;
    while alive(pid) {
        if Instant::now() >= deadline {
            eprintln!(
                "[stack] pid {pid} did not stop within {} s: killing it",
                grace.as_secs()
            );
            signal(pid, Signal::KILL);
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The pid in a service's pid file.
pub fn pid_of(dir: &Path, name: &str) -> Option<i32> {
    std::fs::read_to_string(dir.join(format!("{name}.pid")))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Stops the service `name` whose files are in `dir` and starts it again as it was started,
/// waiting until it is ready. The supervisor that started it first still stops it, through its
/// pid file.
pub fn restart(dir: &Path, name: &str) -> Result<(), Failure> {
    let file = Spec::spec_file(dir, name);
    let text = std::fs::read_to_string(&file)
        .map_err(|e| Failure(format!("no service {name} in {}: {e}", dir.display())))?;
    let spec: Spec = serde_json::from_str(&text).map_err(|e| Failure(e.to_string()))?;
    if let Some(pid) = pid_of(dir, name) {
        stop(pid, Duration::from_secs(30));
    }
    let pid = spec.spawn()?;
    spec.wait_ready(pid)
}

/// The last `lines` lines of a file.
pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

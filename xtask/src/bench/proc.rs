//! The processes of a run: the tracker under test, with its log, and the
//! generator, each pinned to its core and stopped however the bench ends.

use std::fs;
use std::io::{BufRead, BufReader, Write as _};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

use super::{check_stop, SERVER_CPU, STOP};

/// A child process killed (and reaped) when dropped.
pub struct Proc {
    pub child: Child,
}

impl Proc {
    /// Starts `program` pinned to `cpu`, inside network namespace `ns` when
    /// given (like `nsenter --net`, without touching mounts, so bpffs under
    /// /sys stays visible).
    pub fn spawn(
        program: &Path,
        args: &[String],
        ns: Option<&str>,
        cpu: usize,
        stdout: Stdio,
        stderr: Stdio,
    ) -> Result<Proc> {
        let ns_file = match ns {
            Some(ns) => {
                let path = format!("/var/run/netns/{ns}");
                Some(fs::File::open(&path).with_context(|| format!("opening {path}"))?)
            }
            None => None,
        };
        let ns_fd = ns_file.as_ref().map(|f| f.as_raw_fd());
        let mut cmd = Command::new(program);
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .current_dir(crate::workspace_root());
        // SAFETY: only async-signal-safe system calls between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                if let Some(fd) = ns_fd {
                    if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                let mut set: libc::cpu_set_t = std::mem::zeroed();
                libc::CPU_SET(cpu, &mut set);
                if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // Our Ctrl-C handling stops the children; keep the terminal's
                // SIGINT from killing them before we read what they said.
                libc::setpgid(0, 0);
                // And if we die outright, so do they (the tracker detaches
                // its XDP program on SIGTERM).
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {}", program.display()))?;
        drop(ns_file);
        Ok(Proc { child })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn wait_until(&mut self, deadline: Instant) -> Result<std::process::ExitStatus> {
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            if STOP.load(Ordering::SeqCst) {
                bail!("interrupted");
            }
            if Instant::now() >= deadline {
                bail!("{} ran past its deadline; killed", self.child.id());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM, then SIGKILL after `grace`.
    pub fn stop(&mut self, grace: Duration) {
        if !self.alive() {
            return;
        }
        // SAFETY: signalling our own child, which we have not reaped.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if !self.alive() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(5));
    }
}

/// A tracker under test and what it wrote to stderr.
pub struct Tracker {
    proc: Proc,
    /// How the tracker is named in messages.
    label: String,
    log: Arc<Mutex<Vec<String>>>,
    log_path: PathBuf,
}

impl Tracker {
    /// Starts `program` pinned to the server core; with `ready`, waits
    /// (30 s at most) for a log line containing it.
    pub fn start(
        program: &Path,
        args: &[String],
        ns: Option<&str>,
        log_path: &Path,
        ready: Option<&str>,
        label: &str,
    ) -> Result<Tracker> {
        let mut proc = Proc::spawn(program, args, ns, SERVER_CPU, Stdio::null(), Stdio::piped())?;
        let stderr = proc.child.stderr.take().context("tracker stderr")?;
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let ready_owned = ready.map(str::to_owned);
        {
            let log = Arc::clone(&log);
            let mut file = fs::File::create(log_path)?;
            std::thread::spawn(move || {
                let mut tx = Some(tx);
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    let _ = writeln!(file, "{line}");
                    if let (Some(want), Some(_)) = (&ready_owned, &tx) {
                        if line.contains(want.as_str()) {
                            let _ = tx.take().map(|t| t.send(()));
                        }
                    }
                    let mut log = log.lock().unwrap();
                    if log.len() < 10_000 {
                        log.push(line);
                    }
                }
            });
        }
        let mut tracker = Tracker {
            proc,
            label: label.to_owned(),
            log,
            log_path: log_path.to_path_buf(),
        };
        if ready.is_some() {
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                match rx.recv_timeout(Duration::from_millis(100)) {
                    Ok(()) => break,
                    Err(mpsc::RecvTimeoutError::Timeout) => {}
                    Err(mpsc::RecvTimeoutError::Disconnected) => {
                        std::thread::sleep(Duration::from_millis(100));
                        bail!(
                            "{} exited before it was ready:\n{}",
                            tracker.label,
                            tracker.log_tail()
                        );
                    }
                }
                check_stop()?;
                if !tracker.proc.alive() {
                    std::thread::sleep(Duration::from_millis(100));
                    bail!(
                        "{} exited before it was ready:\n{}",
                        tracker.label,
                        tracker.log_tail()
                    );
                }
                if Instant::now() > deadline {
                    bail!(
                        "{} not ready after 30 s:\n{}",
                        tracker.label,
                        tracker.log_tail()
                    );
                }
            }
        }
        Ok(tracker)
    }

    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    pub fn alive(&mut self) -> bool {
        self.proc.alive()
    }

    pub fn log_line_containing(&self, what: &str) -> Option<String> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .find(|l| l.contains(what))
            .cloned()
    }

    pub fn log_tail(&self) -> String {
        let log = self.log.lock().unwrap();
        let from = log.len().saturating_sub(20);
        format!(
            "(last lines of {}, log in {})\n{}",
            self.label,
            self.log_path.display(),
            log[from..].join("\n")
        )
    }

    pub fn explain(&self, e: anyhow::Error) -> anyhow::Error {
        anyhow!("{e:#}\n{}", self.log_tail())
    }
}

/// When the generator starts its load: it sets up (and with `udp.prefill`
/// announces every simulated client once) on its main thread, then starts
/// its worker threads (`udp-load-N`, `http-load-N`, `ws-load-N` for
/// tracker-load), from which its warm-up counts. The first extra thread
/// marks the start; without one within `patience`, the spawn time does.
pub fn load_started(gen: &mut Proc, patience: Duration) -> Result<Instant> {
    let spawned = Instant::now();
    let task_dir = format!("/proc/{}/task", gen.pid());
    while spawned.elapsed() < patience {
        check_stop()?;
        if !gen.alive() {
            bail!("the generator exited before it started its load");
        }
        let threads = fs::read_dir(&task_dir).map(|d| d.count()).unwrap_or(0);
        if threads > 1 {
            return Ok(Instant::now());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    eprintln!("xtask:   the generator never started a second thread; timing from its start");
    Ok(spawned)
}

/// Sleeps until `when`, failing early if the generator exits or we are
/// interrupted.
pub fn sleep_until(when: Instant, gen: &mut Proc) -> Result<()> {
    while Instant::now() < when {
        check_stop()?;
        if !gen.alive() {
            bail!("the generator exited before the measured window ended");
        }
        std::thread::sleep((when - Instant::now()).min(Duration::from_millis(50)));
    }
    Ok(())
}

/// The last `lines` lines of `text`.
pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

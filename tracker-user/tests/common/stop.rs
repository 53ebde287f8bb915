//! Stopping one thread of a running tracker (a request worker, a socket
//! worker) with ptrace, to overload what it serves deterministically.
//! Needs root, or CAP_SYS_PTRACE.

/// One thread of the tracker, stopped with ptrace until dropped. The
/// tracer is the thread that made this, which must also drop it.
pub struct StoppedThread {
    tid: libc::pid_t,
}

impl StoppedThread {
    /// Stops the thread of process `pid` whose name is `name`.
    pub fn new(pid: u32, name: &str) -> Self {
        let tid = thread_named(pid, name);
        // SAFETY: ptrace with integer arguments only; failures are checked.
        let rc = unsafe { libc::ptrace(libc::PTRACE_SEIZE, tid, 0, 0) };
        assert_eq!(rc, 0, "PTRACE_SEIZE {name}: {}", errno());
        // SAFETY: as above; `tid` is now our tracee.
        let rc = unsafe { libc::ptrace(libc::PTRACE_INTERRUPT, tid, 0, 0) };
        assert_eq!(rc, 0, "PTRACE_INTERRUPT {name}: {}", errno());
        let mut status = 0;
        // SAFETY: `status` is a live i32 for waitpid to write; __WALL
        // waits for a tracee that is a thread of another process.
        let waited = unsafe { libc::waitpid(tid, &mut status, libc::__WALL) };
        assert_eq!(waited, tid, "waitpid {name}: {}", errno());
        assert!(libc::WIFSTOPPED(status), "{name} not stopped: {status:#x}");
        Self { tid }
    }
}

impl Drop for StoppedThread {
    fn drop(&mut self) {
        // SAFETY: integer arguments; detaching resumes the thread.
        unsafe { libc::ptrace(libc::PTRACE_DETACH, self.tid, 0, 0) };
    }
}

fn errno() -> std::io::Error {
    std::io::Error::last_os_error()
}

/// The id of the thread of `pid` named `name` (`/proc/PID/task/*/comm`).
/// A new thread names itself when it first runs, which on a loaded
/// machine can come after the ready line: looked for for up to 10 s.
fn thread_named(pid: u32, name: &str) -> libc::pid_t {
    let tasks = format!("/proc/{pid}/task");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        for entry in std::fs::read_dir(&tasks).unwrap() {
            let path = entry.unwrap().path();
            let comm = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
            if comm.trim_end() == name {
                let tid = path.file_name().unwrap().to_str().unwrap();
                return tid.parse().unwrap();
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    panic!("no thread named {name} under {tasks}")
}

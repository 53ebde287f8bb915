//! `cargo xtask fuzz [--seconds N] [--parallel P] [TARGET...]`: builds the
//! libFuzzer targets in `fuzz/` with cargo-fuzz and runs each for a bounded
//! time, failing on any crash.
//!
//! cargo-fuzz needs a nightly compiler (`-Z sanitizer`); both the nightly
//! toolchain and cargo-fuzz are installed when missing. Each run starts
//! from a fresh copy of the committed seeds (`fuzz/corpus/<target>/`) in
//! `target/fuzz-corpus/<target>/`, so what a run discovers never lands in
//! the repository; crash inputs go to `target/fuzz-artifacts/<target>/`,
//! with libFuzzer's output beside them in `log`; `TMPDIR` is
//! `target/fuzz-tmp/<target>/` for the targets that go through a file.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::ebpf;

/// Seconds per target when `cargo xtask test` runs the fuzzers: long enough
/// to get past the seeds into new coverage, short enough that the fuzz
/// step (build included) stays around five minutes on two cores.
pub const TEST_SECONDS: u64 = 20;

const DEFAULT_SECONDS: u64 = 60;
/// A single input taking longer than this is reported as a hang: every
/// parser here is linear in its input and answers in microseconds.
const INPUT_TIMEOUT_SECONDS: u64 = 10;
const TOOLCHAIN: &str = "nightly";

pub const USAGE: &str = "\
usage: cargo xtask fuzz [--seconds N] [--parallel P] [TARGET...]

Builds the fuzz targets in fuzz/ (cargo-fuzz, nightly; both installed when
missing) and runs every target, or those named, for N seconds each
(default 60), P at a time (default 1), each from a fresh copy of its seeds
in fuzz/corpus/TARGET. Fails on any crash, naming the target and the crash
file under target/fuzz-artifacts/TARGET/.
";

struct Options {
    seconds: u64,
    parallel: usize,
    targets: Vec<String>,
}

fn parse_args(args: &[String]) -> Result<Options> {
    let mut options = Options {
        seconds: DEFAULT_SECONDS,
        parallel: 1,
        targets: Vec::new(),
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut number = |name: &str| -> Result<u64> {
            let value = args
                .next()
                .with_context(|| format!("{name} needs a value\n\n{USAGE}"))?;
            match value.parse::<u64>() {
                Ok(n) if n >= 1 => Ok(n),
                _ => bail!("{name} wants a whole number of at least 1, got `{value}`"),
            }
        };
        match arg.as_str() {
            "--seconds" => options.seconds = number("--seconds")?,
            "--parallel" => {
                options.parallel = usize::try_from(number("--parallel")?).unwrap_or(usize::MAX)
            }
            "help" | "-h" | "--help" => {
                print!("{USAGE}");
                std::process::exit(0);
            }
            other if other.starts_with('-') => bail!("unknown option `{other}`\n\n{USAGE}"),
            target => options.targets.push(target.to_owned()),
        }
    }
    Ok(options)
}

pub fn run(args: &[String]) -> Result<()> {
    let options = parse_args(args)?;
    fuzz(&options.targets, options.seconds, options.parallel)
}

fn fuzz_dir() -> PathBuf {
    super::workspace_root().join("fuzz")
}

/// The targets, from `fuzz/fuzz_targets/*.rs`, sorted.
pub fn all_targets() -> Result<Vec<String>> {
    let dir = fuzz_dir().join("fuzz_targets");
    let mut targets = Vec::new();
    for entry in fs::read_dir(&dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "rs") {
            if let Some(stem) = path.file_stem().and_then(|s| s.to_str()) {
                targets.push(stem.to_owned());
            }
        }
    }
    targets.sort();
    Ok(targets)
}

/// Builds and runs `targets` (all when empty) for `seconds` each,
/// `parallel` at a time.
pub fn fuzz(targets: &[String], seconds: u64, parallel: usize) -> Result<()> {
    let all = all_targets()?;
    let targets = if targets.is_empty() {
        all
    } else {
        for t in targets {
            if !all.contains(t) {
                bail!("no fuzz target `{t}`; the targets are: {}", all.join(", "));
            }
        }
        targets.to_vec()
    };
    ebpf::ensure_nightly()?;
    ensure_cargo_fuzz()?;
    let bin_dir = build()?;

    let root = super::workspace_root();
    let mut queue = targets.iter();
    let mut running: Vec<Running> = Vec::new();
    let mut crashed: Vec<String> = Vec::new();
    loop {
        while running.len() < parallel.max(1) {
            let Some(target) = queue.next() else { break };
            running.push(start(&root, &bin_dir, target, seconds)?);
        }
        if running.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
        let mut i = 0;
        while i < running.len() {
            match running[i].child.try_wait()? {
                None => i += 1,
                Some(status) => {
                    let done = running.swap_remove(i);
                    if let Some(report) = finish(&done, status.success())? {
                        crashed.push(report);
                    }
                }
            }
        }
    }
    if !crashed.is_empty() {
        bail!(
            "fuzzing found {} crash(es):\n  {}\nreproduce one with `{}/TARGET FILE`",
            crashed.len(),
            crashed.join("\n  "),
            bin_dir.display()
        );
    }
    Ok(())
}

fn ensure_cargo_fuzz() -> Result<()> {
    if ebpf::capture("rustup", &["run", TOOLCHAIN, "cargo", "fuzz", "--version"]).is_some() {
        return Ok(());
    }
    ebpf::install(
        &super::cargo(),
        &["install", "cargo-fuzz", "--locked"],
        "installing cargo-fuzz",
        "cargo-fuzz builds the libFuzzer targets; installing it needs \
         crates.io access and a C toolchain",
    )
}

/// Builds every target (one build shares the dependencies) and returns the
/// directory the binaries are in.
fn build() -> Result<PathBuf> {
    let root = super::workspace_root();
    let target_dir = root.join("target").join("fuzz");
    let args = ["run", TOOLCHAIN, "cargo", "fuzz", "build"];
    eprintln!("xtask: running rustup {} (fuzz/)", args.join(" "));
    let status = ebpf::clean_command("rustup")
        .args(args)
        .arg("--fuzz-dir")
        .arg(fuzz_dir())
        .arg("--target-dir")
        .arg(&target_dir)
        .current_dir(&root)
        .status()
        .context("cannot start `rustup`")?;
    if !status.success() {
        bail!("building the fuzz targets failed ({status}); the errors are above");
    }
    let host = host_triple()?;
    Ok(target_dir.join(host).join("release"))
}

/// cargo-fuzz builds for the host triple explicitly, so the binaries land
/// under `target/fuzz/<triple>/release/`.
fn host_triple() -> Result<String> {
    let out = ebpf::capture("rustup", &["run", TOOLCHAIN, "rustc", "-vV"])
        .context("`rustc -vV` on nightly failed")?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .map(str::to_owned)
        .context("`rustc -vV` names no host")
}

struct Running {
    target: String,
    child: Child,
    artifacts: PathBuf,
    log: PathBuf,
}

fn start(root: &Path, bin_dir: &Path, target: &str, seconds: u64) -> Result<Running> {
    let seeds = fuzz_dir().join("corpus").join(target);
    let corpus = root.join("target").join("fuzz-corpus").join(target);
    let artifacts = root.join("target").join("fuzz-artifacts").join(target);
    // The file-reading targets write each input to a scratch file in the
    // temporary directory; this keeps those under target/ too.
    let tmp = root.join("target").join("fuzz-tmp").join(target);
    for dir in [&corpus, &artifacts, &tmp] {
        if dir.exists() {
            fs::remove_dir_all(dir).with_context(|| format!("cannot clear {}", dir.display()))?;
        }
        fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    if seeds.is_dir() {
        for entry in fs::read_dir(&seeds)? {
            let path = entry?.path();
            if path.is_file() {
                fs::copy(
                    &path,
                    corpus.join(path.file_name().expect("a file has a name")),
                )
                .with_context(|| format!("cannot copy seed {}", path.display()))?;
            }
        }
    } else {
        eprintln!("xtask: warning: no seeds in {}", seeds.display());
    }
    let log = artifacts.join("log");
    let log_file =
        fs::File::create(&log).with_context(|| format!("cannot create {}", log.display()))?;
    let bin = bin_dir.join(target);
    let mut prefix = artifacts.clone().into_os_string();
    prefix.push("/");
    let mut artifact_prefix = std::ffi::OsString::from("-artifact_prefix=");
    artifact_prefix.push(&prefix);
    eprintln!("xtask: fuzzing {target} for {seconds} s");
    let child = Command::new(&bin)
        .arg(&corpus)
        .arg(format!("-max_total_time={seconds}"))
        .arg(format!("-timeout={INPUT_TIMEOUT_SECONDS}"))
        .arg(artifact_prefix)
        .arg("-print_final_stats=1")
        .current_dir(root)
        .env("TMPDIR", &tmp)
        .stdin(Stdio::null())
        .stdout(log_file.try_clone()?)
        .stderr(log_file)
        .spawn()
        .with_context(|| format!("cannot start {}", bin.display()))?;
    Ok(Running {
        target: target.to_owned(),
        child,
        artifacts,
        log,
    })
}

/// Prints how the run went; `Some(report)` when it found something.
fn finish(run: &Running, success: bool) -> Result<Option<String>> {
    let log = fs::read_to_string(&run.log).unwrap_or_default();
    // libFuzzer's last words: "Done 1234 runs in 20 second(s)".
    let runs = log
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("stat::number_of_executed_units: "))
        .unwrap_or("?");
    let mut findings: Vec<PathBuf> = fs::read_dir(&run.artifacts)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.file_name().is_some_and(|n| n != "log"))
        .collect();
    findings.sort();
    if success && findings.is_empty() {
        eprintln!("xtask: fuzz {}: {runs} runs, no crash", run.target);
        return Ok(None);
    }
    eprintln!(
        "xtask: fuzz {} FAILED after {runs} runs; from {}:",
        run.target,
        run.log.display()
    );
    // The panic message (or sanitizer report) and where the input went;
    // the backtrace in between stays in the log.
    let lines: Vec<&str> = log.lines().collect();
    let first = lines
        .iter()
        .position(|l| {
            l.contains("panicked at") || l.contains("==ERROR:") || l.contains("ERROR: libFuzzer")
        })
        .unwrap_or(lines.len().saturating_sub(10));
    for line in lines.iter().skip(first).take(6) {
        eprintln!("  {line}");
    }
    for line in lines.iter().skip(first + 6) {
        if line.starts_with("SUMMARY:") || line.contains("Test unit written to") {
            eprintln!("  {line}");
        }
    }
    let files = if findings.is_empty() {
        format!("no crash file (see {})", run.log.display())
    } else {
        findings
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    Ok(Some(format!("{}: {files}", run.target)))
}

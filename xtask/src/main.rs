//! Project chores that need more than one cargo command: `cargo xtask help`.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{bail, Context, Result};

mod bench;
mod ebpf;
mod fuzz;

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  test    the whole test suite, as CI runs it (as root): rustfmt check, the
          XDP program (build-ebpf), clippy with warnings denied, then every
          test of the workspace, then the front ends' integration tests
          again with the request worker inline and on its own thread
          ([swarm] inline on and off). Integration tests start the real tracker;
          the XDP tests build network namespaces; the npm client test
          installs its client with npm on first use. Last, every fuzz
          target for 20 s, two at a time (see fuzz).
  build-ebpf
          build the XDP program (tracker-ebpf) with the nightly toolchain,
          installing rust-src and bpf-linker 0.10.4 when missing, and leave
          the object where the tracker-user build embeds it
  bench udp|http|ws [--runs N] [--seconds S] [--warmup W] [--quick] [--no-build]
          side-by-side benchmark against aquatic_udp, aquatic_http or
          aquatic_ws under the same generator (tracker-load): udp over
          loopback and over a veth pair from a client namespace with and
          without XDP (--no-steer); http and ws plain and over TLS (--tls or
          --plain for one); medians into the bench's own sections of
          docs/benchmarks.md. `cargo xtask bench help` for more.
  fuzz [--seconds N] [--parallel P] [TARGET...]
          build the libFuzzer targets in fuzz/ (nightly and cargo-fuzz,
          installed when missing) and run every target, or those named, for
          N seconds each (60) from a copy of its seeds; fails on a crash,
          naming the target and the file under target/fuzz-artifacts/
  help    this text
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("test") => test(&args[1..]),
        Some("build-ebpf") => ebpf::build(),
        Some("bench") => bench::run(&args[1..]),
        Some("fuzz") => fuzz::run(&args[1..]),
        Some("help") | Some("-h") | Some("--help") => {
            print!("{USAGE}");
            Ok(())
        }
        Some(other) => Err(anyhow::anyhow!("unknown command `{other}`\n\n{USAGE}")),
        None => Err(anyhow::anyhow!("no command given\n\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask sits inside the workspace")
        .to_path_buf()
}

/// Runs a command in the workspace root, failing with what it was.
fn run(program: &str, args: &[&str]) -> Result<()> {
    eprintln!("xtask: running {program} {}", args.join(" "));
    let status = Command::new(program)
        .args(args)
        .current_dir(workspace_root())
        .status()
        .with_context(|| format!("cannot start `{program}`"))?;
    if !status.success() {
        bail!("`{program} {}` failed ({status})", args.join(" "));
    }
    Ok(())
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

/// The integration tests of the front ends (tracker-user/tests/), which
/// `cargo xtask test` runs once more with the request worker inline and
/// once with it on a thread of its own (`TRACKER_TEST_SWARM_INLINE`).
const FRONT_END_TESTS: &[&str] = &[
    "udp",
    "http",
    "ws",
    "ws_close",
    "metrics_udp",
    "metrics_tcp",
    "persistence",
    "inline",
    "xdp",
];

/// The XDP tests, which `cargo xtask test` runs once more with the
/// program's in-kernel scrapes and announces on
/// (`TRACKER_TEST_XDP_KERNEL_ANSWERS=on`; they are off by default): every
/// BEP 15 behaviour must hold with them too.
const KERNEL_ANSWER_TESTS: &[&str] = &["xdp"];

/// `cargo test ARGS` with the no-XDP binary's path the fallback test
/// needs, and `forced`, the harness's switches (`(variable, value)`).
fn cargo_test(
    cargo: &str,
    args: &[&str],
    no_ebpf_dir: &str,
    forced: &[(&str, &str)],
) -> Result<std::process::ExitStatus> {
    let mut command = Command::new(cargo);
    command
        .args(args)
        .env(
            "TRACKER_USER_NO_EBPF_BIN",
            format!("{no_ebpf_dir}/debug/tracker-user"),
        )
        .current_dir(workspace_root());
    let mut shown = String::new();
    for (key, value) in forced {
        command.env(key, value);
        shown.push_str(&format!("{key}={value} "));
    }
    let forced = shown;
    eprintln!("xtask: running {forced}{cargo} {}", args.join(" "));
    command.status().context("cannot run cargo")
}

fn test(extra: &[String]) -> Result<()> {
    let cargo = cargo();
    run(&cargo, &["fmt", "--all", "--", "--check"])
        .context("formatting differs: run `cargo fmt --all`")?;
    // The XDP tests need the program built in; the fallback test needs a
    // tracker-user without it, built into a target dir of its own so the
    // two builds do not keep invalidating each other.
    ebpf::build().context("building the XDP program for the XDP tests")?;
    let no_ebpf_dir = workspace_root().join("target/no-ebpf");
    let no_ebpf_dir = no_ebpf_dir.to_str().context("non-UTF-8 target path")?;
    eprintln!("xtask: building a tracker-user without the XDP program");
    let status = Command::new(&cargo)
        .args(["build", "-p", "tracker-user", "--target-dir", no_ebpf_dir])
        .env("TRACKER_EBPF_OBJECT", "/nonexistent/tracker-ebpf.o")
        .current_dir(workspace_root())
        .status()
        .context("cannot run cargo")?;
    if !status.success() {
        bail!("building tracker-user without the XDP program failed ({status})");
    }
    run(
        &cargo,
        &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ],
    )?;
    let mut args = vec!["test", "--workspace"];
    args.extend(extra.iter().map(String::as_str));
    let status = cargo_test(&cargo, &args, no_ebpf_dir, &[])?;
    if !status.success() {
        bail!("tests failed ({status})");
    }
    // The default ("auto") runs the request worker inline or on a thread
    // of its own depending on the machine's cores; the front ends' tests
    // run again in each design, whatever this machine chose.
    for mode in ["on", "off"] {
        let mut args = vec!["test", "-p", "tracker-user"];
        for test in FRONT_END_TESTS {
            args.extend(["--test", test]);
        }
        let forced = [("TRACKER_TEST_SWARM_INLINE", mode)];
        let status = cargo_test(&cargo, &args, no_ebpf_dir, &forced)?;
        if !status.success() {
            bail!("tests with [swarm] inline = {mode} failed ({status})");
        }
    }
    let mut args = vec!["test", "-p", "tracker-user"];
    for test in KERNEL_ANSWER_TESTS {
        args.extend(["--test", test]);
    }
    let forced = [("TRACKER_TEST_XDP_KERNEL_ANSWERS", "on")];
    let status = cargo_test(&cargo, &args, no_ebpf_dir, &forced)?;
    if !status.success() {
        bail!("XDP tests with the in-kernel scrapes and announces on failed ({status})");
    }
    // Both cores: CI runs nothing else by now.
    fuzz::fuzz(&[], fuzz::TEST_SECONDS, 2).context("fuzzing")?;
    Ok(())
}

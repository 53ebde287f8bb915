//! `cargo xtask build-ebpf`: builds the XDP program in `tracker-ebpf/`.
//!
//! The program needs a nightly compiler (`-Z build-std=core` for the
//! `bpfel-unknown-none` target, which ships no prebuilt `core`) and
//! bpf-linker. bpf-linker 0.10 borrows the LLVM inside the nightly
//! toolchain; 0.11 and later want a system LLVM the usual distributions do
//! not have yet, hence the pin. Each tool is installed when missing, and
//! every failure says which step broke and what to try by hand.

use std::env;
use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use anyhow::{bail, Context, Result};

/// Names the dated nightly the program is built with.
const TOOLCHAIN_FILE: &str = "rust-toolchain.toml";
const TARGET: &str = "bpfel-unknown-none";
const BPF_LINKER_VERSION: &str = "0.10.4";
const CRATE_DIR: &str = "tracker-ebpf";
/// Name of the object cargo leaves in the target directory: the crate's
/// binary name.
const BINARY: &str = "tracker-ebpf";

// `EBPF_OBJECT_PATH`, shared with tracker-user's build script.
include!("../../tracker-user/ebpf_object_path.rs");

/// Where the built object is copied; `tracker-user`'s build script embeds
/// the file at this path when it exists.
pub fn object_path() -> PathBuf {
    super::workspace_root().join(EBPF_OBJECT_PATH)
}

pub fn build() -> Result<()> {
    let root = super::workspace_root();
    let channel = pinned_channel(&root.join(CRATE_DIR).join(TOOLCHAIN_FILE))?;
    let toolchain = ensure_pinned_nightly(&channel)?;
    ensure_rust_src(&toolchain)?;
    let linker_dir = ensure_bpf_linker()?;

    // A target directory of its own: the workspace build holds the lock on
    // `target/` and uses another toolchain, so sharing it would serialize
    // builds and rebuild std crates back and forth.
    let target_dir = root.join("target").join("ebpf-build");
    let args = [
        "run",
        &toolchain,
        "cargo",
        "build",
        "--release",
        // tracker-ebpf/Cargo.lock pins versions this nightly can build.
        "--locked",
        "--target",
        TARGET,
        "-Z",
        "build-std=core",
    ];
    eprintln!("xtask: running rustup {} (in {CRATE_DIR}/)", args.join(" "));
    let mut cmd = clean_command("rustup");
    cmd.args(args)
        .arg("--target-dir")
        .arg(&target_dir)
        .current_dir(root.join(CRATE_DIR));
    if let Some(dir) = linker_dir {
        cmd.env("PATH", path_with(&dir)?);
    }
    let status = cmd.status().context("cannot start `rustup`")?;
    if !status.success() {
        bail!(
            "building {CRATE_DIR} failed ({status}); the errors are above (a \
             link error naming bpf-linker means the linker itself failed: \
             `bpf-linker --version` should print {BPF_LINKER_VERSION})"
        );
    }

    let built = target_dir.join(TARGET).join("release").join(BINARY);
    let dest = object_path();
    fs::create_dir_all(dest.parent().expect("object path has a parent"))
        .with_context(|| format!("cannot create {}", dest.display()))?;
    fs::copy(&built, &dest).with_context(|| {
        format!(
            "cargo succeeded but {} is missing or unreadable",
            built.display()
        )
    })?;
    println!("{}", dest.display());
    Ok(())
}

/// A command that does not inherit what the outer (stable) cargo told
/// `xtask`: a leaked `RUSTC`, `RUSTUP_TOOLCHAIN` or `RUSTFLAGS` would make the
/// inner build use the wrong compiler or flags meant for the host.
pub(crate) fn clean_command(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut cmd = Command::new(program);
    for (key, _) in env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        let leaks = matches!(
            key,
            "CARGO"
                | "RUSTC"
                | "RUSTDOC"
                | "RUSTC_WRAPPER"
                | "RUSTC_WORKSPACE_WRAPPER"
                | "RUSTFLAGS"
                | "RUSTDOCFLAGS"
                | "RUSTUP_TOOLCHAIN"
                | "CARGO_TARGET_DIR"
                | "CARGO_ENCODED_RUSTFLAGS"
                | "CARGO_ENCODED_RUSTDOCFLAGS"
                | "CARGO_MAKEFLAGS"
                | "CARGO_MANIFEST_DIR"
                | "CARGO_MANIFEST_PATH"
                | "CARGO_PRIMARY_PACKAGE"
                | "CARGO_CRATE_NAME"
                | "CARGO_BIN_NAME"
        ) || key.starts_with("CARGO_PKG_")
            || key.starts_with("CARGO_BUILD_")
            || key.starts_with("CARGO_CFG_")
            || (key.starts_with("CARGO_TARGET_") && key.ends_with("_RUSTFLAGS"))
            || (key.starts_with("CARGO_TARGET_") && key.ends_with("_LINKER"));
        if leaks {
            cmd.env_remove(key);
        }
    }
    cmd
}

/// Runs a command to inspect its output; `None` when it cannot start or
/// fails.
pub(crate) fn capture(program: &str, args: &[&str]) -> Option<Output> {
    let out = clean_command(program).args(args).output().ok()?;
    out.status.success().then_some(out)
}

/// Runs a command that installs something, failing with `what` and a hint.
pub(crate) fn install(program: &str, args: &[&str], what: &str, hint: &str) -> Result<()> {
    eprintln!("xtask: {what}: running {program} {}", args.join(" "));
    let status = clean_command(program)
        .args(args)
        .status()
        .with_context(|| format!("{what}: cannot start `{program}`; {hint}"))?;
    if !status.success() {
        bail!(
            "{what}: `{program} {}` failed ({status}); {hint}",
            args.join(" ")
        );
    }
    Ok(())
}

/// The `channel` of tracker-ebpf's toolchain file: `nightly-YYYY-MM-DD`.
fn pinned_channel(file: &Path) -> Result<String> {
    let text =
        fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    channel_from_toolchain_file(&text).with_context(|| {
        format!(
            "{} names no `channel = \"nightly-YYYY-MM-DD\"`",
            file.display()
        )
    })
}

fn channel_from_toolchain_file(text: &str) -> Option<String> {
    let value = text.lines().find_map(|l| {
        let (key, value) = l.split_once('=')?;
        (key.trim() == "channel").then(|| value.trim().trim_matches('"').to_owned())
    })?;
    nightly_date(&value).is_some().then_some(value)
}

/// `2026-05-20` from `nightly-2026-05-20`.
fn nightly_date(channel: &str) -> Option<&str> {
    let date = channel.strip_prefix("nightly-")?;
    let digits = date.bytes().filter(u8::is_ascii_digit).count();
    (date.len() == 10 && digits == 8 && date.as_bytes()[4] == b'-' && date.as_bytes()[7] == b'-')
        .then_some(date)
}

/// The toolchain to build with: the pinned `channel` when rustup has it
/// under that name, else a plain `nightly` whose manifest is of the pinned
/// date (the same toolchain, installed before the pin; CI has only what is
/// installed, since it reaches package registries but not rustup's
/// server), else `channel` freshly installed.
fn ensure_pinned_nightly(channel: &str) -> Result<String> {
    let out = capture("rustup", &["toolchain", "list"]).context(
        "`rustup toolchain list` failed: the eBPF build needs rustup \
         (https://rustup.rs) to fetch a nightly toolchain",
    )?;
    let list = String::from_utf8_lossy(&out.stdout).into_owned();
    let named = |name: &str| {
        list.lines().any(|l| {
            l.strip_prefix(name)
                .and_then(|rest| rest.strip_prefix('-'))
                // `<name>-<host>`, not `<name>-<date>-<host>`.
                .is_some_and(|rest| !rest.starts_with(|c: char| c.is_ascii_digit()))
        })
    };
    if named(channel) {
        return Ok(channel.to_owned());
    }
    let want = nightly_date(channel).context("the pinned channel is not nightly-YYYY-MM-DD")?;
    if named("nightly") {
        match installed_date("nightly") {
            Some(date) if date == want => return Ok("nightly".to_owned()),
            Some(date) => eprintln!(
                "xtask: the installed nightly is of {date}, the pin in \
                 {CRATE_DIR}/{TOOLCHAIN_FILE} is {want}"
            ),
            None => eprintln!("xtask: cannot tell the date of the installed nightly"),
        }
    }
    install(
        "rustup",
        &["toolchain", "install", channel, "--profile", "minimal"],
        &format!("installing {channel}"),
        &format!(
            "the eBPF target needs `-Z build-std`, which only nightly accepts; \
             check network access to static.rust-lang.org, or run \
             `rustup toolchain install {channel}` by hand"
        ),
    )?;
    Ok(channel.to_owned())
}

/// Makes sure a plain `nightly` is installed: what `cargo xtask fuzz` builds
/// with (it needs no particular date).
pub(crate) fn ensure_nightly() -> Result<()> {
    let out = capture("rustup", &["toolchain", "list"]).context(
        "`rustup toolchain list` failed: the fuzz build needs rustup \
         (https://rustup.rs) to fetch a nightly toolchain",
    )?;
    // `nightly-<host>`, not a dated `nightly-2026-01-01-<host>`, which
    // `rustup run nightly` would not pick.
    let listed = String::from_utf8_lossy(&out.stdout).lines().any(|l| {
        l.strip_prefix("nightly-")
            .is_some_and(|rest| !rest.starts_with(|c: char| c.is_ascii_digit()))
    });
    if listed {
        return Ok(());
    }
    install(
        "rustup",
        &["toolchain", "install", "nightly", "--profile", "minimal"],
        "installing the nightly toolchain",
        "cargo-fuzz needs `-Z sanitizer`, which only nightly accepts; \
         check network access to static.rust-lang.org, or run \
         `rustup toolchain install nightly` by hand",
    )
}

/// The release date of an installed toolchain, from the channel manifest
/// rustup keeps in its sysroot (`rustc -V` shows the commit date, a day
/// earlier than the nightly's).
fn installed_date(toolchain: &str) -> Option<String> {
    let out = capture("rustup", &["run", toolchain, "rustc", "--print", "sysroot"])?;
    let sysroot = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    let manifest = fs::read_to_string(
        sysroot
            .join("lib")
            .join("rustlib")
            .join("multirust-channel-manifest.toml"),
    )
    .ok()?;
    manifest_date(&manifest).map(str::to_owned)
}

/// The top-level `date = "YYYY-MM-DD"` of a rustup channel manifest.
fn manifest_date(manifest: &str) -> Option<&str> {
    manifest
        .lines()
        .take_while(|l| !l.starts_with('['))
        .find_map(|l| {
            let (key, value) = l.split_once('=')?;
            (key.trim() == "date").then(|| value.trim().trim_matches('"'))
        })
}

fn ensure_rust_src(toolchain: &str) -> Result<()> {
    let out = capture(
        "rustup",
        &["component", "list", "--installed", "--toolchain", toolchain],
    )
    .with_context(|| {
        format!("`rustup component list --installed --toolchain {toolchain}` failed")
    })?;
    let has_src = String::from_utf8_lossy(&out.stdout)
        .lines()
        .any(|l| l.trim() == "rust-src" || l.starts_with("rust-src "));
    if has_src {
        return Ok(());
    }
    install(
        "rustup",
        &["component", "add", "rust-src", "--toolchain", toolchain],
        &format!("adding rust-src to {toolchain}"),
        "`-Z build-std=core` compiles `core` from the rust-src component; \
         check network access to static.rust-lang.org",
    )
}

/// Makes sure a bpf-linker 0.10.x is reachable, installing it with the
/// cargo running xtask if not. Returns the directory to put first on `PATH`
/// so that cargo runs that very linker, or `None` when the one already on
/// `PATH` will do.
fn ensure_bpf_linker() -> Result<Option<PathBuf>> {
    if let Some(v) = linker_version(Path::new("bpf-linker")) {
        if v.starts_with("0.10.") {
            return Ok(None);
        }
        eprintln!(
            "xtask: the bpf-linker on PATH is {v}; versions after 0.10 need a \
             system LLVM, so using {BPF_LINKER_VERSION} from cargo's bin directory"
        );
    }
    // Where `cargo install` puts binaries.
    let bin = env::var_os("CARGO_INSTALL_ROOT")
        .or_else(|| env::var_os("CARGO_HOME"))
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|h| Path::new(&h).join(".cargo")))
        .context("none of CARGO_INSTALL_ROOT, CARGO_HOME and HOME is set")?
        .join("bin");
    let installed = bin.join("bpf-linker");
    match linker_version(&installed) {
        Some(v) if v.starts_with("0.10.") => return Ok(Some(bin)),
        Some(v) => eprintln!(
            "xtask: {} is version {v}; replacing it with {BPF_LINKER_VERSION}",
            installed.display()
        ),
        None => eprintln!("xtask: no bpf-linker in {}", bin.display()),
    }
    install(
        &super::cargo(),
        &[
            "install",
            "bpf-linker",
            "--version",
            BPF_LINKER_VERSION,
            "--locked",
            "--force",
        ],
        "installing bpf-linker (this compiles for a few minutes)",
        "bpf-linker links the BPF object; installing it needs crates.io \
         access and a C toolchain",
    )?;
    match linker_version(&installed) {
        Some(v) if v.starts_with("0.10.") => Ok(Some(bin)),
        Some(v) => bail!(
            "{} reports version {v} after installing {BPF_LINKER_VERSION}",
            installed.display()
        ),
        None => bail!(
            "`cargo install` succeeded but `{} --version` does not run",
            installed.display()
        ),
    }
}

/// The version `bpf-linker --version` reports ("bpf-linker 0.10.4").
fn linker_version(path: &Path) -> Option<String> {
    let out = clean_command(path).arg("--version").output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace().nth(1).map(str::to_owned)
}

/// `PATH` with `dir` in front.
fn path_with(dir: &Path) -> Result<OsString> {
    let rest = env::var_os("PATH").unwrap_or_default();
    let dirs = std::iter::once(dir.to_path_buf()).chain(env::split_paths(&rest));
    env::join_paths(dirs).context("cannot build PATH with the bpf-linker directory")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_checked_in_pin_is_a_dated_nightly() {
        let file = super::super::workspace_root()
            .join(CRATE_DIR)
            .join(TOOLCHAIN_FILE);
        let channel = pinned_channel(&file).unwrap();
        assert!(nightly_date(&channel).is_some(), "{channel}");
    }

    #[test]
    fn channel_must_be_dated() {
        let file = "[toolchain]\nchannel = \"nightly-2026-05-20\"\n";
        assert_eq!(
            channel_from_toolchain_file(file).as_deref(),
            Some("nightly-2026-05-20")
        );
        assert_eq!(channel_from_toolchain_file("channel = \"nightly\"\n"), None);
        assert_eq!(channel_from_toolchain_file("channel = \"stable\"\n"), None);
        assert_eq!(channel_from_toolchain_file("[toolchain]\n"), None);
        assert_eq!(nightly_date("nightly-2026-5-20"), None);
        assert_eq!(nightly_date("nightly-2026-05-20"), Some("2026-05-20"));
    }

    #[test]
    fn manifest_date_is_the_top_level_one() {
        let manifest = "manifest-version = \"2\"\ndate = \"2026-05-20\"\n\
                        [pkg.cargo]\nversion = \"x\"\ndate = \"2000-01-01\"\n";
        assert_eq!(manifest_date(manifest), Some("2026-05-20"));
        assert_eq!(manifest_date("[pkg]\ndate = \"2000-01-01\"\n"), None);
    }
}

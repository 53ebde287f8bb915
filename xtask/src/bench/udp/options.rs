//! The options only `cargo xtask bench udp` takes: `--only` and
//! `--baseline`, each with a value, so taken out before the common ones.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};

/// `--only`: one scenario instead of all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Only {
    /// Scenario (e), the AF_XDP generator's.
    Xsk,
}

/// Takes `--only NAME` out of `rest`.
pub(super) fn take_only(rest: &[String]) -> Result<(Option<Only>, Vec<String>)> {
    let mut only = None;
    let mut others = Vec::new();
    let mut it = rest.iter();
    while let Some(arg) = it.next() {
        if arg != "--only" {
            others.push(arg.clone());
            continue;
        }
        only = match it.next().map(String::as_str) {
            Some("xsk") => Some(Only::Xsk),
            Some(other) => bail!("--only {other}: the one scenario it can run alone is `xsk`"),
            None => bail!("--only needs a scenario: `xsk`"),
        };
    }
    Ok((only, others))
}

/// A build of ours to measure against (`--baseline PATH
/// [--baseline-label NAME]`).
pub(in crate::bench) struct Baseline {
    pub(in crate::bench) path: PathBuf,
    pub(in crate::bench) label: String,
}

/// Takes `--baseline PATH` and `--baseline-label NAME` out of `rest`.
pub(super) fn take_baseline(rest: &[String]) -> Result<(Option<Baseline>, Vec<String>)> {
    let mut baseline: Option<Baseline> = None;
    let mut others = Vec::new();
    let mut it = rest.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--baseline" => {
                let path = PathBuf::from(it.next().context("--baseline needs a path")?);
                if !path.is_file() {
                    bail!("--baseline {}: no such file", path.display());
                }
                let label = path.display().to_string();
                baseline = Some(Baseline { path, label });
            }
            "--baseline-label" => {
                let label = it.next().context("--baseline-label needs a name")?;
                baseline
                    .as_mut()
                    .context("--baseline-label names the --baseline before it")?
                    .label = label.clone();
            }
            _ => others.push(arg.clone()),
        }
    }
    Ok((baseline, others))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn only_takes_xsk_and_leaves_the_rest() {
        let (only, rest) =
            take_only(&strings(&["--runs", "1", "--only", "xsk", "--no-build"])).expect("parses");
        assert_eq!(only, Some(Only::Xsk));
        assert_eq!(rest, strings(&["--runs", "1", "--no-build"]));
        let (only, rest) = take_only(&strings(&["--quick"])).expect("parses");
        assert_eq!((only, rest), (None, strings(&["--quick"])));
        let err = take_only(&strings(&["--only", "loopback"])).unwrap_err();
        assert!(err.to_string().contains("`xsk`"), "{err}");
        assert!(take_only(&strings(&["--only"])).is_err());
    }
}

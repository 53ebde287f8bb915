//! The XDP program's counters, read through bpftool.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::bench::sample::KernelCounters;

use tracker_proto::xdp::counter;

const COUNT: usize = counter::COUNT as usize;

/// The XDP program's counters, summed over CPUs.
pub(super) fn xdp_counters(pin_dir: &Path) -> Result<KernelCounters> {
    let map = pin_dir.join("COUNTERS");
    let out = Command::new("bpftool")
        .args(["-j", "map", "dump", "pinned"])
        .arg(&map)
        .output()
        .context("running bpftool")?;
    if !out.status.success() {
        bail!(
            "bpftool map dump pinned {} failed: {}",
            map.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let c = counters_from_bpftool(&String::from_utf8_lossy(&out.stdout))?;
    Ok(KernelCounters {
        seen: c[counter::SEEN as usize],
        answered: c[counter::ANSWERED as usize],
        scrape_answered: c[counter::SCRAPE_ANSWERED as usize],
        announce_answered: c[counter::ANNOUNCE_ANSWERED as usize],
    })
}

/// The per-CPU counters, summed over CPUs, from `bpftool -j map dump`
/// (an older program's shorter array leaves the rest 0).
fn counters_from_bpftool(json: &str) -> Result<[u64; COUNT]> {
    let entries: serde_json::Value =
        serde_json::from_str(json).with_context(|| format!("bpftool JSON: {json}"))?;
    let mut sums = [0u64; COUNT];
    for entry in entries.as_array().context("bpftool: not an array")? {
        // With BTF: {"key": 2, "values": [{"cpu": 0, "value": 7}, ...]};
        // without: keys and values are arrays of hex byte strings.
        let entry = entry.get("formatted").unwrap_or(entry);
        let key = bpf_number(entry.get("key").context("entry without key")?)? as usize;
        let values = entry
            .get("values")
            .and_then(|v| v.as_array())
            .context("entry without per-CPU values")?;
        let mut sum = 0u64;
        for v in values {
            sum += bpf_number(v.get("value").context("CPU value")?)?;
        }
        if let Some(slot) = sums.get_mut(key) {
            *slot = sum;
        }
    }
    Ok(sums)
}

/// A number as bpftool prints it: plain, or little-endian hex bytes.
fn bpf_number(v: &serde_json::Value) -> Result<u64> {
    match v {
        serde_json::Value::Number(n) => n.as_u64().context("negative counter"),
        serde_json::Value::Array(bytes) => {
            let mut acc = 0u64;
            for b in bytes.iter().rev() {
                let s = b.as_str().context("hex byte string")?;
                acc = (acc << 8) | u64::from_str_radix(s.trim_start_matches("0x"), 16)?;
            }
            Ok(acc)
        }
        other => bail!("unexpected bpftool value {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bpftool_numbers_in_both_forms() {
        let json = r#"[{"key":["0x02","0x00","0x00","0x00"],"values":[{"cpu":0,"value":["0x05","0x01","0x00","0x00","0x00","0x00","0x00","0x00"]},{"cpu":1,"value":["0x01","0x00","0x00","0x00","0x00","0x00","0x00","0x00"]}]},
                       {"key":0,"values":[{"cpu":0,"value":3},{"cpu":1,"value":4}]}]"#;
        let c = counters_from_bpftool(json).unwrap();
        assert_eq!(c[2], 0x105 + 1);
        assert_eq!(c[0], 7);
    }
}

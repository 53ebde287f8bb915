//! Embeds the XDP object when `cargo xtask build-ebpf` has produced it.
//! Without it the tracker still builds and serves on plain sockets; asking
//! it for XDP then says to run the xtask.

use std::path::PathBuf;

include!("ebpf_object_path.rs");

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap())
        .parent()
        .unwrap()
        .to_path_buf();
    let object = root.join(EBPF_OBJECT_PATH);
    println!("cargo::rustc-check-cfg=cfg(tracker_ebpf_object)");
    println!("cargo::rerun-if-changed={}", object.display());
    println!("cargo::rerun-if-env-changed=TRACKER_EBPF_OBJECT");
    let object = std::env::var_os("TRACKER_EBPF_OBJECT")
        .map(PathBuf::from)
        .unwrap_or(object);
    if object.is_file() {
        println!("cargo::rustc-cfg=tracker_ebpf_object");
        println!(
            "cargo::rustc-env=TRACKER_EBPF_OBJECT_PATH={}",
            object.display()
        );
    }
}

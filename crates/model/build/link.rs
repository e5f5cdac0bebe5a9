//! Shared build script of every crate whose binaries or tests touch libtorch.
//!
//! It links `libtorch_cuda.so` explicitly (the linker would drop it as unneeded, and CUDA would
//! then be silently unavailable) and writes an rpath to the torch libraries, so binaries and
//! test executables run with no environment variables.
//! The model crate's own build script includes this file and also compiles the autocast shim.

use std::path::PathBuf;

/// Emits the link arguments; returns the libtorch root when `LIBTORCH` is set.
#[allow(dead_code)]
pub fn link_torch() -> Option<PathBuf> {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    let root = PathBuf::from(std::env::var_os("LIBTORCH")?);
    let lib = root.join("lib");
    let lib = lib.canonicalize().unwrap_or(lib);
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
    if lib.join("libtorch_cuda.so").exists() {
        println!("cargo:rustc-link-search=native={}", lib.display());
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed,-ltorch_cuda,--as-needed");
    }
    Some(root)
}

#[allow(dead_code)]
fn main() {
    println!("cargo:rerun-if-changed=../model/build/link.rs");
    link_torch();
}

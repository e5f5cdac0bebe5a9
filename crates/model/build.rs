//! Shared build script of every crate whose binaries or tests touch libtorch.
//!
//! It links `libtorch_cuda.so` explicitly (the linker would drop it as unneeded, and CUDA would
//! then be silently unavailable) and writes an rpath to the torch libraries, so binaries and
//! test executables run with no environment variables.
//! It must not do anything else: the library itself is built by `torch-sys`.

use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    println!("cargo:rerun-if-changed=build.rs");
    let Some(root) = std::env::var_os("LIBTORCH") else {
        return;
    };
    let lib = PathBuf::from(root).join("lib");
    let lib = lib.canonicalize().unwrap_or(lib);
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
    if lib.join("libtorch_cuda.so").exists() {
        println!("cargo:rustc-link-search=native={}", lib.display());
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed,-ltorch_cuda,--as-needed");
    }
}

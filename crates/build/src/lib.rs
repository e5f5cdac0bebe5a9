//! The build-script helper every inheritune crate that touches libtorch uses as a
//! build-dependency.
//!
//! [`link_torch`] links `libtorch_cuda.so` explicitly (the linker would otherwise drop it as
//! unneeded, and CUDA would then be silently unavailable to `tch`) and writes an rpath to the
//! torch libraries, so binaries and test executables run with no environment variables. It
//! reads `LIBTORCH` (the folder holding `lib/` and `include/`, e.g. a PyTorch wheel's `torch/`
//! package or the venv `cargo xtask setup` makes); without it nothing is emitted and `tch`'s own
//! build decides.
//!
//! A `build.rs` of a crate that depends on tch is one line in its `main`:
//!
//! ```no_run
//! inheritune_build::link_torch();
//! ```

use std::path::PathBuf;

/// Emits the link arguments for the libtorch at `LIBTORCH`; returns that root when it is set.
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

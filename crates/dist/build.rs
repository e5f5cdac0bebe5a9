//! Compiles the c10d shim (csrc/c10d.cpp) against the headers of the torch wheel that `LIBTORCH`
//! points at, and links the libraries c10d lives in.
//!
//! - Gloo: always. The wheel ships c10d's headers but not Gloo's, which ProcessGroupGloo.hpp
//!   includes; they are vendored (headers only) in csrc/third_party/gloo, see its PROVENANCE.md.
//! - NCCL: compiled in when the headers ProcessGroupNCCL.hpp needs are beside the wheel (the
//!   CUDA runtime headers, `crt/host_config.h` and `nv/target`, which `cargo xtask setup`
//!   installs with `cuda-toolkit[crt,cccl]`, and `nccl.h` of the wheel's own NCCL). The binary
//!   still runs without a GPU; asking it for NCCL there gives an error. `INHERITUNE_NO_NCCL=1`
//!   leaves NCCL out.
//!
//! Without `LIBTORCH` the shim is not built and every call reports so (`cfg(c10d_shim)` unset).
use std::path::{Path, PathBuf};

fn main() {
    println!("cargo:rerun-if-changed=csrc/c10d.cpp");
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    println!("cargo:rerun-if-env-changed=INHERITUNE_NO_NCCL");
    println!("cargo::rustc-check-cfg=cfg(c10d_shim)");
    println!("cargo::rustc-check-cfg=cfg(c10d_nccl)");
    let Some(root) = std::env::var_os("LIBTORCH").map(PathBuf::from) else {
        return;
    };
    let root = root.canonicalize().unwrap_or(root);
    let lib = root.join("lib");
    println!("cargo:rustc-link-search=native={}", lib.display());
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
    if lib.join("libtorch_cuda.so").exists() {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed,-ltorch_cuda,--as-needed");
    }
    let mut build = cc::Build::new();
    build
        .cpp(true)
        .file("csrc/c10d.cpp")
        .include(root.join("include"))
        .include(root.join("include/torch/csrc/api/include"))
        .include("csrc/third_party")
        .flag("-std=c++17")
        .flag("-D_GLIBCXX_USE_CXX11_ABI=1")
        .define("USE_C10D_GLOO", None)
        .warnings(false);
    if let Some(includes) = nccl_includes(&root) {
        build.define("USE_C10D_NCCL", None);
        for dir in includes {
            println!("cargo:rerun-if-changed={}", dir.display());
            build.include(dir);
        }
        println!("cargo:rustc-link-lib=c10_cuda");
        println!("cargo:rustc-cfg=c10d_nccl");
    }
    build.compile("inheritune_c10d");
    println!("cargo:rustc-link-lib=torch_cpu");
    println!("cargo:rustc-link-lib=c10");
    println!("cargo:rustc-cfg=c10d_shim");
}

/// The include folders for ProcessGroupNCCL, when all of them are present.
fn nccl_includes(torch: &Path) -> Option<Vec<PathBuf>> {
    if std::env::var_os("INHERITUNE_NO_NCCL").is_some_and(|v| v == "1") {
        return None;
    }
    if !torch.join("lib/libtorch_cuda.so").exists() || !torch.join("lib/libc10_cuda.so").exists() {
        return None;
    }
    let nvidia = torch.parent()?.join("nvidia");
    let cuda = nvidia.join("cu13/include");
    let nccl = nvidia.join("nccl/include");
    let needed = [
        cuda.join("cuda_runtime.h"),
        cuda.join("crt/host_config.h"),
        cuda.join("nv/target"),
        nccl.join("nccl.h"),
    ];
    if needed.iter().all(|p| p.exists()) {
        Some(vec![cuda, nccl])
    } else {
        println!(
            "cargo:warning=inheritune-dist: building without NCCL (missing {}); `cargo xtask setup` installs the CUDA headers",
            needed.iter().filter(|p| !p.exists()).map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
        );
        None
    }
}

//! Links libtorch like every other crate (`inheritune-build`) and compiles the autocast shim
//! (csrc/autocast.cpp): tch cannot choose the autocast dtype, so bf16 autocast needs two ATen
//! calls of our own. Without `LIBTORCH` the shim is left out and `autocast` reports so.

fn main() {
    println!("cargo:rerun-if-changed=csrc/autocast.cpp");
    println!("cargo::rustc-check-cfg=cfg(autocast_shim)");
    let Some(root) = inheritune_build::link_torch() else {
        return;
    };
    let root = root.canonicalize().unwrap_or(root);
    cc::Build::new()
        .cpp(true)
        .file("csrc/autocast.cpp")
        .include(root.join("include"))
        .include(root.join("include/torch/csrc/api/include"))
        .flag("-std=c++17")
        .flag("-D_GLIBCXX_USE_CXX11_ABI=1")
        .warnings(false)
        .compile("inheritune_autocast");
    println!("cargo:rustc-cfg=autocast_shim");
}

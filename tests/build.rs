//! Links libtorch (CUDA included) with an rpath, as every inheritune crate that touches it.

fn main() {
    inheritune_build::link_torch();
}

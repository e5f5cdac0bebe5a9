//! Prints the cargo directives `link_torch` would give a build script for the libtorch at
//! `LIBTORCH`. `LIBTORCH=/path/to/torch cargo run -p inheritune-build --example link_args`

fn main() {
    match inheritune_build::link_torch() {
        Some(root) => eprintln!("libtorch at {} (directives above)", root.display()),
        None => eprintln!("LIBTORCH is not set: nothing to link (tch's own build decides)"),
    }
}

// Empty: its presence makes Cargo build the build-dependencies, whose
// features are the point of this crate (see Cargo.toml).
fn main() {}

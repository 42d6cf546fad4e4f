//! Declares the `circuitbreaker_loom` cfg, which turns on `tests/loom.rs` (a cfg of its own rather than
//! `loom`: under `--cfg loom` tokio expects loom itself and does not build as a dependency).

fn main() {
    println!("cargo::rustc-check-cfg=cfg(circuitbreaker_loom)");
}

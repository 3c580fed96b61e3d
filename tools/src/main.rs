//! The `octet` command line.
fn main() {
    println!("octet {} ({})", env!("CARGO_PKG_VERSION"), octet_kernels::describe());
}

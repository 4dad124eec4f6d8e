//! koor-tui: the operator console. (Grows view by view.)

fn main() {
    println!("koor-tui {}", env!("CARGO_PKG_VERSION"));
}

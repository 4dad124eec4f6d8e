//! koor-cli: the command line for agents, CI and people. (Grows command by command.)

fn main() {
    println!("koor-cli {}", env!("CARGO_PKG_VERSION"));
}

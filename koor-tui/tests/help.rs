//! `koor-tui --help` lists the console's keys, not only its flags.

const BIN: &str = env!("CARGO_BIN_EXE_koor-tui");

#[test]
fn help_lists_the_keys() {
    let out = std::process::Command::new(BIN)
        .arg("--help")
        .output()
        .expect("koor-tui runs");
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "--server",
        "Keys",
        "next/previous view",
        "q, Ctrl-C",
        "Instances view:",
        "Work view:",
    ] {
        assert!(help.contains(needle), "{needle:?} in {help}");
    }
}

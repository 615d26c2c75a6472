//! The `fdi` binary's entry point, built in the test package so end-to-end tests can spawn it.
fn main() -> anyhow::Result<()> {
    fdi_server::cli_main()
}

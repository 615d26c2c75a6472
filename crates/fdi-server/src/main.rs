//! The `fdi` binary.
fn main() -> anyhow::Result<()> {
    fdi_server::cli_main()
}

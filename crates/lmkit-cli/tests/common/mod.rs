//! Helpers shared by the CLI's integration tests.

/// A folder of the repository's committed test fixtures (tests/fixtures/NAME).
pub fn fixture_dir(name: &str) -> String {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(name)
        .to_string_lossy()
        .to_string()
}

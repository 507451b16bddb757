//! Helpers shared by the integration tests.
#![allow(dead_code)] // each test binary uses its own subset

use assert_cmd::Command;

/// The committed JSON Schema of result files.
pub fn schema() -> serde_json::Value {
    let text = fs_err::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../meek-schema/result.schema.json"
    ))
    .unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Runs `cmd`, expects success, returns its standard output.
pub fn stdout(cmd: &mut Command) -> Vec<u8> {
    cmd.assert().success().get_output().stdout.clone()
}

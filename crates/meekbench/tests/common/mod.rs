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

/// What a bench measured, without its timings: per run the model hash, the threads, the workload points and
/// the answers of the first suite. Two benches of one plan (one whole, or shards merged) have the same shape.
pub fn shape(v: &serde_json::Value) -> Vec<String> {
    v["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let points: Vec<String> = r["speed"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| format!("{}x{}", p["n_prompt"], p["n_gen"]))
                .collect();
            let answers: Vec<String> = r["accuracy"][0]["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| format!("{}={}", i["id"], i["output"]))
                .collect();
            format!(
                "{} t={} {} {}",
                r["model"]["sha256"],
                r["threads"],
                points.join(","),
                answers.join(";")
            )
        })
        .collect()
}

/// Reads a JSON file.
pub fn read_json(path: &std::path::Path) -> serde_json::Value {
    serde_json::from_str(&fs_err::read_to_string(path).unwrap()).unwrap()
}

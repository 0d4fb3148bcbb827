//! Fonts for charts, fetched the way models are: a pinned, checksummed registry package.
//! NanumGothic, Naver's Hangul font (SIL Open Font License 1.1), ships in PyPI's
//! `koreanize-matplotlib` (MIT); the font file and that package's license are copied into
//! `$LMKIT_HOME/fonts/`.

use anyhow::{Context, Result};

use super::catalogue::{Package, Registry};
use super::fetch::{download, Archive};
use super::home;
use crate::util::write_atomic;

const NANUM_PACKAGE: Package = Package {
    registry: Registry::PyPI,
    name: "koreanize-matplotlib",
    version: "0.1.1",
    sha256: "4f563db1a75d9eb6bdb667a435adf8a5daf7e41504486f1b0fb1c20e4bfed4ca",
};
const NANUM_MEMBER: &str = "koreanize_matplotlib/fonts/NanumGothic.ttf";
const LICENSE_MEMBER: &str = "koreanize_matplotlib-0.1.1.dist-info/LICENSE";

/// NanumGothic's bytes: from the store, or fetched into it on first use.
pub fn nanum_gothic() -> Result<Vec<u8>> {
    let dir = home().join("fonts");
    let ttf = dir.join("NanumGothic.ttf");
    if let Ok(bytes) = std::fs::read(&ttf) {
        // A TrueType file starts with version 1.0 (00 01 00 00); a truncated or foreign file
        // is fetched again rather than handed to the font parser.
        if bytes.len() > 1 << 20 && bytes.starts_with(&[0, 1, 0, 0]) {
            return Ok(bytes);
        }
    }
    let wheel = download(&NANUM_PACKAGE).context("fetching the Hangul font for charts")?;
    let archive = Archive::open(&wheel, |m| m == NANUM_MEMBER || m == LICENSE_MEMBER)?;
    let bytes = archive.get(NANUM_MEMBER, &wheel)?.to_vec();
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    if let Ok(license) = archive.get(LICENSE_MEMBER, &wheel) {
        write_atomic(&dir.join("koreanize-matplotlib-LICENSE.txt"), license)?;
    }
    write_atomic(&ttf, &bytes)?;
    Ok(bytes)
}

/// Lets charts with Korean text draw in NanumGothic (the chart layer cannot fetch it itself).
pub fn register() {
    crate::plot::set_hangul_font_loader(nanum_gothic);
}

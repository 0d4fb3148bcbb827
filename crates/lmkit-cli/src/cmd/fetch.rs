//! `lmkit fetch`: put a model in the store, or list the ones lmkit knows.

use anyhow::Result;

#[derive(clap::Args)]
pub struct Args {
    /// Model id, e.g. sentence-transformers/all-MiniLM-L6-v2.
    id: Option<String>,
    /// List the models lmkit can fetch and whether each is in the store.
    #[arg(long)]
    list: bool,
    /// Rebuild the store folder even if present.
    #[arg(long)]
    force: bool,
    /// For models lmkit trains itself: train on this many examples only (quick, weaker).
    #[arg(long)]
    train_limit: Option<usize>,
    /// Check the sha256 of every file of ID (or of every model in the store) against what the
    /// store recorded at install; exit 1 naming any damaged file.
    #[arg(long)]
    verify: bool,
}

pub fn run(a: Args) -> Result<()> {
    if a.verify {
        return verify(a.id.as_deref());
    }
    let id = match a.id {
        Some(id) if !a.list => id,
        _ => {
            println!("{:<48} {:<9} what", "id", "in store");
            for (id, have, desc) in lmkit::hub::list_known() {
                println!("{id:<48} {:<9} {desc}", if have { "yes" } else { "no" });
            }
            return Ok(());
        }
    };
    let path = if lmkit::hub::trained(&id).is_some() || lmkit::hub::known(&id).is_some() {
        lmkit::finetune::recipes::register();
        lmkit::hub::fetch(&id, a.force, a.train_limit)?
    } else {
        lmkit::hub::resolve(&id)?
    };
    println!("{id} -> {}", path.display());
    Ok(())
}

/// `lmkit fetch --verify [ID]`: hashes every recorded file of one model or of the whole store.
fn verify(id: Option<&str>) -> Result<()> {
    let dirs: Vec<(String, std::path::PathBuf)> = match id {
        Some(id) => vec![(id.to_string(), lmkit::hub::store_path(id))],
        None => lmkit::hub::list_known()
            .into_iter()
            .map(|(id, _, _)| {
                let p = lmkit::hub::store_path(&id);
                (id, p)
            })
            .filter(|(_, p)| p.is_dir())
            .collect(),
    };
    if dirs.is_empty() {
        anyhow::bail!("no model in the store to verify")
    }
    let mut damaged = 0;
    for (id, dir) in dirs {
        if !dir.is_dir() {
            anyhow::bail!("{id} is not in the store ({})", dir.display())
        }
        let bad = lmkit::hub::verify(&dir)?;
        if bad.is_empty() {
            println!("{id}: ok");
        } else {
            damaged += 1;
            println!(
                "{id}: damaged: {} (repair: lmkit fetch --force {id})",
                bad.join(", ")
            );
        }
    }
    if damaged > 0 {
        anyhow::bail!("{damaged} damaged model folder(s)")
    }
    Ok(())
}

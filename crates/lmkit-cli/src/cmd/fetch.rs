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
}

pub fn run(a: Args) -> Result<()> {
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

//! `hamster keygen --out FILE`: a new master key, 32 random bytes, mode 0600.

use std::path::PathBuf;

use hamster_proto::secrets::MasterKey;

#[derive(Debug, clap::Args)]
pub struct KeygenArgs {
    /// Where to write the key (must not exist).
    #[arg(long)]
    pub out: PathBuf,
}

pub fn run(a: &KeygenArgs) -> anyhow::Result<()> {
    let key = MasterKey::generate();
    key.write_new(&a.out)?;
    println!(
        "master key {} fingerprint {}",
        a.out.display(),
        key.fingerprint()
    );
    Ok(())
}

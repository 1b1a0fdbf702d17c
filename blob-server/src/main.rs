use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    hamster_proto::serve::init_logging();
    hamster_blob::run(hamster_blob::Args::parse()).await
}

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    hamster_proto::serve::init_logging();
    hamster_meta::run(hamster_meta::Args::parse()).await
}

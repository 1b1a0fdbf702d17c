use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    hamster_proto::serve::init_logging();
    hamster_admin::run(hamster_admin::Cli::parse()).await
}

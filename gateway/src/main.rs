use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    hamster_proto::serve::init_logging();
    hamster_gateway::run(hamster_gateway::Args::parse()).await
}

//! Compiles the gRPC contract. protoc comes from protoc-bin-vendored, so a
//! fresh machine needs no system protoc.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = [
        "proto/hamster/v1/node.proto",
        "proto/hamster/v1/meta.proto",
        "proto/hamster/v1/admin.proto",
        "proto/hamster/v1/raft.proto",
        "proto/hamster/v1/blob.proto",
        "proto/hamster/v1/join.proto",
        "proto/hamster/v1/certs.proto",
    ];
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    tonic_prost_build::configure()
        // Methods a tier has not implemented yet answer UNIMPLEMENTED
        // instead of failing to compile; each server overrides what it serves.
        .generate_default_stubs(true)
        // Shard bytes decode as slices of the received frame (bytes::Bytes)
        // rather than a copy into a Vec: the GET and PUT data path.
        .bytes(".hamster.v1.GetShardChunk.data")
        .bytes(".hamster.v1.ShardChunk.data")
        .compile_with_config(config, &protos, &["proto"])?;
    for p in protos {
        println!("cargo:rerun-if-changed={p}");
    }
    Ok(())
}

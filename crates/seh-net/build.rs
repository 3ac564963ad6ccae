//! Compiles proto/seh_net.proto with the vendored `protoc` (no system protoc needed).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // Build scripts run single-threaded; prost-build reads PROTOC from the environment.
    std::env::set_var("PROTOC", protoc);
    println!("cargo:rerun-if-changed=proto/seh_net.proto");
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .build_transport(false)
        // `bytes` fields decode as `bytes::Bytes`, sliced out of the receive buffer without a copy.
        .bytes(".")
        .compile_protos(&["proto/seh_net.proto"], &["proto"])?;
    Ok(())
}

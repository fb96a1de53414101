//! The `connect-operator` binary; everything lives in the library.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    connect_operator::cli::main().await
}

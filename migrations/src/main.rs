//! The migrations CLI of the example schema: `cargo run -p migrations -- --help`.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    litefs_orm::cli::main::<migrations::Migrator>().await
}

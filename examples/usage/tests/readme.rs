//! The README's usage example is this crate's `main.rs`, and it runs: it creates its schema,
//! writes, reads back and serves.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};

const README: &str = include_str!("../../../README.md");
const MAIN: &str = include_str!("../src/main.rs");

#[test]
fn the_readme_shows_this_example_as_it_is() {
    let start = README
        .find("```rust\n//! Run with `cargo run -p usage`")
        .expect("the usage block");
    let block = &README[start + "```rust\n".len()..];
    let block = &block[..block.find("```\n").expect("the block's end")];
    assert_eq!(
        block, MAIN,
        "README.md's usage block differs from examples/usage/src/main.rs"
    );
}

#[test]
fn the_example_writes_reads_back_and_serves_on_a_fresh_standalone_database() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_usage"))
        .current_dir(dir.path())
        .env("ADDR", "127.0.0.1:0")
        .env_remove("LITEFS_ORM_MOUNT")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let saved = lines.next().unwrap().unwrap();
    assert!(
        saved.starts_with("saved post 1 and read it back: Some("),
        "{saved}"
    );
    let listening = lines.next().unwrap().unwrap();
    let url = listening
        .strip_prefix("listening on ")
        .expect(&listening)
        .to_owned();
    let response = get(url.trim_start_matches("http://"));
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.ends_with("\r\n\r\nhello"), "{response}");
    assert!(dir.path().join("app.db").exists());
}

/// `GET /` on `addr` over a plain TCP connection; the whole response.
fn get(addr: &str) -> String {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "GET / HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

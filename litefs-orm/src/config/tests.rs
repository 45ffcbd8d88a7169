//! Tests of `config`.

use super::*;
use std::collections::HashMap;

fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k| map.get(k).cloned()
}

#[test]
fn no_variables_means_standalone_defaults() {
    let c = Config::from_lookup(lookup(&[])).unwrap();
    assert!(c.litefs_mount.is_none());
    assert_eq!(c.db_path(), PathBuf::from("app.db"));
    c.validate().unwrap();
}

#[test]
fn variables_set_every_field() {
    let c = Config::from_lookup(lookup(&[
        ("LITEFS_ORM_MOUNT", "/litefs"),
        ("LITEFS_ORM_DATABASE", "x.db"),
        ("LITEFS_ORM_LITEFS_HTTP", "http://127.0.0.1:20202"),
        ("LITEFS_ORM_PRIMARY_URL", "http://{primary}:9000"),
        ("LITEFS_ORM_SECRET", "0123456789abcdef"),
        ("LITEFS_ORM_WRITE_TIMEOUT_MS", "1500"),
        ("LITEFS_ORM_MAX_BODY_BYTES", "2048"),
        ("LITEFS_ORM_IDEMPOTENCY_WINDOW_MS", "90000"),
    ]))
    .unwrap();
    assert_eq!(c.db_path(), PathBuf::from("/litefs/x.db"));
    assert_eq!(c.write_timeout, Duration::from_millis(1500));
    assert_eq!(c.max_body_bytes, 2048);
    assert_eq!(c.idempotency_window, Duration::from_secs(90));
    assert_eq!(
        c.primary_rpc_url("n2"),
        "http://n2:9000/litefs-orm/v1/write"
    );
    c.validate().unwrap();
}

#[test]
fn a_bad_number_names_the_variable() {
    let err = Config::from_lookup(lookup(&[("LITEFS_ORM_WRITE_TIMEOUT_MS", "soon")])).unwrap_err();
    assert!(
        err.to_string().contains("LITEFS_ORM_WRITE_TIMEOUT_MS"),
        "{err}"
    );
}

#[test]
fn a_mount_without_a_secret_is_refused() {
    let err = Config::litefs("/litefs", "app.db").validate().unwrap_err();
    assert!(err.to_string().contains("LITEFS_ORM_SECRET"), "{err}");
}

#[test]
fn an_idempotency_window_shorter_than_a_retry_span_is_refused() {
    let err = Config::standalone("x.db")
        .with_write_timeout(Duration::from_secs(60))
        .with_idempotency_window(Duration::from_secs(100))
        .validate()
        .unwrap_err();
    assert!(
        err.to_string().contains("LITEFS_ORM_IDEMPOTENCY_WINDOW_MS"),
        "{err}"
    );
}

#[test]
fn a_mapped_hostname_goes_to_its_url_and_others_through_the_template() {
    let c = Config::from_lookup(lookup(&[
        ("LITEFS_ORM_MOUNT", "/litefs"),
        ("LITEFS_ORM_SECRET", "0123456789abcdef"),
        (
            "LITEFS_ORM_PRIMARY_URLS",
            "n1=http://127.0.0.1:8081/, n2 = http://127.0.0.1:8082",
        ),
    ]))
    .unwrap();
    c.validate().unwrap();
    assert_eq!(
        c.primary_rpc_url("n1"),
        "http://127.0.0.1:8081/litefs-orm/v1/write"
    );
    assert_eq!(
        c.primary_rpc_url("n2"),
        "http://127.0.0.1:8082/litefs-orm/v1/write"
    );
    assert_eq!(
        c.primary_rpc_url("n3"),
        "http://n3:8080/litefs-orm/v1/write"
    );
}

#[test]
fn a_url_map_item_without_an_equals_sign_names_the_variable() {
    let err =
        Config::from_lookup(lookup(&[("LITEFS_ORM_PRIMARY_URLS", "n1 http://x")])).unwrap_err();
    assert!(err.to_string().contains("LITEFS_ORM_PRIMARY_URLS"), "{err}");
}

#[test]
fn a_mapped_url_without_a_scheme_is_refused() {
    let err = Config::litefs("/litefs", "app.db")
        .with_rpc_secret("0123456789abcdef")
        .with_primary_url_for("n1", "127.0.0.1:8081")
        .validate()
        .unwrap_err();
    assert!(err.to_string().contains("http://"), "{err}");
}

#[test]
fn the_journal_mode_is_wal_unless_set() {
    assert_eq!(Config::default().journal_mode, JournalMode::Wal);
    let c =
        Config::from_lookup(|k| (k == "LITEFS_ORM_JOURNAL_MODE").then(|| "DELETE".into())).unwrap();
    assert_eq!(c.journal_mode, JournalMode::Delete);
}

#[test]
fn a_journal_mode_litefs_does_not_support_is_refused() {
    let e = Config::from_lookup(|k| (k == "LITEFS_ORM_JOURNAL_MODE").then(|| "memory".into()))
        .unwrap_err();
    assert!(e.to_string().contains("LITEFS_ORM_JOURNAL_MODE"), "{e}");
}

/// A LiteFS node's configuration that passes, to break one thing at a time.
fn node() -> Config {
    Config::litefs("/litefs", "app.db").with_rpc_secret("a long random shared secret")
}

fn refusal(c: Config) -> String {
    c.validate().unwrap_err().to_string()
}

#[test]
fn a_short_secret_is_refused_even_standalone() {
    let e = refusal(Config::standalone("dev.db").with_rpc_secret("short"));
    assert!(e.contains("LITEFS_ORM_SECRET"), "{e}");
}

#[test]
fn an_empty_secret_from_the_builder_is_refused() {
    let e = refusal(node().with_rpc_secret(""));
    assert!(e.contains("LITEFS_ORM_SECRET"), "{e}");
}

#[test]
fn a_short_secret_from_the_environment_is_refused() {
    let c = Config::from_lookup(lookup(&[
        ("LITEFS_ORM_MOUNT", "/litefs"),
        ("LITEFS_ORM_SECRET", "tiny"),
    ]))
    .unwrap();
    assert!(refusal(c).contains("LITEFS_ORM_SECRET"));
}

#[test]
fn debug_does_not_show_the_secret() {
    let shown = format!("{:?}", node());
    assert!(!shown.contains("shared secret"), "{shown}");
    assert!(shown.contains("<redacted>"), "{shown}");
}

#[test]
fn a_url_template_without_a_scheme_names_the_variable() {
    let e = refusal(node().with_primary_url("{primary}:8080"));
    assert!(e.contains("LITEFS_ORM_PRIMARY_URL"), "{e}");
}

#[test]
fn a_litefs_api_address_without_a_scheme_names_the_variable() {
    let e = refusal(node().with_litefs_http("127.0.0.1:20202"));
    assert!(e.contains("LITEFS_ORM_LITEFS_HTTP"), "{e}");
}

#[test]
fn a_zero_timeout_names_its_variable() {
    let e = refusal(node().with_replication_timeout(Duration::ZERO));
    assert!(e.contains("LITEFS_ORM_REPLICATION_TIMEOUT_MS"), "{e}");
}

#[test]
fn an_overflowing_timeout_names_its_variable() {
    let c = Config::from_lookup(lookup(&[(
        "LITEFS_ORM_WRITE_TIMEOUT_MS",
        &u64::MAX.to_string(),
    )]))
    .unwrap();
    assert!(refusal(c).contains("LITEFS_ORM_WRITE_TIMEOUT_MS"));
}

#[test]
fn an_absolute_database_outside_the_mount_is_refused() {
    let e = refusal(
        Config::litefs("/litefs", "/var/lib/app.db").with_rpc_secret("a long random shared secret"),
    );
    assert!(e.contains("LITEFS_ORM_DATABASE"), "{e}");
}

#[test]
fn a_database_path_that_climbs_out_of_the_mount_is_refused() {
    for database in ["../app.db", "sub/app.db", "./app.db/.."] {
        let e = refusal(
            Config::litefs("/litefs", database).with_rpc_secret("a long random shared secret"),
        );
        assert!(e.contains("LITEFS_ORM_DATABASE"), "{database}: {e}");
    }
}

#[test]
fn an_absolute_database_inside_the_mount_is_its_file_name() {
    Config::litefs("/litefs", "/litefs/app.db")
        .with_rpc_secret("a long random shared secret")
        .validate()
        .unwrap();
}

#[test]
fn no_read_connections_names_the_variable() {
    let mut c = node();
    c.read_connections = 0;
    assert!(refusal(c).contains("LITEFS_ORM_READ_CONNECTIONS"));
}

#[test]
fn a_window_whose_tokens_would_outlive_their_records_is_refused() {
    // Passes the retry-span check (2 × 10 s + 30 s ≤ 60 s), but a token would be honoured
    // longer than the record that proves it is kept.
    let e = refusal(node().with_idempotency_window(Duration::from_secs(60)));
    assert!(e.contains("LITEFS_ORM_IDEMPOTENCY_WINDOW_MS"), "{e}");
    assert!(e.contains("outlives"), "{e}");
}

#[test]
fn a_token_never_outlives_the_record_that_proves_its_commit() {
    let c = node();
    let longest_gap = c.write_timeout + c.replication_timeout + c.max_clock_skew * 2;
    assert!(c.token_lifetime() + longest_gap <= c.idempotency_window);
    assert!(node().validate().is_ok());
}

//! The routes, through the gates of a running server, as LiteFS's Go client calls them.

use std::time::Duration;

use base64::Engine as _;
use serde_json::Value;

use crate::real::Cut;
use crate::real::consul::ConsulServer;

fn server() -> ConsulServer {
    ConsulServer::start(vec!["n1".into(), "n2".into()]).unwrap()
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap()
}

async fn put(url: String, body: &'static str) -> reqwest::Response {
    client().put(url).body(body).send().await.unwrap()
}

async fn create(base: &str, ttl: &str) -> String {
    let body =
        format!(r#"{{"Behavior":"delete","LockDelay":"1000ms","Name":"litefs","TTL":"{ttl}"}}"#);
    let resp = client()
        .put(format!("{base}/v1/session/create"))
        .body(body)
        .send()
        .await
        .unwrap();
    let v: Value = resp.json().await.unwrap();
    v["ID"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_missing_key_is_404_with_consul_s_headers() {
    let s = server();
    let base = s.url(0).unwrap();
    let resp = client()
        .get(format!("{base}/v1/kv/litefs/app"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let h = resp.headers();
    assert!(h["X-Consul-Index"].to_str().unwrap().parse::<u64>().is_ok());
    assert_eq!(h["X-Consul-KnownLeader"], "true");
    assert_eq!(h["X-Consul-LastContact"], "0");
}

#[tokio::test]
async fn an_acquired_key_reads_back_with_its_session_and_base64_value() {
    let s = server();
    let base = s.url(0).unwrap();
    let id = create(&base, "10s").await;
    let resp = put(
        format!("{base}/v1/kv/litefs/app?acquire={id}"),
        r#"{"hostname":"n1"}"#,
    )
    .await;
    assert_eq!(resp.text().await.unwrap(), "true");
    let resp = client()
        .get(format!("{base}/v1/kv/litefs/app"))
        .send()
        .await
        .unwrap();
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v[0]["Key"], "litefs/app");
    assert_eq!(v[0]["Session"], id.as_str());
    assert_eq!(v[0]["LockIndex"], 1);
    let value = base64::engine::general_purpose::STANDARD
        .decode(v[0]["Value"].as_str().unwrap())
        .unwrap();
    assert_eq!(value, br#"{"hostname":"n1"}"#);
}

#[tokio::test]
async fn a_released_key_has_no_session_field_and_the_release_body_as_value() {
    let s = server();
    let base = s.url(0).unwrap();
    let id = create(&base, "10s").await;
    put(format!("{base}/v1/kv/k?acquire={id}"), "v").await;
    let resp = put(format!("{base}/v1/kv/k?release={id}"), "").await;
    assert_eq!(resp.text().await.unwrap(), "true");
    let v: Value = client()
        .get(format!("{base}/v1/kv/k"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(v[0].get("Session").is_none(), "{v}");
    assert_eq!(v[0]["Value"], Value::Null);
}

#[tokio::test]
async fn a_second_session_s_acquire_answers_false() {
    let s = server();
    let (a, b) = (s.url(0).unwrap(), s.url(1).unwrap());
    let first = create(&a, "10s").await;
    let second = create(&b, "10s").await;
    put(format!("{a}/v1/kv/k?acquire={first}"), "1").await;
    let resp = put(format!("{b}/v1/kv/k?acquire={second}"), "2").await;
    assert_eq!(resp.text().await.unwrap(), "false");
}

#[tokio::test]
async fn a_renewal_answers_the_session_with_its_lock_delay_in_nanoseconds() {
    let s = server();
    let base = s.url(0).unwrap();
    let id = create(&base, "4s").await;
    let resp = put(format!("{base}/v1/session/renew/{id}"), "").await;
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v[0]["ID"], id.as_str());
    assert_eq!(v[0]["LockDelay"], 1_000_000_000u64);
    assert_eq!(v[0]["TTL"], "4s");
    assert_eq!(v[0]["Behavior"], "delete");
}

#[tokio::test]
async fn a_destroyed_session_s_renewal_is_404_and_destroy_stays_true() {
    let s = server();
    let base = s.url(0).unwrap();
    let id = create(&base, "10s").await;
    for _ in 0..2 {
        let resp = put(format!("{base}/v1/session/destroy/{id}"), "").await;
        assert_eq!(resp.text().await.unwrap(), "true");
    }
    let resp = put(format!("{base}/v1/session/renew/{id}"), "").await;
    assert_eq!(resp.status(), 404);
}

#[tokio::test]
async fn a_session_expires_on_time_without_any_request() {
    let s = server();
    let base = s.url(0).unwrap();
    let id = create(&base, "200ms").await;
    put(format!("{base}/v1/kv/k?acquire={id}"), "1").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let events = s.events().join("\n");
    assert!(events.contains("key k deleted"), "{events}");
    let expired = s
        .events()
        .into_iter()
        .find(|e| e.contains("expired"))
        .unwrap();
    assert!(expired.contains(" n1: "), "{expired}");
}

#[tokio::test]
async fn unknown_routes_are_404_with_a_text_body() {
    let s = server();
    let base = s.url(0).unwrap();
    let resp = client()
        .get(format!("{base}/v1/agent/self"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    assert!(resp.text().await.unwrap().contains("/v1/agent/self"));
}

#[tokio::test]
async fn catalog_registration_answers_true() {
    let s = server();
    let base = s.url(0).unwrap();
    let resp = put(format!("{base}/v1/catalog/register"), r#"{"Node":"x"}"#).await;
    assert_eq!(resp.text().await.unwrap(), "true");
}

#[tokio::test]
async fn a_node_cut_off_leaves_the_others_working() {
    let s = server();
    s.cut(0, Cut::Refuse).unwrap();
    let cut = client()
        .get(format!("{}/v1/kv/k", s.url(0).unwrap()))
        .send()
        .await;
    assert!(cut.is_err());
    let other = client()
        .get(format!("{}/v1/kv/k", s.url(1).unwrap()))
        .send()
        .await;
    assert_eq!(other.unwrap().status(), 404);
    s.heal(0).unwrap();
    let healed = client()
        .get(format!("{}/v1/kv/k", s.url(0).unwrap()))
        .send()
        .await;
    assert_eq!(healed.unwrap().status(), 404);
    let events = s.events().join("\n");
    assert!(
        events.contains("n1: gate cut (Refuse)") && events.contains("n1: gate healed"),
        "{events}"
    );
}

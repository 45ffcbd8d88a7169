//! Run with `cargo run -p quickstart`.
//!
//! Starts a LiteFS primary and a replica on this machine — two directories kept in sync by
//! litefs-orm's LiteFS stand-in, each node with its own `ReplicatedDb` and RPC router on
//! loopback — then inserts and updates a row through the replica and prints what was
//! forwarded, the TXIDs, and how long each step took.

mod note;

use std::time::Instant;

use litefs_orm::{Config, Registry, Replicated, ReplicatedActiveModel, ReplicatedDb};
use litefs_orm_testkit::{Cluster, ClusterOptions, ReplicaWrites};
use sea_orm::ActiveValue::Set;
use sea_orm::{ConnectionTrait, EntityTrait};
use tokio::net::TcpListener;

const SECRET: &str = "quickstart secret: use a long random one in production";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // One listener per node; a node's LiteFS hostname is its router's address, so the
    // primary's RPC URL is simply `http://{primary}`.
    let listeners = [
        TcpListener::bind("127.0.0.1:0").await?,
        TcpListener::bind("127.0.0.1:0").await?,
    ];
    let hostnames = listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    let litefs = Cluster::start(
        ClusterOptions::default()
            .nodes(2)
            .hostnames(hostnames.clone())
            .replica_writes(ReplicaWrites::best_available()),
    )
    .await?;
    println!(
        "LiteFS stand-in: primary {} at {}",
        hostnames[0],
        litefs.mount(0).display()
    );
    println!(
        "                 replica {} at {}",
        hostnames[1],
        litefs.mount(1).display()
    );

    let mut nodes = Vec::new();
    for (i, listener) in listeners.into_iter().enumerate() {
        let config = Config::litefs(litefs.mount(i), "app.db")
            .with_primary_url("http://{primary}")
            .with_rpc_secret(SECRET);
        let db = ReplicatedDb::connect(config, Registry::new().entity::<note::Entity>()).await?;
        if i == 0 {
            db.execute_unprepared(note::SCHEMA).await?;
            litefs.sync().await?;
        }
        let app = litefs_orm::router(db.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        println!("node {}: {}", hostnames[i], db.role());
        nodes.push(db);
    }
    let (primary, replica) = (&nodes[0], &nodes[1]);

    let new_note = note::ActiveModel {
        text: Set("written on the replica".into()),
        ..Default::default()
    };
    // What travels to the primary: each column's state and value (`id` is NotSet, so absent).
    let wire = serde_json::to_string(&<note::Entity as Replicated>::to_wire(&new_note))?;
    println!("\nforwarding {wire}");
    let t = Instant::now();
    let created = new_note.insert_replicated(replica).await?;
    let insert_time = t.elapsed();
    println!(
        "insert on the replica → forwarded to {} → id {} saved, revision {} (set by the hook on the primary)",
        hostnames[0], created.id, created.revision
    );
    println!(
        "  took {insert_time:?}; primary txid {}, replica txid {}",
        txid(primary),
        txid(replica)
    );

    let t = Instant::now();
    let visible = note::Entity::find_by_id(created.id).one(replica).await?;
    println!(
        "read it back on the replica at once: {:?} ({:?})",
        visible.map(|n| n.text),
        t.elapsed()
    );

    let t = Instant::now();
    let mut edit: note::ActiveModel = created.into();
    edit.text = Set("updated on the replica".into());
    let updated = edit.update_replicated(replica).await?;
    println!(
        "\nupdate on the replica → forwarded → revision {} in {:?}; primary txid {}, replica txid {}",
        updated.revision,
        t.elapsed(),
        txid(primary),
        txid(replica)
    );

    let t = Instant::now();
    let local = note::ActiveModel {
        text: Set("written on the primary".into()),
        ..Default::default()
    }
    .insert_replicated(primary)
    .await?;
    println!(
        "\ninsert on the primary → local, id {} in {:?}",
        local.id,
        t.elapsed()
    );

    litefs.sync().await?;
    let all = note::Entity::find().all(replica).await?;
    println!("\nthe replica now holds {} notes:", all.len());
    for n in all {
        println!("  #{} r{} {}", n.id, n.revision, n.text);
    }
    Ok(())
}

fn txid(db: &ReplicatedDb) -> u64 {
    db.local_position().map(|p| p.txid).unwrap_or_default()
}

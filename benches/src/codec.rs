//! The wire form's cost: encoding and decoding one ActiveModel's request and answer, and
//! signing and verifying the request.

use std::hint::black_box;
use std::time::{Duration, Instant};

use anyhow::Result;
use litefs_orm::auth::{self, Verifier};
use litefs_orm::wire::{Op, Outcome, WIRE_VERSION, WriteRequest, WriteResponse};
use litefs_orm::{RPC_PATH, Replicated};
use sea_orm::{ActiveValue, IntoActiveModel, TryIntoModel};

use crate::Options;
use crate::cluster::SECRET;
use crate::entity::item;
use crate::report::{Report, Unit};

/// Mean time of `f` over `iters` calls, in microseconds.
fn mean_us<T>(iters: usize, mut f: impl FnMut(usize) -> T) -> f64 {
    for i in 0..iters / 10 + 1 {
        black_box(f(i));
    }
    let start = Instant::now();
    for i in 0..iters {
        black_box(f(i));
    }
    start.elapsed().as_secs_f64() * 1e6 / iters.max(1) as f64
}

fn request(model: &item::ActiveModel) -> WriteRequest {
    WriteRequest {
        v: WIRE_VERSION,
        entity: <item::Entity as Replicated>::NAME.to_owned(),
        op: Op::Insert,
        model: <item::Entity as Replicated>::to_wire(model),
        key: "0123456789abcdef0123456789abcdef".to_owned(),
        db: None,
        durability: None,
    }
}

/// Measures the codec and records it in `report`.
pub fn run(opts: &Options, report: &mut Report) -> Result<()> {
    let iters = opts.codec_iters;
    let model = item::new(42);
    let body = serde_json::to_vec(&request(&model))?;
    let saved = item::Model {
        id: 42,
        name: "item 42".into(),
        qty: 42,
        price: 9.5,
        note: Some("benchmark".into()),
    };
    let answer = serde_json::to_vec(&WriteResponse {
        v: WIRE_VERSION,
        txid: 1234,
        run: Some("0123456789abcdef".into()),
        not_durable: None,
        outcome: Outcome::Model(<item::Entity as Replicated>::to_wire(
            &saved.clone().into_active_model(),
        )),
    })?;
    // Sanity: the forms round-trip.
    let back: WriteRequest = serde_json::from_slice(&body)?;
    let back = <item::Entity as Replicated>::from_wire(back.model)?;
    anyhow::ensure!(
        back.name == ActiveValue::Set("item 42".into()),
        "request round trip"
    );

    let encode = mean_us(iters, |_| {
        serde_json::to_vec(&request(&model)).map(|b| b.len())
    });
    let decode = mean_us(iters, |_| {
        let r: WriteRequest = serde_json::from_slice(&body).expect("decodes");
        <item::Entity as Replicated>::from_wire(r.model).is_ok()
    });
    let answer_encode = mean_us(iters, |_| {
        serde_json::to_vec(&WriteResponse {
            v: WIRE_VERSION,
            txid: 1234,
            run: Some("0123456789abcdef".into()),
            not_durable: None,
            outcome: Outcome::Model(<item::Entity as Replicated>::to_wire(
                &saved.clone().into_active_model(),
            )),
        })
        .map(|b| b.len())
    });
    let answer_decode = mean_us(iters, |_| {
        let r: WriteResponse = serde_json::from_slice(&answer).expect("decodes");
        match r.outcome {
            Outcome::Model(w) => <item::Entity as Replicated>::from_wire(w)
                .ok()
                .and_then(|a| a.try_into_model().ok())
                .is_some(),
            Outcome::Deleted { .. } => false,
        }
    });
    let sign = mean_us(iters, |_| auth::sign(SECRET.as_bytes(), RPC_PATH, &body));
    let (verify, verify_busy) = verify_costs(iters, opts.nonce_crowd, &body);

    report.add(
        "wire.request_bytes",
        "wire: request body",
        body.len() as f64,
        Unit::Bytes,
    );
    report.add(
        "wire.answer_bytes",
        "wire: answer body",
        answer.len() as f64,
        Unit::Bytes,
    );
    for (key, label, v) in [
        (
            "wire.encode",
            "wire: encode request (to_wire + JSON), mean",
            encode,
        ),
        (
            "wire.decode",
            "wire: decode request (JSON + from_wire), mean",
            decode,
        ),
        (
            "wire.answer_encode",
            "wire: encode answer, mean",
            answer_encode,
        ),
        (
            "wire.answer_decode",
            "wire: decode answer into the Model, mean",
            answer_decode,
        ),
        ("wire.sign", "auth: sign (HMAC-SHA256, nonce), mean", sign),
        (
            "wire.verify",
            "auth: verify, few recent nonces, mean",
            verify,
        ),
    ] {
        report.add(key, label, v, Unit::Micros);
    }
    let label = format!(
        "auth: verify with {} nonces in the window, mean",
        opts.nonce_crowd
    );
    report.add("wire.verify_busy", &label, verify_busy, Unit::Micros);
    Ok(())
}

/// Verification cost with an almost empty nonce cache, and with one holding `crowd` recent
/// nonces (20 000 is what a primary taking ~700 writes/s holds in its 30 s window).
fn verify_costs(iters: usize, crowd: usize, body: &[u8]) -> (f64, f64) {
    let skew = Duration::from_secs(30);
    let sigs: Vec<_> = (0..iters)
        .map(|_| auth::sign(SECRET.as_bytes(), RPC_PATH, body))
        .collect();
    let timed = |verifier: &Verifier, sigs: &[auth::Signature]| {
        let start = Instant::now();
        for sig in sigs {
            black_box(verifier.verify(sig, RPC_PATH, body).is_ok());
        }
        start.elapsed().as_secs_f64() * 1e6 / sigs.len().max(1) as f64
    };
    let few = sigs.len().min(1000);
    let fresh = timed(
        &Verifier::new(Some(SECRET), skew).expect("the bench secret is long enough"),
        &sigs[..few],
    );
    let busy = Verifier::new(Some(SECRET), skew).expect("the bench secret is long enough");
    for _ in 0..crowd {
        let _ = busy.verify(
            &auth::sign(SECRET.as_bytes(), RPC_PATH, body),
            RPC_PATH,
            body,
        );
    }
    let crowded = timed(&busy, &sigs[..few.min(200)]);
    (fresh, crowded)
}

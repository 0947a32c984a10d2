//! Codec micro-benchmarks: decoding and encoding V2 text frames (small and ~10 KB
//! payloads) and V2 binary frames, next to plain serde_json on the same frames
//! (`from_slice::<Value>` of the same bytes; `to_vec` of the same
//! `[join_ref, ref, topic, event, payload]` array): the floor any JSON codec pays.
//! The `slipstream_dyn` cases decode through an `Arc<dyn Serializer>`, as the client
//! does (one dynamic call per frame).
//!
//! Run: `cargo bench --bench codec` (see docs/performance.md).

use std::hint::black_box;
use std::sync::Arc;

use actix_slipstream::codec::Message;
use actix_slipstream::codec::{Frame, Serializer, V2};
use actix_slipstream::{Event, Payload, Ref, ReplyStatus};
use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use serde_json::{json, Value};

/// A small server push, as the `flood` scenario receives it (~150 B).
fn small_push() -> Message {
    Message::new(
        Some(Ref::from(3)),
        None,
        "room:bench",
        Event::from("flooded"),
        Payload::Json(json!({"n": 123_456, "data": "x".repeat(92)})),
    )
}

/// A small reply, as the `echo` scenarios receive it (~100 B).
fn small_reply() -> Message {
    Message::new(
        Some(Ref::from(3)),
        Some(Ref::from(4242)),
        "room:bench",
        Event::Reply(ReplyStatus::Ok),
        Payload::Json(json!({"body": "x".repeat(32), "n": 42})),
    )
}

/// A reply with a ~10 KB response: a list of records with strings and numbers.
fn large_reply() -> Message {
    let items: Vec<Value> = (0..100)
        .map(|i| {
            json!({
                "id": i,
                "name": format!("user-{i}"),
                "score": i as f64 * 1.5,
                "active": i % 2 == 0,
                "tags": ["a", "b", "c"],
                "bio": "lorem ipsum dolor sit amet consectetur",
            })
        })
        .collect();
    Message::new(
        Some(Ref::from(3)),
        Some(Ref::from(4242)),
        "room:bench",
        Event::Reply(ReplyStatus::Ok),
        Payload::Json(json!({ "items": items })),
    )
}

fn binary_push(len: usize) -> Message {
    let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
    Message::new(
        Some(Ref::from(3)),
        None,
        "room:bench",
        Event::from("binary_pushed"),
        Payload::Binary(Bytes::from(data)),
    )
}

fn text_of(frame: &Frame) -> &str {
    match frame {
        Frame::Text(t) => t,
        Frame::Binary(_) => panic!("expected a text frame"),
    }
}

fn bench_decode_text(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode_v2_text");
    let dynamic: Arc<dyn Serializer> = Arc::new(V2);
    for (name, msg) in [
        ("small", small_push()),
        ("small_reply", small_reply()),
        ("10k", large_reply()),
    ] {
        let frame = V2.encode_server(&msg).expect("encode");
        let bytes = text_of(&frame).as_bytes().to_vec();
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_with_input(BenchmarkId::new("slipstream", name), &bytes, |b, bytes| {
            b.iter(|| V2.decode_server_text(black_box(bytes)).expect("decode"))
        });
        group.bench_with_input(
            BenchmarkId::new("slipstream_dyn", name),
            &bytes,
            |b, bytes| {
                b.iter(|| {
                    black_box(&dynamic)
                        .decode_server_text(black_box(bytes))
                        .expect("decode")
                })
            },
        );
        group.bench_with_input(
            BenchmarkId::new("serde_json_value", name),
            &bytes,
            |b, bytes| b.iter(|| serde_json::from_slice::<Value>(black_box(bytes)).expect("json")),
        );
    }
    group.finish();
}

fn bench_encode_text(c: &mut Criterion) {
    let mut group = c.benchmark_group("encode_v2_text");
    let small_client = Message::new(
        Some(Ref::from(3)),
        Some(Ref::from(4242)),
        "room:bench",
        Event::from("echo"),
        Payload::Json(json!({"n": 4242, "body": "hello"})),
    );
    let large_client = {
        let mut m = large_reply();
        m.event = Event::from("echo");
        m
    };
    for (name, msg) in [("small", small_client), ("10k", large_client)] {
        let len = text_of(&V2.encode_client(&msg).expect("encode")).len();
        group.throughput(Throughput::Bytes(len as u64));
        group.bench_with_input(BenchmarkId::new("slipstream", name), &msg, |b, msg| {
            b.iter(|| V2.encode_client(black_box(msg)).expect("encode"))
        });
        // The same frame written by serde_json directly: [join_ref, ref, topic, event, payload].
        let payload = msg.payload.as_json().cloned().expect("json payload");
        let frame = (
            msg.join_ref.as_ref().map(|r| r.as_str().to_owned()),
            msg.reference.as_ref().map(|r| r.as_str().to_owned()),
            msg.topic.as_str().to_owned(),
            msg.event.as_str().to_owned(),
            payload,
        );
        group.bench_with_input(
            BenchmarkId::new("serde_json_value", name),
            &frame,
            |b, frame| b.iter(|| serde_json::to_vec(black_box(frame)).expect("json")),
        );
    }
    group.finish();
}

fn bench_binary(c: &mut Criterion) {
    let mut group = c.benchmark_group("v2_binary");
    let dynamic: Arc<dyn Serializer> = Arc::new(V2);
    for len in [64usize, 10 * 1024] {
        let msg = binary_push(len);
        let Frame::Binary(frame) = V2.encode_server(&msg).expect("encode") else {
            panic!("expected a binary frame");
        };
        group.throughput(Throughput::Bytes(frame.len() as u64));
        group.bench_with_input(BenchmarkId::new("decode", len), &frame, |b, frame| {
            b.iter(|| V2.decode_server_binary(black_box(frame)).expect("decode"))
        });
        group.bench_with_input(BenchmarkId::new("decode_dyn", len), &frame, |b, frame| {
            b.iter(|| {
                black_box(&dynamic)
                    .decode_server_binary(black_box(frame))
                    .expect("decode")
            })
        });
        let mut client_msg = msg.clone();
        client_msg.reference = Some(Ref::from(4242));
        group.bench_with_input(BenchmarkId::new("encode", len), &client_msg, |b, msg| {
            b.iter(|| V2.encode_client(black_box(msg)).expect("encode"))
        });
    }
    group.finish();
}

criterion_group!(benches, bench_decode_text, bench_encode_text, bench_binary);
criterion_main!(benches);

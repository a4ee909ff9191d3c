//! Decoding hostile frames never allocates much more than the frame itself.
//!
//! This binary counts every allocation with the `cap` allocator, so it holds one test only
//! (parallel tests would add to the count).

#![allow(clippy::unwrap_used)]

use std::alloc::System;

use auction_proto::msg::client::ClientToServer;
use auction_proto::{
    ClientCodec, ClusterId, ClusterKey, Envelope, Incarnation, Keyring, NodeId, PeerCodec,
};
use cap::Cap;

#[global_allocator]
static ALLOCATOR: Cap<System> = Cap::new(System, usize::MAX);

/// A varint of `v` as postcard writes lengths.
fn varint(mut v: u64, out: &mut Vec<u8>) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

/// `payload` sealed as a frame body, as a key holder could send it.
fn sign(codec_key: &ClusterKey, payload: &[u8]) -> Vec<u8> {
    let mut codec = PeerCodec::new(ClusterId::from_name("alloc"), Keyring::new(codec_key.clone()));
    let env = Envelope {
        cluster: ClusterId::from_name("alloc"),
        instance: None,
        key: codec_key.id(),
        sender: NodeId::from_bytes([1; 16]),
        incarnation: Incarnation(1),
        to: None,
        counter: 1,
    };
    codec.seal_raw(&env, payload).unwrap()
}

#[test]
fn hostile_frames_allocate_in_proportion_to_their_bytes() {
    let key = ClusterKey::new(&[5; 32]).unwrap();
    let mut codec = PeerCodec::new(ClusterId::from_name("alloc"), Keyring::new(key.clone()))
        .with_max_payload(64 * 1024);

    // PeerBody::Ordering(OrderingMsg::Order { term, prev: (0, 0), entries: <claims u32::MAX
    // entries>, .. }) followed by 60 KiB of bytes that start an entry each.
    let mut payload = vec![3, 1, 7, 0, 0];
    varint(u64::from(u32::MAX), &mut payload);
    payload.resize(60 * 1024, 0);
    let frame = sign(&key, &payload);

    // A snapshot chunk claiming 2^62 bytes.
    let mut chunk = vec![3, 7, 1, 0, 0, 0, 0];
    varint(1 << 62, &mut chunk);
    chunk.resize(1024, 0xab);
    let chunk_frame = sign(&key, &chunk);

    // A client request whose login token claims 4 GiB.
    let mut client = vec![b'A', b'C', 2, 1, 0, 0, 0, 0, 0, 1, 2];
    varint(1, &mut client);
    client.extend_from_slice(b"a");
    varint(u64::from(u32::MAX), &mut client);
    client.resize(64 * 1024, b'x');
    let len = (client.len() - 8) as u32;
    client[4..8].copy_from_slice(&len.to_be_bytes());

    // The peak only grows, so measure from the smallest bound to the largest.
    let before = ALLOCATOR.allocated();
    let peak = || ALLOCATOR.max_allocated().saturating_sub(before);
    assert!(ALLOCATOR.max_allocated() <= before + (1 << 20), "test setup stays small");

    // Unauthenticated input: speculative preallocation is refused (postcard offers no size
    // hint larger than the bytes left), so a lying length costs nothing.
    assert!(ClientCodec::default().decode_datagram::<ClientToServer>(&client).is_err());
    assert!(codec.decode_datagram(&chunk_frame).is_err());
    assert!(peak() <= 2 * client.len() + (64 << 10), "lying lengths allocated {} bytes", peak());

    // Authenticated input that really holds ~15,000 minimal entries of 4 bytes each: memory is
    // what the decoded value needs (the in-memory entry is larger than its wire form), bounded
    // by the frame length times that ratio, never by the claimed count.
    assert!(codec.decode_datagram(&frame).is_err());
    let ratio = std::mem::size_of::<auction_proto::msg::log::LogEntry>() / 4;
    assert!(
        peak() <= 2 * ratio * payload.len(),
        "decoding {} bytes allocated {} bytes (ratio {ratio})",
        payload.len(),
        peak()
    );
}

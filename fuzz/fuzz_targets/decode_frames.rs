//! Feeds arbitrary bytes to every decoder of the wire protocol: peer frames (datagram and
//! stream, with the right key so that valid frames reach the payload decoder too) and client
//! frames in both directions. Any panic, or an allocation past libFuzzer's limit, is a bug.

#![no_main]

use auction_proto::msg::client::{ClientToServer, ServerToClient};
use auction_proto::{ClientCodec, ClusterId, ClusterKey, Incarnation, Keyring, NodeId, PeerCodec};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(key) = ClusterKey::new(b"fuzzing-cluster-key-0123456789") else { return };
    let codec = PeerCodec::new(ClusterId::from_name("fuzz"), Keyring::new(key.clone()));
    let _ = codec.decode_datagram(data);
    let _ = codec.decode_stream(data);

    // Sign the input as a payload so the postcard decoder of peer bodies is reached.
    let mut frame = Vec::with_capacity(data.len() + 92);
    frame.extend_from_slice(b"AP\x01\x03");
    frame.extend_from_slice(&(data.len() as u32).to_be_bytes());
    frame.extend_from_slice(ClusterId::from_name("fuzz").as_bytes());
    frame.extend_from_slice(&key.id().0.to_be_bytes());
    frame.extend_from_slice(NodeId::from_bytes([1; 16]).as_bytes());
    frame.extend_from_slice(&Incarnation(1).0.to_be_bytes());
    frame.extend_from_slice(&1u64.to_be_bytes());
    frame.extend_from_slice(data);
    let tag = key.tag(&frame);
    frame.extend_from_slice(&tag);
    let _ = codec.decode_datagram(&frame);

    let client = ClientCodec::default();
    let _ = client.decode_datagram::<ClientToServer>(data);
    let _ = client.decode_stream::<ServerToClient>(data);
    // The same bytes behind valid client headers reach the payload decoders.
    for kind in [1u8, 2] {
        let mut framed = vec![b'A', b'C', 1, kind];
        framed.extend_from_slice(&(data.len() as u32).to_be_bytes());
        framed.extend_from_slice(data);
        let _ = client.decode_datagram::<ClientToServer>(&framed);
        let _ = client.decode_datagram::<ServerToClient>(&framed);
    }
});

//! Feeds arbitrary bytes to every decoder of the wire protocol: peer frames (header, datagram
//! and stream, with the right key so that valid frames reach the payload decoder too), the
//! receiver's envelope checks (`PeerSeal::open`), and client frames in both directions. Any
//! panic, or an allocation past libFuzzer's limit, is a bug.

#![no_main]

use auction_proto::msg::client::{ClientToServer, ServerToClient};
use auction_proto::{
    Addressee, Channel, ClientCodec, ClusterId, ClusterKey, Envelope, Incarnation, InstanceId,
    Keyring, NodeId, PeerCodec, PeerSeal,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(key) = ClusterKey::new(b"fuzzing-cluster-key-0123456789") else { return };
    let cluster = ClusterId::from_name("fuzz");
    let mut codec = PeerCodec::new(cluster, Keyring::new(key.clone()));
    let _ = codec.decode_header(data);
    let _ = codec.decode_datagram(data);
    let _ = codec.decode_stream(data);

    let me = NodeId::from_bytes([2; 16]);
    let instance = InstanceId::from_bytes([5; 16]);
    let Some((&flags, body)) = data.split_first() else { return };
    let mine = (flags & 0x20 != 0).then_some(instance);
    let mut seal = PeerSeal::new(codec.clone(), me, Incarnation(3), mine);
    let channel = if flags & 0x10 != 0 { Channel::Stream } else { Channel::Datagram };
    let _ = seal.open(data, channel);

    // Seal the rest of the input as the encrypted body behind a valid header, with envelope
    // fields chosen by the first byte, so that the envelope checks and the postcard decoder of
    // peer bodies are reached.
    let receiver = match flags >> 1 & 3 {
        0 => None,
        1 => Some(me),
        _ => Some(NodeId::from_bytes([9; 16])),
    };
    let to = receiver.map(|node| Addressee {
        node,
        incarnation: Incarnation(if flags & 8 != 0 { 3 } else { 2 }),
    });
    let counter = u64::from(flags) | if channel == Channel::Stream { 1 << 63 } else { 0 };
    let env = Envelope {
        cluster,
        instance: (flags & 1 != 0).then_some(instance),
        key: key.id(),
        sender: NodeId::from_bytes([1; 16]),
        incarnation: Incarnation(1),
        to,
        counter,
    };
    let Ok(frame) = codec.seal_raw(&env, body) else { return };
    let _ = codec.decode_datagram(&frame);
    let _ = seal.open(&frame, channel);
    let _ = seal.open(&frame, channel);

    let client = ClientCodec::default();
    let _ = client.decode_datagram::<ClientToServer>(data);
    let _ = client.decode_stream::<ServerToClient>(data);
    // The same bytes behind valid client headers reach the payload decoders.
    for kind in [1u8, 2] {
        let mut framed = vec![b'A', b'C', 2, kind];
        framed.extend_from_slice(&(data.len() as u32).to_be_bytes());
        framed.extend_from_slice(data);
        let _ = client.decode_datagram::<ClientToServer>(&framed);
        let _ = client.decode_datagram::<ServerToClient>(&framed);
    }
});

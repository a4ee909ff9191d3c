//! The wire protocol as two peers use it: a TCP-like byte stream cut at arbitrary points,
//! authentication, and replay protection working together.

#![allow(clippy::unwrap_used)]

use auction_proto::msg::peer::{OrderingMsg, PeerBody};
use auction_proto::{
    ClusterId, ClusterKey, DecodeError, Envelope, Incarnation, KeyId, Keyring, NodeId, PeerCodec,
    ReplayError, ReplayWindow, Seq, Term,
};
use proptest::prelude::*;

fn codec() -> PeerCodec {
    PeerCodec::new(ClusterId::from_name("wire"), Keyring::new(ClusterKey::new(&[3; 32]).unwrap()))
}

/// An unaddressed envelope of `me` (the stream does not check the receiver; `PeerSeal` does).
fn env(me: NodeId, inc: u64, counter: u64) -> Envelope {
    Envelope {
        cluster: ClusterId::from_name("wire"),
        instance: None,
        key: KeyId(0),
        sender: me,
        incarnation: Incarnation(inc),
        to: None,
        counter,
    }
}

fn ack(stored: u64) -> PeerBody {
    PeerBody::Ordering(OrderingMsg::Ack { term: Term(1), stored: Seq(stored) })
}

/// Reads frames off a buffer the way the node's stream reader does, and applies the replay
/// window; returns the accepted bodies and the replay refusals.
fn receive(
    codec: &mut PeerCodec,
    stream: &[u8],
    chunk: usize,
) -> (Vec<PeerBody>, Vec<ReplayError>) {
    let mut window = ReplayWindow::default();
    let (mut accepted, mut refused) = (Vec::new(), Vec::new());
    let mut buf = Vec::new();
    for piece in stream.chunks(chunk.max(1)) {
        buf.extend_from_slice(piece);
        while let Some((frame, used)) = codec.decode_stream(&buf).unwrap() {
            buf.drain(..used);
            match window.check(frame.envelope.incarnation, frame.envelope.counter) {
                Ok(()) => accepted.push(frame.body),
                Err(e) => refused.push(e),
            }
        }
    }
    assert!(buf.is_empty(), "no partial frame left over");
    (accepted, refused)
}

proptest! {
    #[test]
    fn frames_survive_any_chunking_and_replays_are_refused(
        n in 1usize..20,
        chunk in 1usize..300,
        replay in any::<prop::sample::Index>(),
    ) {
        let mut codec = codec();
        let me = NodeId::from_bytes([1; 16]);
        let mut frames: Vec<Vec<u8>> = (0..n as u64)
            .map(|i| codec.encode(&env(me, 1, i), &ack(i)).unwrap())
            .collect();
        // An attacker replays one captured frame at the end.
        let again = frames[replay.index(n)].clone();
        frames.push(again);
        let stream = frames.concat();
        let (accepted, refused) = receive(&mut codec, &stream, chunk);
        prop_assert_eq!(accepted, (0..n as u64).map(ack).collect::<Vec<_>>());
        prop_assert_eq!(refused.len(), 1);
    }
}

#[test]
fn a_restarted_sender_is_accepted_and_its_old_self_is_not() {
    let mut codec = codec();
    let me = NodeId::from_bytes([1; 16]);
    let old = codec.encode(&env(me, 1, 50), &ack(1)).unwrap();
    let new = codec.encode(&env(me, 2, 0), &ack(2)).unwrap();
    let (accepted, refused) = receive(&mut codec, &[new, old].concat(), 7);
    assert_eq!(accepted, vec![ack(2)]);
    assert_eq!(
        refused,
        vec![ReplayError::OldIncarnation { got: Incarnation(1), current: Incarnation(2) }]
    );
}

#[test]
fn a_stream_with_junk_after_good_frames_fails_at_the_junk() {
    let mut codec = codec();
    let me = NodeId::from_bytes([1; 16]);
    let mut stream = codec.encode(&env(me, 1, 0), &ack(0)).unwrap();
    let first = stream.len();
    stream.extend_from_slice(b"GET / HTTP/1.1\r\n");
    let (frame, used) = codec.decode_stream(&stream).unwrap().unwrap();
    assert_eq!((frame.body, used), (ack(0), first));
    assert_eq!(codec.decode_stream(&stream[used..]), Err(DecodeError::BadMagic { got: *b"GE" }));
}

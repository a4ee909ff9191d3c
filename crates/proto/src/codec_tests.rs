//! Codec tests: round trips of every message, junk never panics, each rejection has its error,
//! and the encoded sizes of the common messages are pinned.

use std::net::SocketAddr;

use proptest::prelude::*;

use super::*;
use crate::auth::ClusterKey;
use crate::msg::auction::{Bidder, BidderAlias, BidderName, Outcome};
use crate::msg::client::{ClientError, Reply, Request, RequestBody, Response};
use crate::msg::discovery::{DiscoveryMsg, NodeInfo};
use crate::msg::peer::{MembershipMsg, OrderingMsg};
use crate::{Amount, AuctionId, RequestNo, Seq, Term};

fn key(b: u8) -> ClusterKey {
    ClusterKey::new(&[b; 32]).unwrap()
}

fn peer_codec() -> PeerCodec {
    PeerCodec::new(ClusterId::from_name("test"), Keyring::new(key(1)))
}

fn node() -> NodeId {
    NodeId::from_bytes([9; 16])
}

fn sample_peer() -> PeerBody {
    PeerBody::Ordering(OrderingMsg::Ack { term: Term(3), stored: Seq(42) })
}

/// An addressed envelope from `node()`; the codec fills in the cluster and key.
fn env(inc: u64, counter: u64) -> Envelope {
    Envelope {
        cluster: ClusterId::from_name("ignored"),
        instance: Some(InstanceId::from_bytes([5; 16])),
        key: KeyId(0),
        sender: node(),
        incarnation: Incarnation(inc),
        to: Some(Addressee { node: NodeId::from_bytes([8; 16]), incarnation: Incarnation(4) }),
        counter,
    }
}

fn encode_peer(body: &PeerBody) -> Vec<u8> {
    peer_codec().encode(&env(1, 7), body).unwrap()
}

/// Runs a property in a thread with a large stack: the derived strategies of the big message
/// enums need more stack than a default test thread has in debug builds.
fn check_big<S, F>(make: fn() -> S, cases: u32, test: F)
where
    S: Strategy + 'static,
    F: Fn(S::Value) -> Result<(), TestCaseError> + Send + 'static,
{
    let handle = std::thread::Builder::new()
        .stack_size(256 << 20)
        .spawn(move || {
            let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
                cases,
                failure_persistence: None,
                ..ProptestConfig::default()
            });
            runner.run(&make(), test).map_err(|e| e.to_string())
        })
        .unwrap();
    if let Err(e) = handle.join().unwrap() {
        panic!("{e}");
    }
}

#[test]
fn every_peer_message_round_trips() {
    check_big(
        || (any::<PeerBody>(), any::<u64>(), any::<u64>()),
        256,
        |(body, inc, ctr)| {
            let mut codec = peer_codec().with_max_payload(usize::MAX);
            let bytes = codec.encode(&env(inc, ctr), &body).unwrap();
            let frame = codec.decode_datagram(&bytes).unwrap();
            prop_assert_eq!(&frame.body, &body);
            prop_assert_eq!(frame.envelope.sender, node());
            prop_assert_eq!(frame.envelope.incarnation, Incarnation(inc));
            prop_assert_eq!(frame.envelope.counter, ctr);
            prop_assert_eq!(frame.envelope.to, env(inc, ctr).to);
            prop_assert_eq!(frame.envelope.instance, env(inc, ctr).instance);
            prop_assert_eq!(frame.envelope.cluster, ClusterId::from_name("test"));
            prop_assert_eq!(
                codec.decode_stream(&bytes).unwrap().map(|(_, n)| n),
                Some(bytes.len())
            );
            Ok(())
        },
    );
}

#[test]
fn every_client_request_round_trips() {
    check_big(any::<ClientToServer>, 256, |msg| {
        let codec = ClientCodec::with_max_payload(usize::MAX);
        let bytes = codec.encode(&msg).unwrap();
        prop_assert_eq!(codec.decode_datagram::<ClientToServer>(&bytes).unwrap(), msg);
        Ok(())
    });
}

#[test]
fn every_server_message_round_trips() {
    check_big(any::<ServerToClient>, 256, |msg| {
        let codec = ClientCodec::with_max_payload(usize::MAX);
        let bytes = codec.encode(&msg).unwrap();
        prop_assert_eq!(codec.decode_datagram::<ServerToClient>(&bytes).unwrap(), msg);
        Ok(())
    });
}

#[test]
fn any_bit_flip_in_a_peer_frame_is_rejected() {
    check_big(
        || (any::<PeerBody>(), any::<prop::sample::Index>()),
        256,
        |(body, bit)| {
            let mut codec = peer_codec().with_max_payload(usize::MAX);
            let mut bytes = codec.encode(&env(1, 1), &body).unwrap();
            let bit = bit.index(bytes.len() * 8);
            bytes[bit / 8] ^= 1 << (bit % 8);
            prop_assert!(codec.decode_datagram(&bytes).is_err());
            Ok(())
        },
    );
}

#[test]
fn bit_flipped_client_frames_never_panic() {
    check_big(
        || (any::<ClientToServer>(), any::<prop::sample::Index>()),
        256,
        |(msg, bit)| {
            let codec = ClientCodec::default();
            if let Ok(mut bytes) = codec.encode(&msg) {
                let bit = bit.index(bytes.len() * 8);
                bytes[bit / 8] ^= 1 << (bit % 8);
                let _ = codec.decode_datagram::<ClientToServer>(&bytes);
            }
            Ok(())
        },
    );
}

proptest! {
    #[test]
    fn stream_decoding_waits_for_whole_frames(msgs in proptest::collection::vec(any::<ClientToServer>(), 1..5), cut in any::<prop::sample::Index>()) {
        let codec = ClientCodec::with_max_payload(usize::MAX);
        let mut stream = Vec::new();
        for m in &msgs {
            codec.encode_into(m, &mut stream).unwrap();
        }
        // Feed a prefix first: it yields whole frames only, never an error.
        let cut = cut.index(stream.len() + 1);
        let mut decoded = Vec::new();
        let mut at = 0;
        while let Some((m, n)) = codec.decode_stream::<ClientToServer>(&stream[at..cut]).unwrap() {
            decoded.push(m);
            at += n;
        }
        while let Some((m, n)) = codec.decode_stream::<ClientToServer>(&stream[at..]).unwrap() {
            decoded.push(m);
            at += n;
        }
        prop_assert_eq!(at, stream.len());
        prop_assert_eq!(decoded, msgs);
    }

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = peer_codec().decode_datagram(&bytes);
        let _ = peer_codec().decode_stream(&bytes);
        let _ = ClientCodec::default().decode_datagram::<ClientToServer>(&bytes);
        let _ = ClientCodec::default().decode_stream::<ServerToClient>(&bytes);
    }

    #[test]
    fn random_payload_behind_a_valid_header_never_panics(payload in proptest::collection::vec(any::<u8>(), 0..512)) {
        let mut bytes = header(CLIENT_MAGIC, KIND_TO_SERVER).to_vec();
        bytes[4..8].copy_from_slice(&(payload.len() as u32).to_be_bytes());
        bytes.extend_from_slice(&payload);
        let _ = ClientCodec::default().decode_datagram::<ClientToServer>(&bytes);
        let mut bytes = header(CLIENT_MAGIC, KIND_TO_CLIENT).to_vec();
        bytes[4..8].copy_from_slice(&(payload.len() as u32).to_be_bytes());
        bytes.extend_from_slice(&payload);
        let _ = ClientCodec::default().decode_datagram::<ServerToClient>(&bytes);
    }
}

#[test]
fn wrong_key_is_unknown_key() {
    let mut other = PeerCodec::new(ClusterId::from_name("test"), Keyring::new(key(2)));
    let bytes = other.encode(&env(1, 1), &sample_peer()).unwrap();
    assert_eq!(
        peer_codec().decode_datagram(&bytes),
        Err(DecodeError::UnknownKey { key: key(2).id() })
    );
}

#[test]
fn tampered_tag_is_bad_tag() {
    let mut bytes = encode_peer(&sample_peer());
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    assert_eq!(peer_codec().decode_datagram(&bytes), Err(DecodeError::BadTag));
}

#[test]
fn tampered_body_or_envelope_is_bad_tag() {
    let mut bytes = encode_peer(&sample_peer());
    bytes[PEER_HEADER_LEN] ^= 0x01;
    assert_eq!(peer_codec().decode_datagram(&bytes), Err(DecodeError::BadTag));
    let mut bytes = encode_peer(&sample_peer());
    bytes[95] ^= 0x01; // the counter is under the header tag
    assert_eq!(peer_codec().decode_datagram(&bytes), Err(DecodeError::BadTag));
    let mut bytes = encode_peer(&sample_peer());
    bytes[70] ^= 0x01; // so is the receiver
    assert_eq!(peer_codec().decode_header(&bytes), Err(DecodeError::BadTag));
    let mut bytes = encode_peer(&sample_peer());
    bytes[105] ^= 0x01; // and the header tag itself
    assert_eq!(peer_codec().decode_header(&bytes), Err(DecodeError::BadTag));
}

#[test]
fn wrong_cluster_is_rejected_before_the_key() {
    let mut other = PeerCodec::new(ClusterId::from_name("other"), Keyring::new(key(1)));
    let bytes = other.encode(&env(1, 1), &sample_peer()).unwrap();
    assert_eq!(
        peer_codec().decode_datagram(&bytes),
        Err(DecodeError::WrongCluster { got: ClusterId::from_name("other") })
    );
}

#[test]
fn wrong_version_is_rejected() {
    let mut bytes = encode_peer(&sample_peer());
    bytes[2] = PROTOCOL_VERSION + 1;
    assert_eq!(
        peer_codec().decode_datagram(&bytes),
        Err(DecodeError::UnsupportedVersion { got: PROTOCOL_VERSION + 1 })
    );
    let mut bytes = ClientCodec::default().encode(&whoami()).unwrap();
    bytes[2] = 0;
    assert_eq!(
        ClientCodec::default().decode_stream::<ClientToServer>(&bytes[..3]),
        Err(DecodeError::UnsupportedVersion { got: 0 }),
        "refused as soon as the version byte arrives"
    );
}

#[test]
fn oversize_is_rejected_from_the_header_alone() {
    let codec = ClientCodec::default();
    let mut header = header(CLIENT_MAGIC, KIND_TO_SERVER);
    header[4..8].copy_from_slice(&u32::MAX.to_be_bytes());
    assert_eq!(
        codec.decode_stream::<ClientToServer>(&header),
        Err(DecodeError::Oversize { len: u32::MAX as usize, max: DEFAULT_MAX_CLIENT_PAYLOAD })
    );
    let big = ClientToServer::Request(Request {
        no: RequestNo(1),
        body: RequestBody::Login { name: BidderName::new("a").unwrap(), token: "x".repeat(70_000) },
    });
    assert!(matches!(
        codec.encode(&big),
        Err(EncodeError::Oversize { max: DEFAULT_MAX_CLIENT_PAYLOAD, .. })
    ));
    let mut out = vec![1, 2, 3];
    assert!(codec.encode_into(&big, &mut out).is_err());
    assert_eq!(out, [1, 2, 3], "a failed encode leaves the buffer as it was");
}

#[test]
fn peer_limit_is_separate_from_client_limit() {
    let body = PeerBody::Ordering(OrderingMsg::Snapshot {
        term: Term(1),
        last_included: Default::default(),
        members: vec![],
        offset: 0,
        chunk: vec![0; 100_000],
        done: true,
    });
    let bytes = encode_peer(&body);
    assert_eq!(peer_codec().decode_datagram(&bytes).unwrap().body, body);
    let mut small = peer_codec().with_max_payload(1024);
    assert!(matches!(small.decode_datagram(&bytes), Err(DecodeError::Oversize { max: 1024, .. })));
}

#[test]
fn truncated_trailing_magic_and_kind_errors() {
    let bytes = encode_peer(&sample_peer());
    let mut codec = peer_codec();
    assert_eq!(
        codec.decode_datagram(&bytes[..bytes.len() - 1]),
        Err(DecodeError::Truncated { needed: bytes.len(), got: bytes.len() - 1 })
    );
    assert_eq!(
        codec.decode_datagram(&bytes[..10]),
        Err(DecodeError::Truncated { needed: PEER_HEADER_LEN, got: 10 })
    );
    assert_eq!(codec.decode_stream(&bytes[..bytes.len() - 1]), Ok(None));
    let mut long = bytes.clone();
    long.push(0);
    assert_eq!(codec.decode_datagram(&long), Err(DecodeError::TrailingBytes { extra: 1 }));
    assert_eq!(codec.decode_datagram(b"XX"), Err(DecodeError::BadMagic { got: *b"XX" }));
    let client = ClientCodec::default().encode(&whoami()).unwrap();
    assert_eq!(codec.decode_datagram(&client), Err(DecodeError::BadMagic { got: CLIENT_MAGIC }));
    assert_eq!(
        ClientCodec::default().decode_datagram::<ServerToClient>(&client),
        Err(DecodeError::WrongKind { got: KIND_TO_SERVER, expected: KIND_TO_CLIENT })
    );
}

#[test]
fn payload_with_trailing_bytes_is_rejected() {
    let mut bytes = header(CLIENT_MAGIC, KIND_TO_SERVER).to_vec();
    let mut good = postcard::to_stdvec(&whoami()).unwrap();
    good.push(0);
    bytes[4..8].copy_from_slice(&(good.len() as u32).to_be_bytes());
    bytes.extend_from_slice(&good);
    assert_eq!(
        ClientCodec::default().decode_datagram::<ClientToServer>(&bytes),
        Err(DecodeError::TrailingBytes { extra: 1 })
    );
}

#[test]
fn malformed_payload_is_malformed() {
    let mut bytes = header(CLIENT_MAGIC, KIND_TO_SERVER).to_vec();
    bytes[4..8].copy_from_slice(&1u32.to_be_bytes());
    bytes.push(0xee); // no such variant
    assert!(matches!(
        ClientCodec::default().decode_datagram::<ClientToServer>(&bytes),
        Err(DecodeError::Malformed(_))
    ));
}

#[test]
fn rotated_keys_are_accepted_during_rollover() {
    let mut old = peer_codec();
    let mut new = PeerCodec::new(ClusterId::from_name("test"), Keyring::new(key(2)));
    old.keys_mut().accept(key(2));
    new.keys_mut().accept(key(1));
    let from_new = new.encode(&env(1, 1), &sample_peer()).unwrap();
    let from_old = old.encode(&env(1, 1), &sample_peer()).unwrap();
    assert!(old.decode_datagram(&from_new).is_ok());
    assert!(new.decode_datagram(&from_old).is_ok());
}

fn whoami() -> ClientToServer {
    ClientToServer::Request(Request { no: RequestNo(1), body: RequestBody::Whoami })
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, 1], port))
}

/// Encoded frame sizes of the common messages, pinned so that a change to the layout is a
/// conscious one (update docs/protocol.md too).
#[test]
fn encoded_sizes_are_pinned() {
    let client = ClientCodec::default();
    let bid = ClientToServer::Request(Request {
        no: RequestNo(1234),
        body: RequestBody::Bid {
            auction: AuctionId(17),
            amount: Amount::from_minor(12_50),
            expected: None,
        },
    });
    let accepted = ServerToClient::Response(Response {
        no: RequestNo(1234),
        applied: Seq(100_000),
        result: Ok(Reply::Outcome(Outcome::Accepted {
            auction: AuctionId(17),
            price: Amount::from_minor(12_50),
            leader: Bidder::You { alias: BidderAlias(1), name: BidderName::new("alice").unwrap() },
        })),
    });
    let unavailable = ServerToClient::Response(Response {
        no: RequestNo(1234),
        applied: Seq(100_000),
        result: Err(ClientError::Unavailable {
            retry_after: std::time::Duration::from_millis(200),
            leader: None,
        }),
    });
    let info = NodeInfo {
        node: node(),
        incarnation: Incarnation(2),
        peer_addr: addr(7000),
        client_addr: addr(7100),
    };
    let sizes = [
        ("client Bid request", client.encode(&bid).unwrap().len()),
        ("client Accepted response", client.encode(&accepted).unwrap().len()),
        ("client Unavailable response", client.encode(&unavailable).unwrap().len()),
        ("peer Ack", encode_peer(&sample_peer()).len()),
        (
            "peer Commit",
            encode_peer(&PeerBody::Ordering(OrderingMsg::Commit {
                term: Term(3),
                commit: Seq(100_000),
            }))
            .len(),
        ),
        (
            "peer Ping",
            encode_peer(&PeerBody::Membership(MembershipMsg::Ping {
                probe: 9,
                updates: vec![],
                wall: crate::Timestamp(0),
            }))
            .len(),
        ),
        (
            "peer Discover",
            encode_peer(&PeerBody::Discovery(DiscoveryMsg::Discover { from: info })).len(),
        ),
    ];
    let expected = [
        ("client Bid request", 16),
        ("client Accepted response", 28),
        ("client Unavailable response", 22),
        ("peer Ack", 136),
        ("peer Commit", 138),
        ("peer Ping", 137),
        ("peer Discover", 166),
    ];
    assert_eq!(sizes, expected);
}

//! `PeerSeal` tests: each attack of a host that captures and re-sends frames, refused with its
//! exact error.

use super::*;
use crate::auth::{ClusterKey, Keyring};
use crate::msg::discovery::{DiscoveryMsg, NodeInfo};
use crate::msg::peer::OrderingMsg;
use crate::{ClusterId, Seq, Term};

fn codec() -> PeerCodec {
    let key = ClusterKey::new(&[7; 32]).unwrap();
    PeerCodec::new(ClusterId::from_name("seal"), Keyring::new(key))
}

fn node(b: u8) -> NodeId {
    NodeId::from_bytes([b; 16])
}

fn instance(b: u8) -> InstanceId {
    InstanceId::from_bytes([b; 16])
}

fn seal(n: u8, inc: u64, inst: Option<u8>) -> PeerSeal {
    PeerSeal::new(codec(), node(n), Incarnation(inc), inst.map(instance))
}

fn to(n: u8, inc: u64) -> Option<Addressee> {
    Some(Addressee { node: node(n), incarnation: Incarnation(inc) })
}

fn ack() -> PeerBody {
    PeerBody::Ordering(OrderingMsg::Ack { term: Term(2), stored: Seq(9) })
}

fn discover(n: u8) -> PeerBody {
    PeerBody::Discovery(DiscoveryMsg::Discover {
        from: NodeInfo {
            node: node(n),
            incarnation: Incarnation(1),
            peer_addr: "10.0.0.1:7000".parse().unwrap(),
            client_addr: "10.0.0.1:7001".parse().unwrap(),
        },
    })
}

#[test]
fn an_addressed_frame_is_accepted_once() {
    let (mut leader, mut a) = (seal(1, 1, Some(9)), seal(2, 1, Some(9)));
    let frame = leader.seal(to(2, 1), &ack(), Channel::Stream).unwrap();
    let opened = a.open(&frame, Channel::Stream).unwrap();
    assert_eq!(opened.frame.body, ack());
    assert_eq!(opened.adopted, None);
    assert_eq!(
        a.open(&frame, Channel::Stream),
        Err(Refusal::Replayed(ReplayError::Replayed { counter: (1 << 63) + 1 }))
    );
    assert_eq!(a.open(&frame, Channel::Datagram), Err(Refusal::WrongChannel));
    assert_eq!((a.stats.accepted, a.stats.replayed), (1, 2));
}

#[test]
fn a_frame_meant_for_a_is_refused_by_b() {
    let (mut leader, mut b) = (seal(1, 1, Some(9)), seal(3, 1, Some(9)));
    let for_a = leader.seal(to(2, 1), &ack(), Channel::Stream).unwrap();
    assert_eq!(b.open(&for_a, Channel::Stream), Err(Refusal::NotForMe { to: node(2) }));
    assert_eq!(b.stats.not_for_me, 1);
}

#[test]
fn a_frame_from_before_a_receiver_restart_is_refused() {
    let mut leader = seal(1, 1, Some(9));
    let old = leader.seal(to(2, 1), &ack(), Channel::Stream).unwrap();
    // Node 2 restarts: incarnation 2, replay windows empty.
    let mut restarted = seal(2, 2, Some(9));
    assert_eq!(
        restarted.open(&old, Channel::Stream),
        Err(Refusal::StaleReceiver {
            sender: node(1),
            sender_incarnation: Incarnation(1),
            got: Incarnation(1),
            current: Incarnation(2),
        })
    );
    let fresh = leader.seal(to(2, 2), &ack(), Channel::Stream).unwrap();
    assert!(restarted.open(&fresh, Channel::Stream).is_ok());
}

#[test]
fn a_frame_of_another_cluster_instance_is_refused() {
    let mut fork = seal(1, 1, Some(8));
    let mut member = seal(2, 1, Some(9));
    let frame = fork.seal(to(2, 1), &ack(), Channel::Stream).unwrap();
    assert_eq!(
        member.open(&frame, Channel::Stream),
        Err(Refusal::OtherInstance { got: instance(8), mine: instance(9) })
    );
    // Discovery of another instance is refused too: the fork cannot even be found.
    let hello = fork.seal(None, &discover(1), Channel::Datagram).unwrap();
    assert!(matches!(member.open(&hello, Channel::Datagram), Err(Refusal::OtherInstance { .. })));
}

#[test]
fn unaddressed_frames_carry_only_discovery() {
    let mut a = seal(1, 1, Some(9));
    let mut b = seal(2, 1, Some(9));
    let hello = a.seal(None, &discover(1), Channel::Datagram).unwrap();
    assert!(b.open(&hello, Channel::Datagram).is_ok());
    // Sealed by hand: `seal` refuses to make an unaddressed non-discovery frame.
    let mut codec = codec();
    let env = Envelope {
        cluster: codec.cluster(),
        instance: Some(instance(9)),
        key: crate::KeyId(0),
        sender: node(1),
        incarnation: Incarnation(1),
        to: None,
        counter: 5,
    };
    let frame = codec.encode(&env, &ack()).unwrap();
    assert_eq!(b.open(&frame, Channel::Datagram), Err(Refusal::Unaddressed));
    let env = Envelope { instance: None, to: to(2, 1), counter: 6, ..env };
    let frame = codec.encode(&env, &ack()).unwrap();
    assert_eq!(b.open(&frame, Channel::Datagram), Err(Refusal::NoInstance));
}

#[test]
fn a_node_without_an_instance_adopts_the_first_addressed_to_it() {
    let mut member = seal(1, 1, Some(9));
    let mut joiner = seal(2, 1, None);
    let hello = joiner.seal(None, &discover(2), Channel::Datagram).unwrap();
    assert!(member.open(&hello, Channel::Datagram).is_ok(), "an instance-less Discover");
    // An unaddressed frame does not make it adopt.
    let broadcast = member.seal(None, &discover(1), Channel::Datagram).unwrap();
    assert_eq!(joiner.open(&broadcast, Channel::Datagram).unwrap().adopted, None);
    assert_eq!(joiner.instance(), None);
    let answer = member.seal(to(2, 1), &discover(1), Channel::Datagram).unwrap();
    assert_eq!(joiner.open(&answer, Channel::Datagram).unwrap().adopted, Some(instance(9)));
    assert_eq!(joiner.instance(), Some(instance(9)));
    assert!(!joiner.set_instance(instance(8)), "the first instance stays");
    let mut fork = seal(3, 1, Some(8));
    let frame = fork.seal(to(2, 1), &ack(), Channel::Stream).unwrap();
    assert!(matches!(joiner.open(&frame, Channel::Stream), Err(Refusal::OtherInstance { .. })));
}

#[test]
fn own_and_forged_frames_are_refused() {
    let mut a = seal(1, 1, Some(9));
    let own = a.seal(to(2, 1), &ack(), Channel::Stream).unwrap();
    assert_eq!(a.open(&own, Channel::Stream), Err(Refusal::FromSelf));
    let mut other_key = PeerSeal::new(
        PeerCodec::new(
            ClusterId::from_name("seal"),
            Keyring::new(ClusterKey::new(&[8; 32]).unwrap()),
        ),
        node(3),
        Incarnation(1),
        Some(instance(9)),
    );
    let forged = other_key.seal(to(1, 1), &ack(), Channel::Stream).unwrap();
    assert!(matches!(a.open(&forged, Channel::Stream), Err(Refusal::Decode(_))));
    assert_eq!(a.stats.undecodable, 1);
}

#[test]
fn admit_checks_frames_a_reader_decoded() {
    let (mut leader, mut a, mut b) =
        (seal(1, 1, Some(9)), seal(2, 1, Some(9)), seal(3, 1, Some(9)));
    let bytes = leader.seal(to(2, 1), &ack(), Channel::Stream).unwrap();
    let mut reader = b.codec().clone();
    let frame = reader.decode_datagram(&bytes).unwrap();
    assert_eq!(b.admit(frame.clone(), Channel::Stream), Err(Refusal::NotForMe { to: node(2) }));
    assert!(a.admit(frame.clone(), Channel::Stream).is_ok());
    assert!(matches!(a.admit(frame, Channel::Stream), Err(Refusal::Replayed(_))));
}

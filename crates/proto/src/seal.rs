//! [`PeerSeal`]: what one node incarnation checks around the [`PeerCodec`].
//!
//! The codec proves a frame was made by a holder of the cluster key and hides its body. That
//! alone does not stop a host on the LAN from re-sending a captured frame: to another member
//! (anyone can open a TCP connection to any peer port), to the same member after it
//! restarted (its replay windows start empty), or to a member of another instance of the
//! cluster (a founder re-bootstrapped on a wiped disk, with the same key). `PeerSeal` closes
//! these, in this order, before the body is decoded where the header suffices:
//!
//! 1. the frame is not one of this node's own, and came on the channel its counter names;
//! 2. an addressed frame names this node *and this incarnation* of it: a frame meant for
//!    another member, or for an earlier boot of this one, is refused;
//! 3. a frame of another cluster instance is refused; a node that has not joined an instance
//!    yet adopts the instance of the first frame addressed to it;
//! 4. an unaddressed frame (discovery broadcast or `--join` probe, whose receiver the sender
//!    cannot know) and a frame of a sender without an instance may only carry discovery,
//!    which cannot change ordering or election state;
//! 5. each `(sender, channel)` has a [`ReplayWindow`]: a frame is accepted at most once.
//!
//! Sender side: every frame of this incarnation gets a fresh counter (datagram and stream
//! counters are disjoint, so a frame captured on one channel cannot be replayed on the
//! other); the counter is the AEAD nonce under a key of this incarnation.

use std::collections::BTreeMap;

use crate::auth::{ReplayError, ReplayWindow};
use crate::codec::{
    Addressee, DecodeError, EncodeError, Envelope, PeerCodec, PeerFrame, PeerHeader,
};
use crate::msg::peer::PeerBody;
use crate::{Incarnation, InstanceId, NodeId};

/// The counter bit that marks stream (TCP) frames.
const STREAM_BIT: u64 = 1 << 63;
/// Most senders whose replay windows are kept (only authenticated senders get one).
const MAX_WINDOWS: usize = 1024;

/// How a frame travels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Channel {
    /// One frame per datagram (UDP).
    Datagram,
    /// A byte stream (TCP).
    Stream,
}

/// Why a frame was refused. Refusing changes nothing but the counters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Not an authentic frame of this cluster (see the codec's error).
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// A frame this node sent itself (reflected).
    #[error("a frame of this node itself")]
    FromSelf,
    /// A datagram frame on a stream, or the other way round.
    #[error("a frame of the other channel")]
    WrongChannel,
    /// Addressed to another node.
    #[error("frame addressed to {to}, not to this node")]
    NotForMe {
        /// The node it names.
        to: NodeId,
    },
    /// Addressed to another incarnation of this node (an earlier boot, as a rule). The
    /// sender is authentic: the caller may tell it this node's current incarnation.
    #[error("frame addressed to incarnation {got:?} of this node (now {current:?})")]
    StaleReceiver {
        /// The authentic sender.
        sender: NodeId,
        /// Its incarnation.
        sender_incarnation: Incarnation,
        /// The incarnation the frame names.
        got: Incarnation,
        /// This node's.
        current: Incarnation,
    },
    /// An unaddressed frame that is not discovery.
    #[error("an unaddressed frame may only carry discovery")]
    Unaddressed,
    /// A frame of a sender outside any instance that is not discovery.
    #[error("a sender without a cluster instance may only send discovery")]
    NoInstance,
    /// A frame of another instance of the cluster.
    #[error("frame of cluster instance {got}, this node is in {mine}")]
    OtherInstance {
        /// The frame's instance.
        got: InstanceId,
        /// This node's.
        mine: InstanceId,
    },
    /// Seen before, or too old to tell.
    #[error(transparent)]
    Replayed(#[from] ReplayError),
}

/// An accepted frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Opened {
    /// The frame.
    pub frame: PeerFrame,
    /// This node had no instance and adopted the frame's: persist it before acting on it.
    pub adopted: Option<InstanceId>,
}

/// Counters of refused and accepted frames.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SealStats {
    /// Accepted.
    pub accepted: u64,
    /// Refused by the codec (forged, tampered, junk, another cluster, unknown key).
    pub undecodable: u64,
    /// Refused: addressed to another node.
    pub not_for_me: u64,
    /// Refused: addressed to another incarnation of this node.
    pub stale_receiver: u64,
    /// Refused: unaddressed or instance-less, and not discovery.
    pub unaddressed: u64,
    /// Refused: another cluster instance.
    pub other_instance: u64,
    /// Refused: replayed, own, or on the wrong channel.
    pub replayed: u64,
}

impl SealStats {
    /// All refusals.
    pub fn refused(&self) -> u64 {
        self.undecodable
            + self.not_for_me
            + self.stale_receiver
            + self.unaddressed
            + self.other_instance
            + self.replayed
    }

    fn count(&mut self, r: &Refusal) {
        let c = match r {
            Refusal::Decode(_) => &mut self.undecodable,
            Refusal::NotForMe { .. } => &mut self.not_for_me,
            Refusal::StaleReceiver { .. } => &mut self.stale_receiver,
            Refusal::Unaddressed | Refusal::NoInstance => &mut self.unaddressed,
            Refusal::OtherInstance { .. } => &mut self.other_instance,
            Refusal::FromSelf | Refusal::WrongChannel | Refusal::Replayed(_) => &mut self.replayed,
        };
        *c += 1;
    }
}

/// Seals outgoing and opens incoming peer frames for one node incarnation. Pure: the
/// node's transport and the simulation both run it.
#[derive(Clone, Debug)]
pub struct PeerSeal {
    codec: PeerCodec,
    me: NodeId,
    incarnation: Incarnation,
    instance: Option<InstanceId>,
    datagram_counter: u64,
    stream_counter: u64,
    windows: BTreeMap<(NodeId, Channel), ReplayWindow>,
    /// Counters.
    pub stats: SealStats,
}

impl PeerSeal {
    /// The seal of node `me` in `incarnation`, a member of `instance` if it has joined one.
    pub fn new(
        codec: PeerCodec,
        me: NodeId,
        incarnation: Incarnation,
        instance: Option<InstanceId>,
    ) -> Self {
        Self {
            codec,
            me,
            incarnation,
            instance,
            datagram_counter: 0,
            stream_counter: STREAM_BIT,
            windows: BTreeMap::new(),
            stats: SealStats::default(),
        }
    }

    /// The instance this node belongs to.
    pub fn instance(&self) -> Option<InstanceId> {
        self.instance
    }

    /// Joins `instance` (a founder, once it has bootstrapped). A node keeps its first
    /// instance: returns `false`, changing nothing, if it already has another.
    pub fn set_instance(&mut self, instance: InstanceId) -> bool {
        match self.instance {
            Some(i) => i == instance,
            None => {
                self.instance = Some(instance);
                true
            }
        }
    }

    /// The codec, for readers that authenticate and decrypt frames off the driver thread
    /// (they hand the frames to [`PeerSeal::admit`]).
    pub fn codec(&self) -> &PeerCodec {
        &self.codec
    }

    /// This node.
    pub fn me(&self) -> (NodeId, Incarnation) {
        (self.me, self.incarnation)
    }

    /// Appends one sealed frame for `to` (`None`: unaddressed discovery) to `out`.
    ///
    /// # Errors
    /// The body is too big for a frame; or it is unaddressed and not discovery (a bug of
    /// the caller: such a frame would be refused everywhere). Nothing was written.
    pub fn seal_into(
        &mut self,
        to: Option<Addressee>,
        body: &PeerBody,
        channel: Channel,
        out: &mut Vec<u8>,
    ) -> Result<(), EncodeError> {
        debug_assert!(
            to.is_some() || matches!(body, PeerBody::Discovery(_)),
            "unaddressed frames carry discovery only"
        );
        let counter = match channel {
            Channel::Datagram => &mut self.datagram_counter,
            Channel::Stream => &mut self.stream_counter,
        };
        *counter += 1;
        let env = Envelope {
            cluster: self.codec.cluster(),
            instance: self.instance,
            key: crate::KeyId(0),
            sender: self.me,
            incarnation: self.incarnation,
            to,
            counter: *counter,
        };
        self.codec.encode_into(&env, body, out)
    }

    /// One sealed frame; see [`PeerSeal::seal_into`].
    ///
    /// # Errors
    /// As [`PeerSeal::seal_into`].
    pub fn seal(
        &mut self,
        to: Option<Addressee>,
        body: &PeerBody,
        channel: Channel,
    ) -> Result<Vec<u8>, EncodeError> {
        let mut out = Vec::new();
        self.seal_into(to, body, channel, &mut out)?;
        Ok(out)
    }

    /// Authenticates, decrypts and checks one whole frame (the bytes of exactly one frame).
    /// The envelope is checked before the body is decrypted.
    ///
    /// # Errors
    /// Why it was refused; nothing changed but the counters.
    pub fn open(&mut self, bytes: &[u8], channel: Channel) -> Result<Opened, Refusal> {
        let result = self.open_inner(bytes, channel);
        self.tally(result)
    }

    fn open_inner(&mut self, bytes: &[u8], channel: Channel) -> Result<Opened, Refusal> {
        if let Some(PeerHeader { envelope, .. }) = self.codec.decode_header(bytes)? {
            self.check_envelope(&envelope, channel)?;
        }
        let frame = self.codec.decode_datagram(bytes)?;
        self.check(frame, channel)
    }

    /// Checks a frame that a reader already authenticated and decrypted with a clone of
    /// [`PeerSeal::codec`].
    ///
    /// # Errors
    /// Why it was refused; nothing changed but the counters.
    pub fn admit(&mut self, frame: PeerFrame, channel: Channel) -> Result<Opened, Refusal> {
        let result =
            self.check_envelope(&frame.envelope, channel).and_then(|()| self.check(frame, channel));
        self.tally(result)
    }

    fn tally(&mut self, result: Result<Opened, Refusal>) -> Result<Opened, Refusal> {
        match &result {
            Ok(_) => self.stats.accepted += 1,
            Err(r) => self.stats.count(r),
        }
        result
    }

    /// Everything that needs only the envelope.
    fn check_envelope(&self, env: &Envelope, channel: Channel) -> Result<(), Refusal> {
        if env.sender == self.me {
            return Err(Refusal::FromSelf);
        }
        if (env.counter & STREAM_BIT != 0) != (channel == Channel::Stream) {
            return Err(Refusal::WrongChannel);
        }
        if let Some(to) = env.to {
            if to.node != self.me {
                return Err(Refusal::NotForMe { to: to.node });
            }
            if to.incarnation != self.incarnation {
                return Err(Refusal::StaleReceiver {
                    sender: env.sender,
                    sender_incarnation: env.incarnation,
                    got: to.incarnation,
                    current: self.incarnation,
                });
            }
        }
        if let (Some(got), Some(mine)) = (env.instance, self.instance) {
            if got != mine {
                return Err(Refusal::OtherInstance { got, mine });
            }
        }
        Ok(())
    }

    /// The body rules, the replay window, and instance adoption.
    fn check(&mut self, frame: PeerFrame, channel: Channel) -> Result<Opened, Refusal> {
        let env = frame.envelope;
        let discovery = matches!(frame.body, PeerBody::Discovery(_));
        if env.to.is_none() && !discovery {
            return Err(Refusal::Unaddressed);
        }
        if env.instance.is_none() && !discovery {
            return Err(Refusal::NoInstance);
        }
        let key = (env.sender, channel);
        if !self.windows.contains_key(&key) && self.windows.len() >= MAX_WINDOWS {
            // Only key holders get windows, so this takes over a thousand authentic senders.
            self.windows.clear();
        }
        self.windows.entry(key).or_default().check(env.incarnation, env.counter)?;
        let adopted = match (self.instance, env.instance, env.to) {
            (None, Some(i), Some(_)) => {
                self.instance = Some(i);
                Some(i)
            }
            _ => None,
        };
        Ok(Opened { frame, adopted })
    }
}

#[cfg(test)]
#[path = "seal_tests.rs"]
mod tests;

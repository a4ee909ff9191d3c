//! Identifier newtypes.
//!
//! Every identifier that crosses the wire is its own type, so a `Seq` can never be passed where
//! a `Term` is expected. All of them are plain `Copy` data with a total order.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub struct $name(pub Uuid);

        impl $name {
            /// Wraps raw UUID bytes (used by tests and by callers that bring their own entropy).
            pub const fn from_bytes(bytes: [u8; 16]) -> Self {
                Self(Uuid::from_bytes(bytes))
            }

            /// The 16 raw bytes, big-endian as in the UUID text form.
            pub const fn as_bytes(&self) -> &[u8; 16] {
                self.0.as_bytes()
            }

            /// A fresh random identifier from the operating system's generator.
            ///
            /// Only binaries call this; sans-IO cores receive identifiers as inputs.
            #[allow(clippy::disallowed_methods, reason = "the one place ids are made")]
            pub fn random() -> Self {
                Self(Uuid::new_v4())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($prefix, "{}"), self.short())
            }
        }

        #[cfg(any(test, feature = "proptest"))]
        impl proptest::arbitrary::Arbitrary for $name {
            type Parameters = ();
            type Strategy = proptest::strategy::Map<
                proptest::arbitrary::StrategyFor<[u8; 16]>,
                fn([u8; 16]) -> Self,
            >;
            fn arbitrary_with((): ()) -> Self::Strategy {
                use proptest::strategy::Strategy;
                proptest::arbitrary::any::<[u8; 16]>().prop_map(Self::from_bytes)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }

        impl $name {
            /// The first eight hex digits: enough to tell members apart in logs.
            pub fn short(&self) -> String {
                let mut s = self.0.simple().to_string();
                s.truncate(8);
                s
            }
        }
    };
}

uuid_id!(
    /// A server's identity, generated once and persisted in its data directory.
    NodeId,
    "node:"
);
uuid_id!(
    /// A client session's identity; with [`RequestNo`] it makes every request unique.
    ClientId,
    "client:"
);
uuid_id!(
    /// The identity of a cluster, derived from its name with [`ClusterId::from_name`].
    ClusterId,
    "cluster:"
);

uuid_id!(
    /// One cluster instance: chosen at random when a cluster is bootstrapped, persisted by
    /// every member, and bound into every peer frame, so two clusters that share a name and a
    /// key (a founder re-bootstrapped on a wiped disk) refuse each other's frames.
    InstanceId,
    "instance:"
);

impl ClusterId {
    /// Derives the cluster id from a human-readable cluster name (first 16 bytes of SHA-256).
    ///
    /// Two clusters with different names on one LAN ignore each other's frames.
    pub fn from_name(name: &str) -> Self {
        let digest = Sha256::digest(name.as_bytes());
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest[..16]);
        Self::from_bytes(bytes)
    }
}

macro_rules! counter_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(
            Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
        )]
        #[cfg_attr(any(test, feature = "proptest"), derive(proptest_derive::Arbitrary))]
        pub struct $name(pub u64);

        impl $name {
            /// The smallest value.
            pub const ZERO: Self = Self(0);

            /// The next value, or `None` at `u64::MAX`.
            pub const fn checked_next(self) -> Option<Self> {
                match self.0.checked_add(1) {
                    Some(v) => Some(Self(v)),
                    None => None,
                }
            }

            /// The next value, saturating at `u64::MAX`.
            pub const fn next(self) -> Self {
                Self(self.0.saturating_add(1))
            }

            /// The previous value, saturating at zero.
            pub const fn prev(self) -> Self {
                Self(self.0.saturating_sub(1))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($prefix, "{}"), self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl FromStr for $name {
            type Err = std::num::ParseIntError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                s.parse().map(Self)
            }
        }
    };
}

counter_id!(
    /// A per-boot counter of one node: a restart increments it, so the new process replaces
    /// its old self in every member table instead of appearing twice.
    Incarnation,
    "inc:"
);
counter_id!(
    /// An election term (view number). Terms only grow.
    Term,
    "term:"
);
counter_id!(
    /// A position in the replicated log, assigned by the sequencer. The first entry is `Seq(1)`;
    /// `Seq(0)` means "nothing".
    Seq,
    "seq:"
);
counter_id!(
    /// A client's request counter; `(ClientId, RequestNo)` identifies a request exactly once.
    RequestNo,
    "req:"
);
counter_id!(
    /// An auction's number, assigned deterministically by the state machine.
    AuctionId,
    "auction:"
);

/// Sequencer time: milliseconds since the Unix epoch, stamped by the leader on each log entry.
///
/// The replicated state machine reads time only from here, never from a local clock.
#[cfg_attr(any(test, feature = "proptest"), derive(proptest_derive::Arbitrary))]
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// This timestamp plus a duration, saturating.
    pub fn saturating_add(self, d: std::time::Duration) -> Self {
        let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        Self(self.0.saturating_add(ms))
    }

    /// The time from `earlier` to `self`, zero if `earlier` is later.
    pub fn saturating_since(self, earlier: Self) -> std::time::Duration {
        std::time::Duration::from_millis(self.0.saturating_sub(earlier.0))
    }
}

/// A wall-clock reading and the monotonic instant it was taken at (the one shape every core
/// keeps its last `handle_wall_clock` in): the wall clock at a later instant is the reading
/// plus the monotonic time since, so a wall clock that jumps between readings moves nothing
/// until the next reading.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WallAnchor {
    /// The wall clock read.
    pub wall: Timestamp,
    /// When it was read.
    pub at: std::time::Instant,
}

impl WallAnchor {
    /// The wall clock at `now` by this reading (the reading itself if `now` is earlier).
    pub fn wall_at(&self, now: std::time::Instant) -> Timestamp {
        self.wall.saturating_add(now.saturating_duration_since(self.at))
    }

    /// The monotonic instant at which the wall clock reaches `wall` by this reading (`at` if
    /// it already has).
    pub fn instant_of(&self, wall: Timestamp) -> std::time::Instant {
        self.at + wall.saturating_since(self.wall)
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "t:{}ms", self.0)
    }
}

/// A log position `(term, seq)`: the term of the entry at `seq`. Ordered by term, then seq, which
/// is the "more up to date" order of the election's candidate rule.
#[cfg_attr(any(test, feature = "proptest"), derive(proptest_derive::Arbitrary))]
#[derive(
    Clone, Copy, Default, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct LogPosition {
    /// Term of the last entry.
    pub term: Term,
    /// Sequence number of the last entry.
    pub seq: Seq,
}

/// Socket addresses as they survive the wire: serde carries the IP and port, not an IPv6
/// flow label or scope id (host-local values that mean nothing to the receiver).
#[cfg(any(test, feature = "proptest"))]
pub fn arb_socket_addr() -> impl proptest::strategy::Strategy<Value = std::net::SocketAddr> {
    use proptest::prelude::*;
    prop_oneof![
        (any::<[u8; 4]>(), any::<u16>())
            .prop_map(|(ip, port)| std::net::SocketAddr::from((ip, port))),
        (any::<[u8; 16]>(), any::<u16>())
            .prop_map(|(ip, port)| std::net::SocketAddr::from((ip, port))),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_id_is_stable_and_name_dependent() {
        assert_eq!(ClusterId::from_name("a"), ClusterId::from_name("a"));
        assert_ne!(ClusterId::from_name("a"), ClusterId::from_name("b"));
    }

    #[test]
    fn counters_saturate() {
        assert_eq!(Seq(u64::MAX).checked_next(), None);
        assert_eq!(Seq(u64::MAX).next(), Seq(u64::MAX));
        assert_eq!(Seq(0).prev(), Seq(0));
        assert_eq!(Term(4).next(), Term(5));
    }

    #[test]
    fn log_positions_order_by_term_first() {
        let a = LogPosition { term: Term(2), seq: Seq(1) };
        let b = LogPosition { term: Term(1), seq: Seq(100) };
        assert!(a > b);
    }

    #[test]
    fn ids_parse_their_display() {
        let n = NodeId::from_bytes([7; 16]);
        assert_eq!(n.to_string().parse::<NodeId>().unwrap(), n);
        assert_eq!(format!("{n:?}"), "node:07070707");
        assert_eq!("42".parse::<Seq>().unwrap(), Seq(42));
    }
}

//! The attacker: a host on the LAN without the cluster key that captures frames off the
//! simulated network and re-sends copies of them, and junk, to any server.
//!
//! It keeps a bounded sample of what the servers sent (a uniform reservoir over the whole run,
//! so frames from before restarts and wipes stay available, plus the most recent frames, so
//! copies also reach their receiver's same boot) and, from a random stream of its own, now and
//! then injects: one copy to a random server, a copy to the address the frame was first sent
//! to (its receiver, or whoever took that address after a restart or a wipe), a burst of recent
//! frames to one server, one frame to every server, or a garbage frame (random bytes, or a
//! captured frame with one bit flipped). Injected frames travel from the attacker's own
//! address, so partitions between servers never stop them.
//!
//! The receiving [`crate::SimServer`] judges each copy by what the simulation knows of it
//! (never shown to the replica), into the categories of [`AttackStats`].

use std::collections::VecDeque;
use std::net::SocketAddr;

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::server::Wire;

/// Frames kept in the uniform reservoir.
const RESERVOIR: usize = 192;
/// Most recent frames kept.
const RECENT: usize = 64;
/// Largest burst.
const BURST: usize = 16;

/// How the attacker made an injected frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Injected {
    /// An exact copy of a captured frame.
    Copy,
    /// Random bytes, or a captured frame with a bit flipped.
    Garbage,
}

/// Injected frames of one category that receivers refused and accepted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Refused by the receiver's seal.
    pub refused: u64,
    /// Accepted by it.
    pub accepted: u64,
}

impl Tally {
    fn add(&mut self, o: Tally) {
        self.refused += o.refused;
        self.accepted += o.accepted;
    }
}

/// What the attacker and the operator faults achieved in one run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AttackStats {
    /// Frames the attacker sent (some are lost, or reach a crashed server, and are not judged).
    pub injected: u64,
    /// Copies of frames sealed for another node (another member, or the old node id at a
    /// wiped server's address). Accepting one is a violation.
    pub wrong_receiver: Tally,
    /// Copies of frames sealed for an earlier boot of the receiving node. Accepting one is a
    /// violation.
    pub old_incarnation: Tally,
    /// Copies of frames sealed for this very boot. Accepted only if this boot never accepted
    /// the frame before (the original was lost); accepting one twice is a violation.
    pub replay: Tally,
    /// Copies of unaddressed discovery: accepted at most once per receiver boot, as above.
    pub other: Tally,
    /// Garbage and bit-flipped frames. They must be refused by the codec (`Decode`), or on
    /// the envelope before decryption where a flipped bit left an authentic header for
    /// another receiver; accepting one, or any refusal that implies the body decoded, is a
    /// violation.
    pub garbage: Tally,
    /// Genuine frames refused as addressed to an earlier boot of their receiver.
    pub misaddressed: u64,
    /// ...after which the same sender's next addressed frame was accepted (the receiver's
    /// `Discover` told it the new boot).
    pub repaired: u64,
    /// Data directories wiped (and restarted with the original flags).
    pub wipes: u64,
    /// Founders restarted with `--bootstrap` on a wiped disk that refused (found the cluster).
    pub bootstrap_refusals: u64,
}

impl AttackStats {
    /// Adds `o` to these counts.
    pub fn add(&mut self, o: &AttackStats) {
        self.injected += o.injected;
        self.wrong_receiver.add(o.wrong_receiver);
        self.old_incarnation.add(o.old_incarnation);
        self.replay.add(o.replay);
        self.other.add(o.other);
        self.garbage.add(o.garbage);
        self.misaddressed += o.misaddressed;
        self.repaired += o.repaired;
        self.wipes += o.wipes;
        self.bootstrap_refusals += o.bootstrap_refusals;
    }

    /// Injected copies and garbage accepted where they must not be.
    pub fn wrongly_accepted(&self) -> u64 {
        self.wrong_receiver.accepted + self.old_incarnation.accepted + self.garbage.accepted
    }
}

/// The attacker's state: its sample and its random stream.
///
/// Invariants: `reservoir.len() <= RESERVOIR`, `recent.len() <= RECENT`.
#[derive(Debug)]
pub(crate) struct Adversary {
    rng: ChaCha8Rng,
    reservoir: Vec<Wire>,
    recent: VecDeque<Wire>,
    /// Frames offered so far (for the reservoir).
    seen: u64,
}

impl Adversary {
    pub(crate) fn new(rng: ChaCha8Rng) -> Self {
        Self { rng, reservoir: Vec::new(), recent: VecDeque::new(), seen: 0 }
    }

    /// Sees one frame on the network.
    pub(crate) fn capture(&mut self, w: Wire) {
        self.seen += 1;
        if self.reservoir.len() < RESERVOIR {
            self.reservoir.push(w.clone());
        } else {
            let j = self.rng.random_range(0..self.seen);
            if let Some(slot) = usize::try_from(j).ok().and_then(|j| self.reservoir.get_mut(j)) {
                *slot = w.clone();
            }
        }
        if self.recent.len() == RECENT {
            self.recent.pop_front();
        }
        self.recent.push_back(w);
        debug_assert!(self.reservoir.len() <= RESERVOIR && self.recent.len() <= RECENT);
    }

    /// A captured frame: from the whole run or from the most recent ones, half and half.
    fn pick(&mut self) -> Option<Wire> {
        let recent = self.rng.random_bool(0.5) && !self.recent.is_empty();
        if recent {
            let i = self.rng.random_range(0..self.recent.len());
            return self.recent.get(i).cloned();
        }
        if self.reservoir.is_empty() {
            return None;
        }
        let i = self.rng.random_range(0..self.reservoir.len());
        self.reservoir.get(i).cloned()
    }

    fn garbage(&mut self) -> Wire {
        let flip = self.rng.random_bool(0.5);
        if let Some(mut w) = self.pick().filter(|w| flip && !w.bytes.is_empty()) {
            let mut bytes = w.bytes.to_vec();
            let at = self.rng.random_range(0..bytes.len());
            bytes[at] ^= 1 << self.rng.random_range(0..8);
            w.bytes = bytes.into();
            w.meta.injected = Some(Injected::Garbage);
            return w;
        }
        let len = self.rng.random_range(0..160);
        let bytes: Vec<u8> = (0..len).map(|_| self.rng.random()).collect();
        let mut w = self.pick().unwrap_or_else(|| Wire {
            bytes: Vec::new().into(),
            channel: auction_proto::Channel::Datagram,
            meta: crate::server::Meta { id: 0, to: None, dest: None, injected: None },
        });
        w.bytes = bytes.into();
        w.meta.injected = Some(Injected::Garbage);
        w
    }

    /// What to inject this tick, if anything: `(target, frame)` pairs; `targets` are the
    /// servers' addresses.
    pub(crate) fn plan(&mut self, targets: &[SocketAddr]) -> Vec<(SocketAddr, Wire)> {
        if targets.is_empty() || !self.rng.random_bool(0.06) {
            return Vec::new();
        }
        let mut out = Vec::new();
        let any = |rng: &mut ChaCha8Rng| targets[rng.random_range(0..targets.len())];
        match self.rng.random_range(0..20) {
            0..=8 => {
                if let Some(w) = self.pick() {
                    out.push((any(&mut self.rng), w));
                }
            }
            9..=12 => {
                if let Some(w) = self.pick() {
                    let to = w.meta.dest.unwrap_or_else(|| any(&mut self.rng));
                    out.push((to, w));
                }
            }
            13..=14 => {
                let to = any(&mut self.rng);
                let n = self.rng.random_range(2..=BURST).min(self.recent.len());
                let start = self.recent.len() - n;
                out.extend(self.recent.iter().skip(start).map(|w| (to, w.clone())));
            }
            15..=16 => {
                if let Some(w) = self.pick() {
                    out.extend(targets.iter().map(|t| (*t, w.clone())));
                }
            }
            _ => {
                // To the address of the frame flipped, so most get past the envelope checks.
                let w = self.garbage();
                let to = w.meta.dest.unwrap_or_else(|| any(&mut self.rng));
                out.push((to, w));
            }
        }
        for (_, w) in &mut out {
            w.meta.injected.get_or_insert(Injected::Copy);
        }
        out
    }
}

//! Peer authentication: keys derived from the cluster key (HMAC-SHA256 tags, HKDF for the
//! per-sender AEAD keys of peer frames), key ids for rotation, and a replay window over
//! `(incarnation, counter)`.

use std::collections::BTreeMap;
use std::fmt;

use chacha20poly1305::{ChaCha20Poly1305, KeyInit};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::{Incarnation, NodeId};

type HmacSha256 = Hmac<Sha256>;

/// Length of an authentication tag in bytes.
pub const TAG_LEN: usize = 32;

/// Shortest accepted cluster key, in bytes.
pub const MIN_KEY_LEN: usize = 16;

/// Identifies a cluster key without revealing it: the first four bytes of
/// `HMAC-SHA256(key, "auction key id")`. Two different keys almost surely have different ids,
/// so a frame made with an unknown key is told apart from a tampered one.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyId(pub u32);

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "key:{:08x}", self.0)
    }
}

/// A cluster key: a shared secret of at least [`MIN_KEY_LEN`] bytes.
#[derive(Clone)]
pub struct ClusterKey {
    id: KeyId,
    mac: HmacSha256,
    /// HKDF-SHA256 state extracted from the secret once; expanded per sender incarnation.
    hkdf: Hkdf<Sha256>,
    /// The MAC of peer frame headers (a key of its own, derived with HKDF).
    header: HmacSha256,
}

/// Why bytes are not a usable key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Too short to be a secret.
    #[error("a cluster key needs at least {MIN_KEY_LEN} bytes (got {len})")]
    TooShort {
        /// The length given.
        len: usize,
    },
}

impl ClusterKey {
    /// Makes a key from secret bytes.
    pub fn new(secret: &[u8]) -> Result<Self, KeyError> {
        if secret.len() < MIN_KEY_LEN {
            return Err(KeyError::TooShort { len: secret.len() });
        }
        let mac = keyed(secret);
        let mut fp = mac.clone();
        fp.update(b"auction key id");
        let digest = fp.finalize().into_bytes();
        let id = KeyId(u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]));
        let hkdf = Hkdf::<Sha256>::new(Some(b"auction peer frames v2"), secret);
        let mut header_key = [0u8; 32];
        expand(&hkdf, &[b"header mac"], &mut header_key);
        let header = keyed(&header_key);
        Ok(Self { id, mac, hkdf, header })
    }

    /// The AEAD key of the frames `sender` sends in `incarnation`: every sender incarnation
    /// has a key of its own, so frame counters (the nonces) never repeat under one key, not
    /// even across restarts (an incarnation is never reused).
    pub fn frame_cipher(&self, sender: NodeId, incarnation: Incarnation) -> ChaCha20Poly1305 {
        let mut key = [0u8; 32];
        expand(
            &self.hkdf,
            &[b"frame key", sender.as_bytes(), &incarnation.0.to_be_bytes()],
            &mut key,
        );
        <ChaCha20Poly1305 as KeyInit>::new(&key.into())
    }

    /// The 16-byte tag of a peer frame header, checked before its body is read.
    pub fn header_tag(&self, header: &[u8]) -> [u8; HEADER_TAG_LEN] {
        let mut mac = self.header.clone();
        mac.update(header);
        let full = mac.finalize().into_bytes();
        let mut tag = [0u8; HEADER_TAG_LEN];
        tag.copy_from_slice(&full[..HEADER_TAG_LEN]);
        tag
    }

    /// Whether `tag` is the header tag of `header`, compared in constant time.
    pub fn verify_header(&self, header: &[u8], tag: &[u8]) -> bool {
        let mut mac = self.header.clone();
        mac.update(header);
        mac.verify_truncated_left(tag).is_ok() && tag.len() == HEADER_TAG_LEN
    }

    /// The key's id, sent in every frame.
    pub fn id(&self) -> KeyId {
        self.id
    }

    /// The tag of `bytes`.
    pub fn tag(&self, bytes: &[u8]) -> [u8; TAG_LEN] {
        let mut mac = self.mac.clone();
        mac.update(bytes);
        mac.finalize().into_bytes().into()
    }

    /// Whether `tag` is the tag of `bytes`, compared in constant time.
    pub fn verify(&self, bytes: &[u8], tag: &[u8]) -> bool {
        let mut mac = self.mac.clone();
        mac.update(bytes);
        mac.verify_slice(tag).is_ok()
    }
}

/// Length of a peer frame header's tag in bytes (HMAC-SHA256 truncated to 128 bits).
pub const HEADER_TAG_LEN: usize = 16;

fn expand(hkdf: &Hkdf<Sha256>, info: &[&[u8]], out: &mut [u8; 32]) {
    // 32 bytes is far below HKDF-SHA256's limit of 8160; `expand_multi_info` cannot fail.
    if hkdf.expand_multi_info(info, out).is_err() {
        unreachable!("HKDF-SHA256 expands 32 bytes");
    }
}

fn keyed(secret: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length; `new_from_slice` cannot fail for it.
    match <HmacSha256 as Mac>::new_from_slice(secret) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC accepts keys of every length"),
    }
}

impl fmt::Debug for ClusterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterKey").field("id", &self.id).finish_non_exhaustive()
    }
}

/// The keys a node accepts, and the one it signs with.
///
/// Rotation: add the new key to every node's ring (accepted, not yet used), then make it the
/// signing key everywhere, then remove the old one.
#[derive(Clone, Debug)]
pub struct Keyring {
    signing: ClusterKey,
    accepted: BTreeMap<KeyId, ClusterKey>,
}

impl Keyring {
    /// A ring with one key, used for signing and accepted.
    pub fn new(signing: ClusterKey) -> Self {
        let mut accepted = BTreeMap::new();
        accepted.insert(signing.id(), signing.clone());
        Self { signing, accepted }
    }

    /// Also accept frames made with `key`.
    pub fn accept(&mut self, key: ClusterKey) {
        self.accepted.insert(key.id(), key);
    }

    /// Sign with `key` from now on (it is accepted too).
    pub fn sign_with(&mut self, key: ClusterKey) {
        self.accept(key.clone());
        self.signing = key;
    }

    /// Stop accepting `id`. The signing key cannot be removed; returns whether a key went.
    pub fn remove(&mut self, id: KeyId) -> bool {
        if id == self.signing.id() {
            return false;
        }
        self.accepted.remove(&id).is_some()
    }

    /// The key used for outgoing frames.
    pub fn signing(&self) -> &ClusterKey {
        &self.signing
    }

    /// The accepted key with this id.
    pub fn lookup(&self, id: KeyId) -> Option<&ClusterKey> {
        self.accepted.get(&id)
    }
}

/// Replay protection for one sender: accepts each `(incarnation, counter)` at most once.
///
/// Frames of an older incarnation are refused; a newer incarnation resets the window. Within
/// an incarnation it keeps the highest counter and a 64-frame bitmap below it (as IPsec does),
/// so reordering within 64 frames is tolerated and anything older is refused.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReplayWindow {
    incarnation: Incarnation,
    highest: u64,
    /// Bit `i` set: counter `highest - i` was seen.
    seen: u64,
    started: bool,
}

/// Why a frame was refused by a [`ReplayWindow`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    /// The frame comes from an older boot of the sender.
    #[error("frame from an old incarnation {got:?} (current {current:?})")]
    OldIncarnation {
        /// The frame's incarnation.
        got: Incarnation,
        /// The newest seen.
        current: Incarnation,
    },
    /// This counter was already accepted, or is too old to tell.
    #[error("replayed or too old frame counter {counter}")]
    Replayed {
        /// The frame's counter.
        counter: u64,
    },
}

impl ReplayWindow {
    /// Width of the reordering window in frames.
    pub const WIDTH: u64 = 64;

    /// Accepts `(incarnation, counter)` once; on error the window is unchanged.
    pub fn check(&mut self, incarnation: Incarnation, counter: u64) -> Result<(), ReplayError> {
        if !self.started || incarnation > self.incarnation {
            *self = Self { incarnation, highest: counter, seen: 1, started: true };
            return Ok(());
        }
        if incarnation < self.incarnation {
            return Err(ReplayError::OldIncarnation {
                got: incarnation,
                current: self.incarnation,
            });
        }
        if counter > self.highest {
            let shift = counter - self.highest;
            self.seen = if shift >= Self::WIDTH { 0 } else { self.seen << shift };
            self.seen |= 1;
            self.highest = counter;
            return Ok(());
        }
        let back = self.highest - counter;
        if back >= Self::WIDTH || self.seen & (1 << back) != 0 {
            return Err(ReplayError::Replayed { counter });
        }
        self.seen |= 1 << back;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> ClusterKey {
        ClusterKey::new(&[b; 32]).unwrap()
    }

    #[test]
    fn short_keys_are_refused() {
        assert_eq!(ClusterKey::new(b"short").unwrap_err(), KeyError::TooShort { len: 5 });
    }

    #[test]
    fn tags_verify_and_keys_differ() {
        let (a, b) = (key(1), key(2));
        assert_ne!(a.id(), b.id());
        let tag = a.tag(b"hello");
        assert!(a.verify(b"hello", &tag));
        assert!(!a.verify(b"hellO", &tag));
        assert!(!b.verify(b"hello", &tag));
        assert!(!a.verify(b"hello", &tag[..31]));
    }

    #[test]
    fn keyring_rotation() {
        let mut ring = Keyring::new(key(1));
        ring.accept(key(2));
        assert!(ring.lookup(key(2).id()).is_some());
        ring.sign_with(key(2));
        assert_eq!(ring.signing().id(), key(2).id());
        assert!(ring.remove(key(1).id()));
        assert!(!ring.remove(key(2).id()), "the signing key stays");
        assert!(ring.lookup(key(1).id()).is_none());
    }

    #[test]
    fn replay_window_accepts_each_counter_once() {
        let mut w = ReplayWindow::default();
        let i = Incarnation(3);
        assert_eq!(w.check(i, 10), Ok(()));
        assert_eq!(w.check(i, 10), Err(ReplayError::Replayed { counter: 10 }));
        assert_eq!(w.check(i, 12), Ok(()));
        assert_eq!(w.check(i, 11), Ok(()), "reordered within the window");
        assert_eq!(w.check(i, 11), Err(ReplayError::Replayed { counter: 11 }));
        assert_eq!(w.check(i, 200), Ok(()));
        assert_eq!(w.check(i, 100), Err(ReplayError::Replayed { counter: 100 }), "too old");
        assert_eq!(
            w.check(Incarnation(2), 500),
            Err(ReplayError::OldIncarnation { got: Incarnation(2), current: i })
        );
        assert_eq!(w.check(Incarnation(4), 0), Ok(()), "a restart resets the window");
        assert_eq!(w.check(Incarnation(4), 0), Err(ReplayError::Replayed { counter: 0 }));
    }
}

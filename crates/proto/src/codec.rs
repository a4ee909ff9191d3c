//! Framing: magic, version, length and postcard payload; HMAC-authenticated peer frames.
//!
//! Client frame (8-byte header):
//!
//! ```text
//! 0..2  magic "AC"    2  version    3  kind (1 = to server, 2 = to client)
//! 4..8  payload length, u32 big-endian        8..  postcard payload
//! ```
//!
//! Peer frame (116-byte header, sealed body, 16-byte body tag):
//!
//! ```text
//! 0..2    magic "AP"   2  version    3  kind (3 = peer)
//! 4..8    body length, u32 big-endian (without its tag)
//! 8..24   cluster id (from the cluster name)
//! 24..40  cluster instance id (zero: the sender has not joined an instance yet)
//! 40..44  key id       44..60  sender node id      60..68  sender incarnation, u64 BE
//! 68..84  receiver node id (zero: unaddressed discovery)   84..92  receiver incarnation
//! 92..100 sender's frame counter, u64 BE
//! 100..116 header tag: HMAC-SHA256 (header key) over bytes 0..100, first 16 bytes
//! 116..116+len  postcard body, encrypted with ChaCha20-Poly1305
//!               (key: HKDF of the cluster key, sender node id and incarnation;
//!                nonce: the counter; associated data: bytes 0..116)
//! then the 16-byte Poly1305 tag
//! ```
//!
//! Every check that needs only the header (magic, version, kind, length limit, cluster, key
//! id, header tag) runs before anything else, so a stream reader can refuse a forged header
//! before buffering the body it announces; the body is decrypted and authenticated before it
//! is decoded. Nothing is allocated for a frame that fails these checks, and a payload is never
//! longer than the configured limit. What the receiver then checks of the envelope (receiver,
//! instance, replays) is [`crate::seal::PeerSeal`]'s job.

use serde::Serialize;
use serde::de::DeserializeOwned;

use chacha20poly1305::ChaCha20Poly1305;
use chacha20poly1305::aead::AeadInPlace;

use crate::auth::{HEADER_TAG_LEN, KeyId, Keyring};
use crate::msg::client::{ClientToServer, ServerToClient};
use crate::msg::peer::PeerBody;
use crate::{ClusterId, Incarnation, InstanceId, NodeId};

/// The protocol version this crate speaks.
pub const PROTOCOL_VERSION: u8 = 2;
/// Magic of client frames.
pub const CLIENT_MAGIC: [u8; 2] = *b"AC";
/// Magic of peer frames.
pub const PEER_MAGIC: [u8; 2] = *b"AP";
/// Length of a client frame header.
pub const CLIENT_HEADER_LEN: usize = 8;
/// Length of a peer frame header, its tag included.
pub const PEER_HEADER_LEN: usize = 116;
/// Length of the tag after a peer frame's sealed body.
pub const PEER_TAG_LEN: usize = 16;
/// Where a peer frame header's tag starts.
const HEADER_TAG_AT: usize = PEER_HEADER_LEN - HEADER_TAG_LEN;
/// Default payload limit of client frames (64 KiB).
pub const DEFAULT_MAX_CLIENT_PAYLOAD: usize = 64 * 1024;
/// Default payload limit of peer frames (4 MiB; ordering batches and snapshot chunks).
pub const DEFAULT_MAX_PEER_PAYLOAD: usize = 4 * 1024 * 1024;

const KIND_TO_SERVER: u8 = 1;
const KIND_TO_CLIENT: u8 = 2;
const KIND_PEER: u8 = 3;

/// Why bytes are not a valid frame. Decoding never changes any state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Fewer bytes than the header or the declared length need (datagram form).
    #[error("truncated frame: {got} bytes, {needed} needed")]
    Truncated {
        /// Bytes needed.
        needed: usize,
        /// Bytes present.
        got: usize,
    },
    /// Not a frame of this protocol.
    #[error("bad magic {got:02x?}")]
    BadMagic {
        /// The first two bytes.
        got: [u8; 2],
    },
    /// A protocol version this build does not speak.
    #[error("unsupported protocol version {got} (this build speaks {PROTOCOL_VERSION})")]
    UnsupportedVersion {
        /// The frame's version.
        got: u8,
    },
    /// A frame meant for the other direction or another channel.
    #[error("unexpected frame kind {got} (expected {expected})")]
    WrongKind {
        /// The frame's kind byte.
        got: u8,
        /// The kind expected here.
        expected: u8,
    },
    /// The declared payload is larger than the limit.
    #[error("frame payload of {len} bytes exceeds the limit of {max}")]
    Oversize {
        /// Declared length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Bytes after the frame (datagram form), or after the payload's value.
    #[error("{extra} unexpected trailing bytes")]
    TrailingBytes {
        /// How many.
        extra: usize,
    },
    /// A peer frame of another cluster.
    #[error("frame of another cluster ({got})")]
    WrongCluster {
        /// The frame's cluster.
        got: ClusterId,
    },
    /// A peer frame made with a key this node does not hold.
    #[error("frame signed with unknown key {key:?}")]
    UnknownKey {
        /// The frame's key id.
        key: KeyId,
    },
    /// The authentication tag does not match: tampered or forged.
    #[error("bad authentication tag")]
    BadTag,
    /// A receiver incarnation without a receiver node.
    #[error("malformed receiver in the envelope")]
    BadAddressee,
    /// The payload is not a valid message.
    #[error("malformed payload: {0}")]
    Malformed(#[source] postcard::Error),
}

/// Why a message could not be framed. Nothing was written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// The encoded message is larger than the frame limit.
    #[error("message of {len} bytes exceeds the frame limit of {max}")]
    Oversize {
        /// Encoded length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Serialization failed.
    #[error("cannot encode message: {0}")]
    Serialize(#[source] postcard::Error),
    /// The AEAD refused to seal (a body beyond its length limit; not reachable below the
    /// frame limit).
    #[error("cannot seal the frame")]
    Seal,
}

/// A message type that travels in client frames, in one direction.
pub trait ClientFrame: Serialize + DeserializeOwned + sealed::Sealed {
    /// The frame kind byte of this direction.
    const KIND: u8;
}

impl ClientFrame for ClientToServer {
    const KIND: u8 = KIND_TO_SERVER;
}

impl ClientFrame for ServerToClient {
    const KIND: u8 = KIND_TO_CLIENT;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for crate::msg::client::ClientToServer {}
    impl Sealed for crate::msg::client::ServerToClient {}
}

/// Encodes and decodes client frames, with a payload limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientCodec {
    max_payload: usize,
}

impl Default for ClientCodec {
    fn default() -> Self {
        Self { max_payload: DEFAULT_MAX_CLIENT_PAYLOAD }
    }
}

impl ClientCodec {
    /// A codec with a custom payload limit (at most `u32::MAX`).
    pub fn with_max_payload(max_payload: usize) -> Self {
        Self { max_payload: max_payload.min(u32::MAX as usize) }
    }

    /// The payload limit.
    pub fn max_payload(&self) -> usize {
        self.max_payload
    }

    /// Appends one frame holding `msg` to `out`; on error `out` is unchanged.
    pub fn encode_into<M: ClientFrame>(
        &self,
        msg: &M,
        out: &mut Vec<u8>,
    ) -> Result<(), EncodeError> {
        let start = out.len();
        out.extend_from_slice(&header(CLIENT_MAGIC, M::KIND));
        finish_payload(out, start, CLIENT_HEADER_LEN, msg, self.max_payload)
    }

    /// One frame holding `msg`.
    pub fn encode<M: ClientFrame>(&self, msg: &M) -> Result<Vec<u8>, EncodeError> {
        let mut out = Vec::new();
        self.encode_into(msg, &mut out)?;
        Ok(out)
    }

    /// Stream form: `Ok(None)` until `buf` holds a whole frame, then the message and the
    /// number of bytes it took. A bad header is reported as soon as its 8 bytes are present.
    pub fn decode_stream<M: ClientFrame>(
        &self,
        buf: &[u8],
    ) -> Result<Option<(M, usize)>, DecodeError> {
        let Some(len) =
            check_header(buf, CLIENT_MAGIC, M::KIND, CLIENT_HEADER_LEN, self.max_payload)?
        else {
            return Ok(None);
        };
        let total = CLIENT_HEADER_LEN + len;
        if buf.len() < total {
            return Ok(None);
        }
        let msg = decode_payload(&buf[CLIENT_HEADER_LEN..total])?;
        Ok(Some((msg, total)))
    }

    /// Datagram form: `bytes` must be exactly one frame.
    pub fn decode_datagram<M: ClientFrame>(&self, bytes: &[u8]) -> Result<M, DecodeError> {
        let (msg, used) =
            self.decode_stream(bytes)?.ok_or_else(|| truncated(bytes, CLIENT_HEADER_LEN, 0))?;
        exact(bytes, used)?;
        Ok(msg)
    }
}

/// Who a unicast peer frame is for: a node, in one incarnation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Addressee {
    /// The receiver.
    pub node: NodeId,
    /// The receiver's boot the sender knows of.
    pub incarnation: Incarnation,
}

/// The authenticated fields of a peer frame, outside the payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Envelope {
    /// The sender's cluster (derived from the cluster name).
    pub cluster: ClusterId,
    /// The cluster instance the sender belongs to; `None` before it has joined one.
    pub instance: Option<InstanceId>,
    /// The key that sealed the frame.
    pub key: KeyId,
    /// The sender.
    pub sender: NodeId,
    /// The sender's boot.
    pub incarnation: Incarnation,
    /// The receiver, or `None` for discovery sent to a broadcast or `--join` address, whose
    /// receiver is not known yet.
    pub to: Option<Addressee>,
    /// The sender's frame counter within this incarnation (replay protection; the nonce).
    pub counter: u64,
}

/// A peer frame's header, authenticated by its own tag before the body is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerHeader {
    /// The envelope.
    pub envelope: Envelope,
    /// Length of the whole frame: header, sealed body and body tag.
    pub frame_len: usize,
}

/// A decoded and authenticated peer frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerFrame {
    /// Who sent it, authenticated.
    pub envelope: Envelope,
    /// The message.
    pub body: PeerBody,
}

/// Most per-sender AEAD keys a codec keeps derived (one per sender incarnation it hears).
const CIPHER_CACHE: usize = 16;

/// Encodes and decodes sealed peer frames of one cluster: the body is encrypted with
/// ChaCha20-Poly1305 under a key of the sender's incarnation, the header is the associated
/// data, and the header has a tag of its own so a stream reader can refuse a forged header
/// before buffering the body it announces.
#[derive(Clone)]
pub struct PeerCodec {
    cluster: ClusterId,
    keys: Keyring,
    max_payload: usize,
    /// Derived frame keys, most recently used last.
    ciphers: Vec<((KeyId, NodeId, Incarnation), ChaCha20Poly1305)>,
}

impl std::fmt::Debug for PeerCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerCodec")
            .field("cluster", &self.cluster)
            .field("keys", &self.keys)
            .field("max_payload", &self.max_payload)
            .finish_non_exhaustive()
    }
}

impl PeerCodec {
    /// A codec for `cluster` with the default payload limit.
    pub fn new(cluster: ClusterId, keys: Keyring) -> Self {
        Self { cluster, keys, max_payload: DEFAULT_MAX_PEER_PAYLOAD, ciphers: Vec::new() }
    }

    /// The same codec with another payload limit (at most `u32::MAX`).
    pub fn with_max_payload(mut self, max_payload: usize) -> Self {
        self.max_payload = max_payload.min(u32::MAX as usize);
        self
    }

    /// The cluster.
    pub fn cluster(&self) -> ClusterId {
        self.cluster
    }

    /// The payload limit.
    pub fn max_payload(&self) -> usize {
        self.max_payload
    }

    /// The length of the largest frame this codec accepts (header, body and tag).
    pub fn max_frame_len(&self) -> usize {
        PEER_HEADER_LEN + self.max_payload + PEER_TAG_LEN
    }

    /// The keys, for rotation.
    pub fn keys_mut(&mut self) -> &mut Keyring {
        self.ciphers.clear();
        &mut self.keys
    }

    /// Appends one sealed frame to `out`; on error `out` is unchanged. The envelope's
    /// `cluster` and `key` are ignored: the frame carries this codec's cluster and signing key.
    pub fn encode_into(
        &mut self,
        env: &Envelope,
        body: &PeerBody,
        out: &mut Vec<u8>,
    ) -> Result<(), EncodeError> {
        let start = out.len();
        let env = self.start_frame(env, out);
        finish_payload(out, start, PEER_HEADER_LEN, body, self.max_payload)?;
        self.seal_frame(&env, start, out)
    }

    /// Seals `payload` bytes as they are, not a serialized message, with no length limit:
    /// for fuzzing and tests of the decoders only.
    #[doc(hidden)]
    pub fn seal_raw(&mut self, env: &Envelope, payload: &[u8]) -> Result<Vec<u8>, EncodeError> {
        let mut out = Vec::new();
        let env = self.start_frame(env, &mut out);
        let len = u32::try_from(payload.len())
            .map_err(|_| EncodeError::Oversize { len: payload.len(), max: u32::MAX as usize })?;
        out[4..8].copy_from_slice(&len.to_be_bytes());
        out.extend_from_slice(payload);
        self.seal_frame(&env, 0, &mut out)?;
        Ok(out)
    }

    /// Writes the header of a frame (its tag still zero) and returns the envelope as sent.
    fn start_frame(&self, env: &Envelope, out: &mut Vec<u8>) -> Envelope {
        let env = Envelope { cluster: self.cluster, key: self.keys.signing().id(), ..*env };
        out.extend_from_slice(&header(PEER_MAGIC, KIND_PEER));
        write_envelope(&env, out);
        out.extend_from_slice(&[0u8; HEADER_TAG_LEN]);
        env
    }

    /// Tags the header of the frame at `start` and encrypts its body in place; on error the
    /// frame is removed from `out`.
    fn seal_frame(
        &mut self,
        env: &Envelope,
        start: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), EncodeError> {
        let key_id = env.key;
        let tag = self.keys.signing().header_tag(&out[start..start + HEADER_TAG_AT]);
        out[start + HEADER_TAG_AT..start + PEER_HEADER_LEN].copy_from_slice(&tag);
        let cipher = self.cipher(key_id, env.sender, env.incarnation);
        let (head, payload) = out[start..].split_at_mut(PEER_HEADER_LEN);
        match cipher.encrypt_in_place_detached(&nonce(env.counter), head, payload) {
            Ok(tag) => {
                out.extend_from_slice(&tag);
                Ok(())
            }
            Err(_) => {
                out.truncate(start);
                Err(EncodeError::Seal)
            }
        }
    }

    /// One sealed frame.
    pub fn encode(&mut self, env: &Envelope, body: &PeerBody) -> Result<Vec<u8>, EncodeError> {
        let mut out = Vec::new();
        self.encode_into(env, body, &mut out)?;
        Ok(out)
    }

    /// Checks a frame's header as soon as it is complete: magic, version, kind, length limit,
    /// cluster, key id and the header's tag. `Ok(None)` until `buf` holds the whole header.
    /// A stream reader calls this before buffering the body the header announces.
    pub fn decode_header(&self, buf: &[u8]) -> Result<Option<PeerHeader>, DecodeError> {
        let Some(len) =
            check_header(buf, PEER_MAGIC, KIND_PEER, PEER_HEADER_LEN, self.max_payload)?
        else {
            return Ok(None);
        };
        let envelope = read_envelope(buf)?;
        if envelope.cluster != self.cluster {
            return Err(DecodeError::WrongCluster { got: envelope.cluster });
        }
        let key =
            self.keys.lookup(envelope.key).ok_or(DecodeError::UnknownKey { key: envelope.key })?;
        if !key.verify_header(&buf[..HEADER_TAG_AT], &buf[HEADER_TAG_AT..PEER_HEADER_LEN]) {
            return Err(DecodeError::BadTag);
        }
        Ok(Some(PeerHeader { envelope, frame_len: PEER_HEADER_LEN + len + PEER_TAG_LEN }))
    }

    /// Stream form: `Ok(None)` until `buf` holds a whole frame, then the authenticated and
    /// decrypted frame and the number of bytes it took.
    pub fn decode_stream(&mut self, buf: &[u8]) -> Result<Option<(PeerFrame, usize)>, DecodeError> {
        let Some(PeerHeader { envelope, frame_len }) = self.decode_header(buf)? else {
            return Ok(None);
        };
        if buf.len() < frame_len {
            return Ok(None);
        }
        let sealed_end = frame_len - PEER_TAG_LEN;
        let mut payload = buf[PEER_HEADER_LEN..sealed_end].to_vec();
        let tag = chacha20poly1305::Tag::from_slice(&buf[sealed_end..frame_len]);
        let cipher = self.cipher(envelope.key, envelope.sender, envelope.incarnation);
        cipher
            .decrypt_in_place_detached(
                &nonce(envelope.counter),
                &buf[..PEER_HEADER_LEN],
                &mut payload,
                tag,
            )
            .map_err(|_| DecodeError::BadTag)?;
        let body = decode_payload(&payload)?;
        Ok(Some((PeerFrame { envelope, body }, frame_len)))
    }

    /// Datagram form: `bytes` must be exactly one frame.
    pub fn decode_datagram(&mut self, bytes: &[u8]) -> Result<PeerFrame, DecodeError> {
        let (frame, used) = self
            .decode_stream(bytes)?
            .ok_or_else(|| truncated(bytes, PEER_HEADER_LEN, PEER_TAG_LEN))?;
        exact(bytes, used)?;
        Ok(frame)
    }

    /// The frame key of one sender incarnation, derived once and cached. The key id was
    /// checked by the caller (`decode_header`) or is the signing key's.
    fn cipher(&mut self, key: KeyId, sender: NodeId, inc: Incarnation) -> &ChaCha20Poly1305 {
        let id = (key, sender, inc);
        let found = self.ciphers.iter().position(|(k, _)| *k == id);
        let entry = match found {
            Some(i) => self.ciphers.remove(i),
            None => {
                let ck = self.keys.lookup(key).unwrap_or_else(|| self.keys.signing());
                (id, ck.frame_cipher(sender, inc))
            }
        };
        if self.ciphers.len() >= CIPHER_CACHE {
            self.ciphers.remove(0);
        }
        self.ciphers.push(entry);
        match self.ciphers.last() {
            Some((_, c)) => c,
            None => unreachable!("an entry was just pushed"),
        }
    }
}

/// The AEAD nonce of a frame: its counter, unique within the sender incarnation whose key
/// seals it.
fn nonce(counter: u64) -> chacha20poly1305::Nonce {
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&counter.to_be_bytes());
    n.into()
}

fn write_envelope(env: &Envelope, out: &mut Vec<u8>) {
    out.extend_from_slice(env.cluster.as_bytes());
    out.extend_from_slice(&env.instance.map_or([0u8; 16], |i| *i.as_bytes()));
    out.extend_from_slice(&env.key.0.to_be_bytes());
    out.extend_from_slice(env.sender.as_bytes());
    out.extend_from_slice(&env.incarnation.0.to_be_bytes());
    let (node, inc) = env.to.map_or(([0u8; 16], 0), |a| (*a.node.as_bytes(), a.incarnation.0));
    out.extend_from_slice(&node);
    out.extend_from_slice(&inc.to_be_bytes());
    out.extend_from_slice(&env.counter.to_be_bytes());
}

fn header(magic: [u8; 2], kind: u8) -> [u8; 8] {
    [magic[0], magic[1], PROTOCOL_VERSION, kind, 0, 0, 0, 0]
}

/// Serializes `msg` after a header that starts at `start`, then patches the length field.
fn finish_payload<T: Serialize + ?Sized>(
    out: &mut Vec<u8>,
    start: usize,
    header_len: usize,
    msg: &T,
    max: usize,
) -> Result<(), EncodeError> {
    debug_assert_eq!(out.len(), start + header_len);
    let result = postcard::to_extend(msg, std::mem::take(out));
    let mut buf = match result {
        Ok(buf) => buf,
        Err(e) => return Err(EncodeError::Serialize(e)),
    };
    let len = buf.len() - start - header_len;
    if len > max {
        buf.truncate(start);
        *out = buf;
        return Err(EncodeError::Oversize { len, max });
    }
    let len32 = u32::try_from(len).map_err(|_| EncodeError::Oversize { len, max })?;
    buf[start + 4..start + 8].copy_from_slice(&len32.to_be_bytes());
    *out = buf;
    Ok(())
}

/// Checks the fixed part of a header; `Ok(None)` if fewer than `header_len` bytes are present,
/// otherwise the declared payload length.
fn check_header(
    buf: &[u8],
    magic: [u8; 2],
    kind: u8,
    header_len: usize,
    max: usize,
) -> Result<Option<usize>, DecodeError> {
    // Check what is present as early as possible, so junk is refused at once.
    if buf.len() >= 2 && buf[..2] != magic {
        return Err(DecodeError::BadMagic { got: [buf[0], buf[1]] });
    }
    if buf.len() >= 3 && buf[2] != PROTOCOL_VERSION {
        return Err(DecodeError::UnsupportedVersion { got: buf[2] });
    }
    if buf.len() >= 4 && buf[3] != kind {
        return Err(DecodeError::WrongKind { got: buf[3], expected: kind });
    }
    if buf.len() < header_len {
        return Ok(None);
    }
    let len = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]) as usize;
    if len > max {
        return Err(DecodeError::Oversize { len, max });
    }
    Ok(Some(len))
}

fn read_envelope(buf: &[u8]) -> Result<Envelope, DecodeError> {
    let arr16 = |at: usize| {
        let mut a = [0u8; 16];
        a.copy_from_slice(&buf[at..at + 16]);
        a
    };
    let arr8 = |at: usize| {
        let mut a = [0u8; 8];
        a.copy_from_slice(&buf[at..at + 8]);
        u64::from_be_bytes(a)
    };
    let instance = arr16(24);
    let to_node = arr16(68);
    let to_inc = arr8(84);
    let to = match (to_node == [0u8; 16], to_inc) {
        (true, 0) => None,
        (false, inc) => {
            Some(Addressee { node: NodeId::from_bytes(to_node), incarnation: Incarnation(inc) })
        }
        (true, _) => return Err(DecodeError::BadAddressee),
    };
    Ok(Envelope {
        cluster: ClusterId::from_bytes(arr16(8)),
        instance: (instance != [0u8; 16]).then(|| InstanceId::from_bytes(instance)),
        key: KeyId(u32::from_be_bytes([buf[40], buf[41], buf[42], buf[43]])),
        sender: NodeId::from_bytes(arr16(44)),
        incarnation: Incarnation(arr8(60)),
        to,
        counter: arr8(92),
    })
}

fn decode_payload<T: DeserializeOwned>(payload: &[u8]) -> Result<T, DecodeError> {
    let (value, rest) = postcard::take_from_bytes(payload).map_err(DecodeError::Malformed)?;
    if !rest.is_empty() {
        return Err(DecodeError::TrailingBytes { extra: rest.len() });
    }
    Ok(value)
}

/// The `Truncated` error of a datagram that `decode_stream` found incomplete.
fn truncated(bytes: &[u8], header_len: usize, trailer: usize) -> DecodeError {
    let needed = if bytes.len() < header_len {
        header_len
    } else {
        header_len + u32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]) as usize + trailer
    };
    DecodeError::Truncated { needed, got: bytes.len() }
}

fn exact(bytes: &[u8], used: usize) -> Result<(), DecodeError> {
    if bytes.len() > used {
        return Err(DecodeError::TrailingBytes { extra: bytes.len() - used });
    }
    Ok(())
}

#[cfg(test)]
#[path = "codec_tests.rs"]
mod tests;

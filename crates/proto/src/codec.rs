//! Framing: magic, version, length and postcard payload; HMAC-authenticated peer frames.
//!
//! Client frame (8-byte header):
//!
//! ```text
//! 0..2  magic "AC"    2  version    3  kind (1 = to server, 2 = to client)
//! 4..8  payload length, u32 big-endian        8..  postcard payload
//! ```
//!
//! Peer frame (60-byte header, 32-byte tag):
//!
//! ```text
//! 0..2   magic "AP"   2  version    3  kind (3 = peer)
//! 4..8   payload length, u32 big-endian
//! 8..24  cluster id   24..28 key id  28..44 sender node id
//! 44..52 sender incarnation, u64 BE  52..60 sender's frame counter, u64 BE
//! 60..60+len  postcard payload       then 32-byte HMAC-SHA256 over bytes 0..60+len
//! ```
//!
//! Every check that needs only the header (magic, version, kind, length limit, cluster, key id)
//! runs before anything else; the tag is verified over the bytes as received, before the body
//! is decoded. Nothing is allocated for a frame that fails these checks, and a payload is never
//! longer than the configured limit.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::auth::{KeyId, Keyring, TAG_LEN};
use crate::msg::client::{ClientToServer, ServerToClient};
use crate::msg::peer::PeerBody;
use crate::{ClusterId, Incarnation, NodeId};

/// The protocol version this crate speaks.
pub const PROTOCOL_VERSION: u8 = 1;
/// Magic of client frames.
pub const CLIENT_MAGIC: [u8; 2] = *b"AC";
/// Magic of peer frames.
pub const PEER_MAGIC: [u8; 2] = *b"AP";
/// Length of a client frame header.
pub const CLIENT_HEADER_LEN: usize = 8;
/// Length of a peer frame header.
pub const PEER_HEADER_LEN: usize = 60;
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

/// The authenticated fields of a peer frame, outside the payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Envelope {
    /// The sender's cluster.
    pub cluster: ClusterId,
    /// The key that made the tag.
    pub key: KeyId,
    /// The sender.
    pub sender: NodeId,
    /// The sender's boot.
    pub incarnation: Incarnation,
    /// The sender's frame counter within this incarnation (for replay protection).
    pub counter: u64,
}

/// A decoded and authenticated peer frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerFrame {
    /// Who sent it, authenticated.
    pub envelope: Envelope,
    /// The message.
    pub body: PeerBody,
}

/// Encodes and decodes authenticated peer frames of one cluster.
#[derive(Clone, Debug)]
pub struct PeerCodec {
    cluster: ClusterId,
    keys: Keyring,
    max_payload: usize,
}

impl PeerCodec {
    /// A codec for `cluster` with the default payload limit.
    pub fn new(cluster: ClusterId, keys: Keyring) -> Self {
        Self { cluster, keys, max_payload: DEFAULT_MAX_PEER_PAYLOAD }
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

    /// The keys, for rotation.
    pub fn keys_mut(&mut self) -> &mut Keyring {
        &mut self.keys
    }

    /// Appends one signed frame to `out`; on error `out` is unchanged.
    pub fn encode_into(
        &self,
        sender: NodeId,
        incarnation: Incarnation,
        counter: u64,
        body: &PeerBody,
        out: &mut Vec<u8>,
    ) -> Result<(), EncodeError> {
        let start = out.len();
        let key = self.keys.signing();
        out.extend_from_slice(&header(PEER_MAGIC, KIND_PEER));
        out.extend_from_slice(self.cluster.as_bytes());
        out.extend_from_slice(&key.id().0.to_be_bytes());
        out.extend_from_slice(sender.as_bytes());
        out.extend_from_slice(&incarnation.0.to_be_bytes());
        out.extend_from_slice(&counter.to_be_bytes());
        finish_payload(out, start, PEER_HEADER_LEN, body, self.max_payload)?;
        let tag = key.tag(&out[start..]);
        out.extend_from_slice(&tag);
        Ok(())
    }

    /// One signed frame.
    pub fn encode(
        &self,
        sender: NodeId,
        incarnation: Incarnation,
        counter: u64,
        body: &PeerBody,
    ) -> Result<Vec<u8>, EncodeError> {
        let mut out = Vec::new();
        self.encode_into(sender, incarnation, counter, body, &mut out)?;
        Ok(out)
    }

    /// Stream form: `Ok(None)` until `buf` holds a whole frame, then the authenticated frame
    /// and the number of bytes it took.
    pub fn decode_stream(&self, buf: &[u8]) -> Result<Option<(PeerFrame, usize)>, DecodeError> {
        let Some(len) =
            check_header(buf, PEER_MAGIC, KIND_PEER, PEER_HEADER_LEN, self.max_payload)?
        else {
            return Ok(None);
        };
        let envelope = read_envelope(buf);
        if envelope.cluster != self.cluster {
            return Err(DecodeError::WrongCluster { got: envelope.cluster });
        }
        let key =
            self.keys.lookup(envelope.key).ok_or(DecodeError::UnknownKey { key: envelope.key })?;
        let signed = PEER_HEADER_LEN + len;
        let total = signed + TAG_LEN;
        if buf.len() < total {
            return Ok(None);
        }
        if !key.verify(&buf[..signed], &buf[signed..total]) {
            return Err(DecodeError::BadTag);
        }
        let body = decode_payload(&buf[PEER_HEADER_LEN..signed])?;
        Ok(Some((PeerFrame { envelope, body }, total)))
    }

    /// Datagram form: `bytes` must be exactly one frame.
    pub fn decode_datagram(&self, bytes: &[u8]) -> Result<PeerFrame, DecodeError> {
        let (frame, used) =
            self.decode_stream(bytes)?.ok_or_else(|| truncated(bytes, PEER_HEADER_LEN, TAG_LEN))?;
        exact(bytes, used)?;
        Ok(frame)
    }
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

fn read_envelope(buf: &[u8]) -> Envelope {
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
    Envelope {
        cluster: ClusterId::from_bytes(arr16(8)),
        key: KeyId(u32::from_be_bytes([buf[24], buf[25], buf[26], buf[27]])),
        sender: NodeId::from_bytes(arr16(28)),
        incarnation: Incarnation(arr8(44)),
        counter: arr8(52),
    }
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

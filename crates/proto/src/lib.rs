//! The wire protocol of the replicated auction service.
//!
//! This crate is the bottom layer: identifiers, every message as plain serde data, the frame
//! format, and peer authentication. It does no IO; the `node` crate carries its frames over
//! UDP and TCP.
//!
//! - [`ids`] and [`Amount`]: newtypes so that a `Seq` is never a `Term` and money is never a
//!   float.
//! - [`msg`]: the messages, grouped by audience (discovery, peer, client).
//! - [`codec`]: `magic | version | kind | length | postcard payload`, with separate size limits
//!   for peer and client frames, a datagram form (one frame per UDP packet) and a stream form
//!   (`Ok(None)` until a whole frame is buffered).
//! - [`auth`]: HMAC-SHA256 tags with the cluster key over every peer frame, key ids for
//!   rotation, and a replay window over the sender's `(incarnation, counter)`.
//!
//! Decoding arbitrary bytes returns a [`DecodeError`]; it never panics and never allocates for
//! a frame whose header is refused.
//!
//! ```
//! use auction_proto::{ClientCodec, RequestNo, msg::client::*};
//! let codec = ClientCodec::default();
//! let msg = ClientToServer::Request(Request { no: RequestNo(1), body: RequestBody::Whoami });
//! let bytes = codec.encode(&msg)?;
//! let (back, used) = codec.decode_stream::<ClientToServer>(&bytes)?.expect("whole frame");
//! assert_eq!((back, used), (msg, bytes.len()));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod amount;
pub mod auth;
pub mod codec;
pub mod ids;
pub mod msg;
pub mod seal;

pub use amount::{Amount, ParseAmountError};
pub use auth::{ClusterKey, KeyError, KeyId, Keyring, ReplayError, ReplayWindow};
pub use codec::{
    Addressee, ClientCodec, DecodeError, EncodeError, Envelope, PeerCodec, PeerFrame, PeerHeader,
};
pub use ids::{
    AuctionId, ClientId, ClusterId, Incarnation, InstanceId, LogPosition, NodeId, RequestNo, Seq,
    Term, Timestamp, WallAnchor,
};
pub use seal::{Channel, Opened, PeerSeal, Refusal, SealStats};

//! Every message of the system, as plain serde data, grouped by audience.
//!
//! | module        | audience                     | frame            |
//! |---------------|------------------------------|------------------|
//! | [`discovery`] | servers finding servers      | peer (UDP)       |
//! | [`peer`]      | members: detector, election, ordering | peer (UDP or TCP) |
//! | [`log`]       | the replicated log's content | inside peer messages |
//! | [`client`]    | clients and servers          | client (TCP, UDP for `FindServers`) |
//! | [`auction`]   | auction data used by the others | inside the above |
//! | [`text`]      | which characters stored text and names may hold | (rules, no messages) |
//!
//! Postcard encodes an enum variant by its index, so new variants are added at the end of
//! their enum; any other change to an existing type is a protocol version bump.

pub mod auction;
pub mod client;
pub mod discovery;
pub mod log;
pub mod peer;
pub mod text;

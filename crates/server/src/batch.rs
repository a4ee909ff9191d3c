//! Outbound peer messages: datagrams sealed at once, ordering messages held until
//! [`crate::Server::flush`] and merged meanwhile, then sealed into one stream buffer per peer.

use std::net::SocketAddr;

use auction_proto::msg::peer::{OrderingMsg, PeerBody};
use auction_proto::{Addressee, Channel, PeerSeal};
use tracing::warn;

/// Largest peer datagram sent; bigger frames go on the stream.
pub const MAX_UDP_FRAME: usize = 60 * 1024;
/// Most commands (or entries) one merged `Propose` (or `Order`) carries: each is at most a
/// client frame, 64 KiB, so a merged frame stays below the 4 MiB peer payload limit.
pub const MAX_MERGED_COMMANDS: usize = 32;
/// Most messages held for the stream between flushes (a bound; the driver flushes whenever
/// no input is ready, so it is never reached in practice). Over it, the batch is flushed.
pub(crate) const MAX_HELD: usize = 4096;

/// Stream messages not yet sealed, in send order.
#[derive(Debug, Default)]
pub(crate) struct Batch {
    pending: Vec<(SocketAddr, Option<Addressee>, PeerBody)>,
}

/// Where a message goes, once sealed.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Sealed {
    /// A datagram now.
    Datagram(Vec<u8>),
    /// Held for the stream.
    Held,
    /// Could not be encoded (counted as dropped).
    Dropped,
}

impl Batch {
    /// Seals `body` for `receiver` as a datagram, or holds it for the stream: ordering
    /// traffic always, the rest when too big for a datagram.
    ///
    /// Held, consecutive messages to one peer that say together what they say one after the
    /// other are merged: `Propose`s of one term (the leader sequences the commands in the
    /// same order, and sends one `Order` and stores once for all of them), `Order`s of one
    /// term whose entries follow on (the member takes the entries in order, then the later
    /// commit point, which a leader never lowers in its term), and `Ack`s of one term (the
    /// highest is kept, as the leader keeps the highest it has heard; an ack it does not see
    /// can only hold the commit point back, never move it).
    pub(crate) fn send(
        &mut self,
        seal: &mut PeerSeal,
        to: SocketAddr,
        receiver: Option<Addressee>,
        body: PeerBody,
    ) -> Sealed {
        let stream = matches!(body, PeerBody::Ordering(_));
        if !stream {
            match seal.seal(receiver, &body, Channel::Datagram) {
                Ok(frame) if frame.len() <= MAX_UDP_FRAME => return Sealed::Datagram(frame),
                Ok(_) => {}
                Err(e) => {
                    warn!(error = %e, "cannot encode a peer message; dropped");
                    return Sealed::Dropped;
                }
            }
        }
        let last = self.pending.iter_mut().rev().find(|(dest, _, _)| *dest == to);
        if let Some((_, r, PeerBody::Ordering(prev))) = last {
            if *r == receiver {
                if let PeerBody::Ordering(next) = body {
                    if let Some(next) = merge(prev, next) {
                        self.pending.push((to, receiver, PeerBody::Ordering(next)));
                    }
                    return Sealed::Held;
                }
            }
        }
        self.pending.push((to, receiver, body));
        Sealed::Held
    }

    /// Whether messages wait for [`Batch::flush`].
    pub(crate) fn len(&self) -> usize {
        self.pending.len()
    }

    /// Seals the held messages: one buffer of frames per peer, peers in the order of their
    /// first message; and the number of messages that could not be encoded.
    pub(crate) fn flush(&mut self, seal: &mut PeerSeal) -> (Vec<(SocketAddr, Vec<u8>)>, u64) {
        let mut out: Vec<(SocketAddr, Vec<u8>)> = Vec::new();
        let mut dropped = 0;
        for (to, receiver, body) in self.pending.drain(..) {
            let i = match out.iter().position(|(dest, _)| *dest == to) {
                Some(i) => i,
                None => {
                    out.push((to, Vec::new()));
                    out.len() - 1
                }
            };
            if let Err(e) = seal.seal_into(receiver, &body, Channel::Stream, &mut out[i].1) {
                warn!(error = %e, "cannot encode a peer message; dropped");
                dropped += 1;
            }
        }
        out.retain(|(_, frames)| !frames.is_empty());
        (out, dropped)
    }
}

/// Merges `next` into `prev` (the last message held for the same peer) if together they say
/// what they say one after the other; gives `next` back otherwise.
pub(crate) fn merge(prev: &mut OrderingMsg, next: OrderingMsg) -> Option<OrderingMsg> {
    match (prev, next) {
        (
            OrderingMsg::Propose { term, commands },
            OrderingMsg::Propose { term: t, commands: more },
        ) if *term == t && commands.len() + more.len() <= MAX_MERGED_COMMANDS => {
            commands.extend(more);
            None
        }
        (OrderingMsg::Ack { term, stored }, OrderingMsg::Ack { term: t, stored: s })
            if *term == t =>
        {
            // The highest, as the leader keeps anyway (a later ack can be lower: a snapshot
            // install resets what is durable).
            *stored = (*stored).max(s);
            None
        }
        // The merged `Order` keeps the first one's `prev`: the second one's entries follow on.
        (
            OrderingMsg::Order { term, entries, commit, .. },
            OrderingMsg::Order { term: t, entries: more, commit: c, .. },
        ) if *term == t
            && entries.len() + more.len() <= MAX_MERGED_COMMANDS
            && entries.last().zip(more.first()).is_some_and(|(a, b)| a.seq.next() == b.seq) =>
        {
            entries.extend(more);
            *commit = (*commit).max(c);
            None
        }
        (_, next) => Some(next),
    }
}

//! Leader liveness composition: what the election core needs from the other cores beyond
//! the configuration (see `docs/election.md`, "Heartbeats and pre-vote").

use crate::Replica;

impl Replica {
    /// A member just added holds no configuration until the leader's log or snapshot reaches
    /// it, so its election core knows no ring. It relays election messages to every peer it
    /// knows instead; the failure detector's live members are those peers (they count for no
    /// majority), so a leader dying in that window does not leave the ring cut at the new
    /// member.
    pub(crate) fn feed_relay_targets(&mut self) {
        if self.members.is_empty() {
            self.election.handle_known(self.membership.live_members());
        }
    }
}

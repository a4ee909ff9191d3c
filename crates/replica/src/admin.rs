//! Operators' membership operations (`admin promote|demote|remove|move-leader`), carried out
//! by the leader. Each either starts exactly one change (a configuration entry, or a
//! leadership hand-over) or refuses with the reason and changes nothing; the outcome of a
//! configuration entry is seen in `servers`/`report` once it commits.

use std::time::{Duration, Instant};

use auction_ordering::OrderingError;
use auction_proto::NodeId;
use auction_proto::msg::client::AdminRefusal;
use auction_proto::msg::log::ConfigChange;

use crate::Replica;

/// Why a membership operation was not started; nothing changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AdminError {
    /// This node does not lead; the leader it knows of, if any, can.
    #[error("not the leader (leader: {leader:?})")]
    NotLeader {
        /// The leader this node knows of.
        leader: Option<NodeId>,
    },
    /// The leader cannot reach a majority now; retry shortly.
    #[error("the leader cannot reach a majority")]
    Unavailable,
    /// The operation does not apply to that server now.
    #[error("{0}")]
    Refused(AdminRefusal),
}

impl Replica {
    fn admin_leading(&self) -> Result<(), AdminError> {
        if self.ordering.is_leading() && self.election.is_leader() {
            Ok(())
        } else {
            Err(AdminError::NotLeader { leader: self.leader().filter(|l| *l != self.me.node) })
        }
    }

    fn propose_change(&mut self, change: ConfigChange, now: Instant) -> Result<(), AdminError> {
        let result = self.ordering.handle_config_change(change, now);
        let out = match result {
            Ok(_) => Ok(()),
            Err(OrderingError::ConfigChangeInProgress { .. }) => {
                Err(AdminError::Refused(AdminRefusal::ChangeInProgress))
            }
            Err(OrderingError::NotLeader { leader, .. }) => Err(AdminError::NotLeader { leader }),
            Err(OrderingError::InvalidConfigChange { .. }) => {
                Err(AdminError::Refused(AdminRefusal::NotAVoter))
            }
            Err(_) => Err(AdminError::Unavailable),
        };
        self.after_input(now);
        out
    }

    /// Leader: make the learner `node` a voter now (its `AddMember`), without waiting for
    /// the stabilization time; this also releases a learner held by [`Replica::demote`].
    ///
    /// # Errors
    /// [`AdminError`]: not the leader, or `node` is not a learner this leader replicates to
    /// (`NotALearner`), or it has not caught up (`NotCaughtUp`), or a change is pending.
    pub fn promote(&mut self, node: NodeId, now: Instant) -> Result<(), AdminError> {
        self.admin_leading()?;
        if !self.ordering.learners().contains(&node) {
            return Err(AdminError::Refused(AdminRefusal::NotALearner));
        }
        if !self.ordering.learner_ready(node, Duration::ZERO, now) {
            return Err(AdminError::Refused(AdminRefusal::NotCaughtUp));
        }
        let Some(member) = self.membership.member(&node) else {
            return Err(AdminError::Refused(AdminRefusal::NotALearner));
        };
        self.propose_change(ConfigChange::AddMember(member.info), now)
    }

    /// Leader: make the voter `node` a learner and hold it there (`ConfigChange::Demote`): it
    /// keeps receiving the log and serving reads but is promoted again only by
    /// [`Replica::promote`]. Below the quorum floor too: the operator decides.
    ///
    /// # Errors
    /// [`AdminError`]: not the leader, `node` is not a voter, it is this leader (move the
    /// leadership first), or a change is pending.
    pub fn demote(&mut self, node: NodeId, now: Instant) -> Result<(), AdminError> {
        self.admin_leading()?;
        if node == self.me.node {
            return Err(AdminError::Refused(AdminRefusal::IsLeader));
        }
        if !self.members().contains(&node) {
            return Err(AdminError::Refused(AdminRefusal::NotAVoter));
        }
        self.propose_change(ConfigChange::Demote(node), now)
    }

    /// Leader: remove the voter `node`, which is down, now: without the removal grace and
    /// even below the quorum floor (the operator decides). A server that is up is refused:
    /// it would come back as a learner and be promoted again; stop it or demote it.
    ///
    /// # Errors
    /// [`AdminError`]: not the leader, `node` is not a voter, is this leader, is up
    /// (`ServerUp`), or a change is pending.
    pub fn remove(&mut self, node: NodeId, now: Instant) -> Result<(), AdminError> {
        self.admin_leading()?;
        if node == self.me.node {
            return Err(AdminError::Refused(AdminRefusal::IsLeader));
        }
        if !self.members().contains(&node) {
            return Err(AdminError::Refused(AdminRefusal::NotAVoter));
        }
        if self.membership.live_members().any(|n| n == node) {
            return Err(AdminError::Refused(AdminRefusal::ServerUp));
        }
        self.propose_change(ConfigChange::RemoveMember(node), now)
    }

    /// Leader: hand the leadership to the voter `node`, which must have stored everything
    /// committed and answered lately; it starts the next term's election at once and the
    /// others stand aside for it (see `Election::transfer`). This node leads until then.
    ///
    /// # Errors
    /// [`AdminError`]: not the leader, `node` is this leader, not a voter, or not caught up.
    pub fn move_leader(&mut self, node: NodeId, now: Instant) -> Result<(), AdminError> {
        self.admin_leading()?;
        if node == self.me.node {
            return Err(AdminError::Refused(AdminRefusal::IsLeader));
        }
        if !self.members().contains(&node) {
            return Err(AdminError::Refused(AdminRefusal::NotAVoter));
        }
        if !self.ordering.voter_caught_up(node, now) {
            return Err(AdminError::Refused(AdminRefusal::NotCaughtUp));
        }
        let started = self.election.transfer(node, now);
        self.after_input(now);
        if started { Ok(()) } else { Err(AdminError::Refused(AdminRefusal::NotAVoter)) }
    }

    /// The learners held by `admin demote` (not promoted automatically).
    pub fn held(&self) -> Vec<NodeId> {
        self.held.iter().copied().collect()
    }
}

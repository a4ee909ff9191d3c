//! Counters of the messages the core refused, by kind ([`Ordering::stats`]).
//!
//! [`Ordering::stats`]: crate::Ordering::stats

/// How many messages this core refused since it was created, per kind. A refused message
/// changes no state beyond what each field's doc says (a higher term is always adopted
/// first). Counters only grow; they are not persisted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct OrderingStats {
    /// `Ack`, `Nack` or `LogState` of this node's term while it does not lead that term
    /// (it stepped down, or never led it). Dropped, nothing sent.
    pub not_leading: u64,
    /// `Propose` at a node that does not lead. Answered with `NotLeader` (the current term
    /// and the leader it knows), so that the sender resends to the leader.
    pub propose_not_leading: u64,
    /// `Ack`, `Nack` or `LogState` of an older term. Dropped, nothing sent.
    pub stale_member_msg: u64,
    /// A leader-to-member message (`StartView`, `NewView`, `Order`, `Commit`, `Snapshot`) of
    /// an older term. Answered with `NotLeader`, which deposes the stale leader.
    pub stale_leader_msg: u64,
    /// A leader-to-member message of this node's term from a node that is not its leader:
    /// a second leader of the term, or any sender while this node leads it. Dropped,
    /// nothing sent.
    pub not_from_leader: u64,
    /// A `Nack` at the leader while it still gathers log states (it has sent no entries of
    /// its term yet). Dropped, nothing sent; the sender is noted as heard from.
    pub nack_while_gathering: u64,
    /// A `NewView` or `Order` that does not build on this member's log (the catch-up check
    /// in docs/ordering.md): nothing taken, out of sync, a sync request sent.
    pub catch_up_refused: u64,
}

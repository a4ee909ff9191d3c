//! Settings of the membership core.

use std::net::SocketAddr;
use std::num::{NonZeroU32, NonZeroUsize};
use std::time::Duration;

use crate::MembershipError;

/// Settings. [`MembershipConfig::default`] is tuned for a LAN of a handful of servers; see
/// docs/membership.md for the detection-time versus false-positive trade-off.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MembershipConfig {
    /// Where `Discover` goes: subnet broadcast addresses of the discovery port and static
    /// `--join` addresses. The node fills this (enumerating interfaces is IO); empty means
    /// "only members we already know".
    pub discovery_targets: Vec<SocketAddr>,
    /// How often each member is probed (the heartbeat interval).
    pub probe_interval: Duration,
    /// How long to wait for a direct `Ack` before asking others to probe (`PingReq`).
    pub probe_timeout: Duration,
    /// How many members are asked to probe indirectly when a direct probe goes unanswered.
    pub indirect_probes: usize,
    /// Silence after which a member becomes `Suspect`.
    pub suspicion_timeout: Duration,
    /// Time in `Suspect` after which a member is declared `Down`.
    pub confirmation_timeout: Duration,
    /// First delay between rediscovery rounds; doubled after each round.
    pub rediscover_min: Duration,
    /// Cap of the rediscovery backoff (rediscovery never stops, so partitions heal).
    pub rediscover_max: Duration,
    /// How long `Down` and `Left` members stay in the table (tombstones) before they are
    /// forgotten.
    pub tombstone_retention: Duration,
    /// Bound of the member table (self excluded).
    pub max_members: NonZeroUsize,
    /// Bound of the action queue; actions beyond it are dropped and counted.
    pub max_actions: NonZeroUsize,
    /// Bound of indirect probes run on behalf of other members at once.
    pub max_relays: NonZeroUsize,
    /// Most member updates piggy-backed on one `Ping` or `Ack` (the sender's own included).
    pub max_updates: NonZeroUsize,
    /// Each rumour is piggy-backed `gossip_multiplier * ceil(log2(members + 1))` times.
    pub gossip_multiplier: NonZeroU32,
}

impl Default for MembershipConfig {
    /// 1 s probes, 400 ms direct-ack wait, 3 indirect probes, `Suspect` after 3 s of silence,
    /// `Down` 3 s later; rediscovery every 1 s doubling to 10 s.
    fn default() -> Self {
        Self {
            discovery_targets: Vec::new(),
            probe_interval: Duration::from_secs(1),
            probe_timeout: Duration::from_millis(400),
            indirect_probes: 3,
            suspicion_timeout: Duration::from_secs(3),
            confirmation_timeout: Duration::from_secs(3),
            rediscover_min: Duration::from_secs(1),
            rediscover_max: Duration::from_secs(10),
            tombstone_retention: Duration::from_secs(60),
            max_members: nz(64),
            max_actions: nz(4096),
            max_relays: nz(64),
            max_updates: nz(8),
            gossip_multiplier: NonZeroU32::MIN.saturating_add(2),
        }
    }
}

fn nz(n: usize) -> NonZeroUsize {
    NonZeroUsize::new(n).unwrap_or(NonZeroUsize::MIN)
}

impl MembershipConfig {
    /// Checks the settings that types alone cannot.
    ///
    /// # Errors
    /// A zero duration, a direct-ack wait not shorter than the probe interval, a suspicion
    /// timeout under two probe intervals, or a backoff that starts above its cap.
    pub fn validate(&self) -> Result<(), MembershipError> {
        let durations = [
            ("probe_interval", self.probe_interval),
            ("probe_timeout", self.probe_timeout),
            ("suspicion_timeout", self.suspicion_timeout),
            ("confirmation_timeout", self.confirmation_timeout),
            ("rediscover_min", self.rediscover_min),
            ("rediscover_max", self.rediscover_max),
            ("tombstone_retention", self.tombstone_retention),
        ];
        if let Some((setting, _)) = durations.iter().find(|(_, d)| d.is_zero()) {
            return Err(MembershipError::ZeroDuration { setting });
        }
        if self.probe_timeout >= self.probe_interval {
            return Err(MembershipError::ProbeTimeoutTooLong {
                probe_timeout: self.probe_timeout,
                probe_interval: self.probe_interval,
            });
        }
        if self.suspicion_timeout < self.probe_interval * 2 {
            return Err(MembershipError::SuspicionTooShort {
                suspicion_timeout: self.suspicion_timeout,
                probe_interval: self.probe_interval,
            });
        }
        if self.rediscover_min > self.rediscover_max {
            return Err(MembershipError::RediscoverBackoff {
                min: self.rediscover_min,
                max: self.rediscover_max,
            });
        }
        Ok(())
    }

    /// The longest a crashed member stays undeclared at a member that keeps running: silence
    /// until suspicion, then the confirmation timeout.
    pub fn detection_bound(&self) -> Duration {
        self.suspicion_timeout + self.confirmation_timeout
    }
}

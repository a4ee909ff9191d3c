//! The crate's one error type.

use std::time::Duration;

/// Why a [`crate::Membership`] could not be built. Handlers never fail: input they cannot use
/// (stale, unknown sender, over a bound) is ignored and counted in [`crate::MembershipStats`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MembershipError {
    /// A duration setting is zero. Nothing was built.
    #[error("setting `{setting}` must not be zero")]
    ZeroDuration {
        /// The setting's field name in [`crate::MembershipConfig`].
        setting: &'static str,
    },
    /// The direct-ack wait does not fit in one probe period. Nothing was built.
    #[error(
        "probe_timeout {probe_timeout:?} must be shorter than probe_interval {probe_interval:?}"
    )]
    ProbeTimeoutTooLong {
        /// The configured wait for a direct ack.
        probe_timeout: Duration,
        /// The configured probe period.
        probe_interval: Duration,
    },
    /// Members would be suspected between two probes. Nothing was built.
    #[error(
        "suspicion_timeout {suspicion_timeout:?} must be at least two probe intervals ({probe_interval:?} each)"
    )]
    SuspicionTooShort {
        /// The configured silence before suspicion.
        suspicion_timeout: Duration,
        /// The configured probe period.
        probe_interval: Duration,
    },
    /// The rediscovery backoff starts above its cap. Nothing was built.
    #[error("rediscover_min {min:?} exceeds rediscover_max {max:?}")]
    RediscoverBackoff {
        /// The configured first backoff.
        min: Duration,
        /// The configured cap.
        max: Duration,
    },
}

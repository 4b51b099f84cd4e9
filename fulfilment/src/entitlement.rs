//! Entitlements: access an app user holds through in-app purchases.
//!
//! Stored as two monotone facts so events commute: how far any grant
//! reaches (`granted_until`, or lifetime) and how far expirations reached
//! (`expired_through`). A late expiration of an old period does not revoke
//! a renewal that reaches further.

use crate::order::UnixMicros;

/// One entitlement of one customer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entitlement {
    /// App user.
    pub customer_id: String,
    /// Entitlement id (e.g. "pro").
    pub entitlement_id: String,
    /// Product of the grant that reaches furthest.
    pub product_id: String,
    /// Granted for life (until revoked).
    pub lifetime: bool,
    /// Latest end of any grant.
    pub granted_until: Option<UnixMicros>,
    /// Latest period end reported expired.
    pub expired_through: Option<UnixMicros>,
    /// Last change.
    pub update_time: UnixMicros,
}

impl Entitlement {
    /// Revoked: an expiration reached as far as every grant.
    pub fn revoked(&self) -> bool {
        self.expired_through.is_some_and(|expired| {
            self.lifetime || self.granted_until.is_none_or(|until| expired >= until)
        })
    }

    /// Usable at `now`.
    pub fn active_at(&self, now: UnixMicros) -> bool {
        !self.revoked() && (self.lifetime || self.granted_until.is_some_and(|until| until > now))
    }

    /// When access ends, if it ends (None for lifetime).
    pub fn expire_time(&self) -> Option<UnixMicros> {
        if self.lifetime && !self.revoked() {
            None
        } else if self.revoked() {
            self.expired_through
        } else {
            self.granted_until
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ent(lifetime: bool, until: Option<i64>, expired: Option<i64>) -> Entitlement {
        Entitlement {
            customer_id: "u".into(),
            entitlement_id: "pro".into(),
            product_id: "p".into(),
            lifetime,
            granted_until: until.map(UnixMicros),
            expired_through: expired.map(UnixMicros),
            update_time: UnixMicros(0),
        }
    }

    #[test]
    fn renewal_beats_a_late_expiration_of_the_old_period() {
        let e = ent(false, Some(200), Some(100));
        assert!(!e.revoked());
        assert!(e.active_at(UnixMicros(150)));
        assert!(!e.active_at(UnixMicros(250)), "ends when the grant ends");
    }

    #[test]
    fn expiration_of_the_latest_period_revokes() {
        let e = ent(false, Some(200), Some(200));
        assert!(e.revoked() && !e.active_at(UnixMicros(150)));
        assert!(
            ent(true, None, Some(5)).revoked(),
            "a lifetime grant can be revoked"
        );
        assert!(ent(true, None, None).active_at(UnixMicros(i64::MAX)));
    }
}

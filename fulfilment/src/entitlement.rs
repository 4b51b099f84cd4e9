//! Entitlements: access an app user holds through in-app purchases.
//!
//! Stored as two monotone facts so events commute: how far any grant
//! reaches (`granted_until`, or lifetime) and how far expirations reached
//! (`expired_through`). A late expiration of an old period does not revoke
//! a renewal that reaches further.

use crate::order::UnixMicros;
use crate::payment_event::Grant;

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

impl Entitlement {
    /// An entitlement nothing has granted or expired yet.
    pub fn empty(customer_id: &str, entitlement_id: &str, product_id: &str) -> Self {
        Entitlement {
            customer_id: customer_id.to_owned(),
            entitlement_id: entitlement_id.to_owned(),
            product_id: product_id.to_owned(),
            lifetime: false,
            granted_until: None,
            expired_through: None,
            update_time: UnixMicros(0),
        }
    }

    /// Merges a grant of `product_id`: extends access to the grant's end, or
    /// for life. The product is the one of the grant that reaches furthest.
    pub fn grant(&mut self, product_id: &str, grant: &Grant, now: UnixMicros) {
        match grant.expire_time {
            None => {
                self.lifetime = true;
                self.product_id = product_id.to_owned();
            }
            Some(until) => {
                if self.granted_until.is_none_or(|current| until >= current.0) {
                    self.granted_until = Some(UnixMicros(until));
                    if !self.lifetime {
                        self.product_id = product_id.to_owned();
                    }
                }
            }
        }
        self.update_time = now;
    }

    /// Merges an expiration through the grant's end (`occur_time` when the
    /// event gives none).
    pub fn expire(&mut self, grant: &Grant, occur_time: UnixMicros, now: UnixMicros) {
        let through = grant.expire_time.map_or(occur_time, UnixMicros);
        self.expired_through = Some(self.expired_through.map_or(through, |e| e.max(through)));
        self.update_time = now;
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

    #[test]
    fn grants_and_expirations_commute() {
        let grant = |until| Grant {
            entitlement_id: "pro".into(),
            expire_time: until,
        };
        let steps: [&dyn Fn(&mut Entitlement); 3] = [
            &|e| e.grant("monthly", &grant(Some(100)), UnixMicros(1)),
            &|e| e.grant("yearly", &grant(Some(300)), UnixMicros(1)),
            &|e| e.expire(&grant(Some(100)), UnixMicros(7), UnixMicros(1)),
        ];
        let orders = [
            [0, 1, 2],
            [2, 1, 0],
            [1, 0, 2],
            [2, 0, 1],
            [0, 2, 1],
            [1, 2, 0],
        ];
        for order in orders {
            let mut e = Entitlement::empty("u", "pro", "");
            for i in order {
                steps[i](&mut e);
            }
            assert_eq!(
                (e.product_id.as_str(), e.granted_until, e.expired_through),
                ("yearly", Some(UnixMicros(300)), Some(UnixMicros(100))),
                "order {order:?}"
            );
            assert!(e.active_at(UnixMicros(200)));
        }
    }
}

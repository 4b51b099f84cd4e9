//! Who is calling and what they may do.
//!
//! A verified token becomes a [`Principal`]: an app client (a token without
//! Fulfil scopes, whose `sub` is its customer id) or a service (a token with
//! scopes). With authorization off every caller is [`Caller::Anyone`]. The
//! handlers ask one question each ([`Principal::require`],
//! [`Principal::may_read_order`], [`Principal::customer_filter`]), so each
//! rule reads as one line where the resource is known.

use std::time::SystemTime;

use super::AuthError;

/// A permission carried in a token's `scope` (or `scp`) claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Read, list and watch any order; list any customer's entitlements.
    OrdersRead,
    /// `orders:read`, plus create, cancel and fulfil orders.
    OrdersWrite,
    /// `orders:write`, plus list payment events and re-apply unmatched ones.
    OrdersAdmin,
    /// Record payment events (the adapter's identity), nothing else.
    PaymentEventsWrite,
}

impl Scope {
    /// Every scope Fulfil knows.
    pub const ALL: [Scope; 4] = [
        Scope::OrdersRead,
        Scope::OrdersWrite,
        Scope::OrdersAdmin,
        Scope::PaymentEventsWrite,
    ];

    /// The scope as written in tokens.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::OrdersRead => "orders:read",
            Scope::OrdersWrite => "orders:write",
            Scope::OrdersAdmin => "orders:admin",
            Scope::PaymentEventsWrite => "payment_events:write",
        }
    }

    /// A Fulfil scope, or None for anything else (`openid`, another API's).
    pub fn parse(text: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// Whether holding `self` is enough for a call that needs `needed`:
    /// admin includes write, write includes read; `payment_events:write`
    /// stands alone.
    pub fn grants(self, needed: Scope) -> bool {
        use Scope::*;
        self == needed
            || matches!(
                (self, needed),
                (OrdersWrite, OrdersRead) | (OrdersAdmin, OrdersRead | OrdersWrite)
            )
    }

    fn bit(self) -> u8 {
        match self {
            Scope::OrdersRead => 1,
            Scope::OrdersWrite => 2,
            Scope::OrdersAdmin => 4,
            Scope::PaymentEventsWrite => 8,
        }
    }
}

/// The Fulfil scopes a token holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Scopes(u8);

impl Scopes {
    /// No scopes.
    pub fn none() -> Self {
        Scopes(0)
    }

    /// Adds `scope`.
    pub fn insert(&mut self, scope: Scope) {
        self.0 |= scope.bit();
    }

    /// Whether no Fulfil scope is held.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Whether some held scope grants `needed`.
    pub fn grant(self, needed: Scope) -> bool {
        self.iter().any(|held| held.grants(needed))
    }

    /// The scopes held.
    pub fn iter(self) -> impl Iterator<Item = Scope> {
        Scope::ALL
            .into_iter()
            .filter(move |s| self.0 & s.bit() != 0)
    }
}

impl FromIterator<Scope> for Scopes {
    fn from_iter<I: IntoIterator<Item = Scope>>(iter: I) -> Self {
        let mut scopes = Scopes::none();
        for scope in iter {
            scopes.insert(scope);
        }
        scopes
    }
}

/// The kind of caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// Authorization is off: every call is allowed.
    Anyone,
    /// An app client acting for this customer: reads and watches its own
    /// orders and entitlements, nothing else.
    Customer(String),
    /// A service with scopes; `subject` is the token's `sub` (may be empty),
    /// kept for logs.
    Service {
        /// The token's `sub`.
        subject: String,
        /// What it may do.
        scopes: Scopes,
    },
}

/// A verified caller, placed in the request's extensions by the
/// authentication layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// Who.
    pub caller: Caller,
    /// When the token stops being valid (None with authorization off).
    /// Streams end then.
    pub expires_at: Option<SystemTime>,
}

impl Principal {
    /// The caller when authorization is off.
    pub fn anyone() -> Self {
        Principal {
            caller: Caller::Anyone,
            expires_at: None,
        }
    }

    /// Calls that need `scope`: allowed to services holding a scope that
    /// grants it (and to anyone with authorization off); app clients never.
    pub fn require(&self, scope: Scope) -> Result<(), AuthError> {
        match &self.caller {
            Caller::Anyone => Ok(()),
            Caller::Service { scopes, .. } if scopes.grant(scope) => Ok(()),
            Caller::Service { .. } | Caller::Customer(_) => Err(AuthError::ScopeRequired(scope)),
        }
    }

    /// Reading (or watching) one order whose customer is `owner`, None when
    /// the order does not exist. An app client is refused both another
    /// customer's order and a missing one, so it cannot learn which order
    /// ids exist (AIP-211); readers then see NOT_FOUND for a missing order.
    pub fn may_read_order(&self, owner: Option<&str>) -> Result<(), AuthError> {
        self.may_use_order(owner, Scope::OrdersRead)
    }

    /// An app client may use its own orders only (refused for a missing
    /// one as well); services need `scope`.
    fn may_use_order(&self, owner: Option<&str>, scope: Scope) -> Result<(), AuthError> {
        match &self.caller {
            Caller::Customer(me) if owner == Some(me.as_str()) => Ok(()),
            Caller::Customer(_) => Err(AuthError::CustomerMismatch),
            Caller::Anyone | Caller::Service { .. } => self.require(scope),
        }
    }

    /// The customer a list, a watch or an entitlement query is limited to,
    /// given the `customer_id` the caller asked for (empty: any). Readers
    /// get what they asked for; an app client gets itself, and is refused
    /// when it names another customer.
    pub fn customer_filter(&self, requested: &str) -> Result<Option<String>, AuthError> {
        match &self.caller {
            Caller::Customer(me) if requested.is_empty() || requested == me => Ok(Some(me.clone())),
            Caller::Customer(_) => Err(AuthError::CustomerMismatch),
            Caller::Anyone | Caller::Service { .. } => {
                self.require(Scope::OrdersRead)?;
                Ok(Some(requested.to_owned()).filter(|c| !c.is_empty()))
            }
        }
    }

    /// Checking out an existing order whose customer is `owner` (None when
    /// it does not exist): an app client only its own orders (refused for a
    /// missing one, as for reads); services need `orders:write`.
    pub fn may_check_out_order(&self, owner: Option<&str>) -> Result<(), AuthError> {
        self.may_use_order(owner, Scope::OrdersWrite)
    }

    /// The customer a checkout of catalogue items is for, given the
    /// `customer_id` asked for (empty: the caller's own): an app client
    /// buys for itself only; services with `orders:write` for anyone (and
    /// must name them).
    pub fn checkout_customer(&self, requested: &str) -> Result<String, AuthError> {
        match &self.caller {
            Caller::Customer(me) if requested.is_empty() || requested == me => Ok(me.clone()),
            Caller::Customer(_) => Err(AuthError::CustomerMismatch),
            Caller::Anyone | Caller::Service { .. } => {
                self.require(Scope::OrdersWrite)?;
                Ok(requested.to_owned())
            }
        }
    }

    /// A short description for logs: the kind and subject, never the token.
    pub fn describe(&self) -> String {
        match &self.caller {
            Caller::Anyone => "anyone (authorization off)".to_owned(),
            Caller::Customer(id) => format!("customer {id}"),
            Caller::Service { subject, scopes } => {
                let names: Vec<&str> = scopes.iter().map(Scope::as_str).collect();
                format!("service {subject:?} [{}]", names.join(" "))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(scopes: &[Scope]) -> Principal {
        Principal {
            caller: Caller::Service {
                subject: "svc".into(),
                scopes: scopes.iter().copied().collect(),
            },
            expires_at: None,
        }
    }

    fn customer(id: &str) -> Principal {
        Principal {
            caller: Caller::Customer(id.into()),
            expires_at: None,
        }
    }

    #[test]
    fn scopes_nest_except_payment_events() {
        use Scope::*;
        assert!(OrdersAdmin.grants(OrdersWrite) && OrdersAdmin.grants(OrdersRead));
        assert!(OrdersWrite.grants(OrdersRead) && !OrdersWrite.grants(OrdersAdmin));
        assert!(!OrdersRead.grants(OrdersWrite));
        for scope in [OrdersRead, OrdersWrite, OrdersAdmin] {
            assert!(!scope.grants(PaymentEventsWrite));
            assert!(!PaymentEventsWrite.grants(scope));
        }
        for scope in Scope::ALL {
            assert_eq!(Scope::parse(scope.as_str()), Some(scope));
        }
        assert_eq!(Scope::parse("openid"), None);
    }

    #[test]
    fn app_clients_see_only_themselves() {
        let alice = customer("alice");
        assert_eq!(alice.may_read_order(Some("alice")), Ok(()));
        assert_eq!(
            alice.may_read_order(Some("bob")),
            Err(AuthError::CustomerMismatch)
        );
        assert_eq!(alice.may_read_order(None), Err(AuthError::CustomerMismatch));
        assert_eq!(alice.customer_filter(""), Ok(Some("alice".into())));
        assert_eq!(alice.customer_filter("alice"), Ok(Some("alice".into())));
        assert_eq!(
            alice.customer_filter("bob"),
            Err(AuthError::CustomerMismatch)
        );
        assert_eq!(
            alice.require(Scope::OrdersRead),
            Err(AuthError::ScopeRequired(Scope::OrdersRead))
        );
    }

    #[test]
    fn checkouts_are_for_ones_own_customer_or_need_orders_write() {
        let alice = customer("alice");
        assert_eq!(alice.may_check_out_order(Some("alice")), Ok(()));
        for owner in [Some("bob"), None] {
            assert_eq!(
                alice.may_check_out_order(owner),
                Err(AuthError::CustomerMismatch)
            );
        }
        assert_eq!(alice.checkout_customer(""), Ok("alice".into()));
        assert_eq!(alice.checkout_customer("alice"), Ok("alice".into()));
        assert_eq!(
            alice.checkout_customer("bob"),
            Err(AuthError::CustomerMismatch)
        );
        let reader = service(&[Scope::OrdersRead]);
        assert_eq!(
            reader.may_check_out_order(Some("bob")),
            Err(AuthError::ScopeRequired(Scope::OrdersWrite))
        );
        assert!(reader.checkout_customer("bob").is_err());
        let writer = service(&[Scope::OrdersWrite]);
        assert_eq!(writer.may_check_out_order(Some("bob")), Ok(()));
        assert_eq!(writer.checkout_customer("bob"), Ok("bob".into()));
    }

    #[test]
    fn services_get_what_their_scopes_grant() {
        let reader = service(&[Scope::OrdersRead]);
        assert_eq!(reader.may_read_order(None), Ok(()));
        assert_eq!(reader.customer_filter(""), Ok(None));
        assert_eq!(reader.customer_filter("bob"), Ok(Some("bob".into())));
        assert!(reader.require(Scope::OrdersWrite).is_err());
        let adapter = service(&[Scope::PaymentEventsWrite]);
        assert_eq!(adapter.require(Scope::PaymentEventsWrite), Ok(()));
        assert_eq!(
            adapter.may_read_order(Some("bob")),
            Err(AuthError::ScopeRequired(Scope::OrdersRead))
        );
        assert!(
            service(&[Scope::OrdersAdmin])
                .require(Scope::PaymentEventsWrite)
                .is_err()
        );
        assert_eq!(Principal::anyone().customer_filter(""), Ok(None));
        assert_eq!(Principal::anyone().require(Scope::OrdersAdmin), Ok(()));
    }
}

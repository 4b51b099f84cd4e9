//! Request fields parsed where they come in: each helper returns the domain
//! value, or says what is wrong with the field for google.rpc.BadRequest.

use fulfil_proto::Identifier;

use crate::order::{FieldViolation, OrderId};

/// An optional order id filter (empty: any order).
pub(super) fn optional_order_id(
    field: &str,
    raw: &str,
    violations: &mut Vec<FieldViolation>,
) -> Option<OrderId> {
    if raw.is_empty() {
        return None;
    }
    OrderId::parse(raw)
        .map_err(|why| violations.push(FieldViolation::new(field, why)))
        .ok()
}

/// An optional identifier filter (`None` or empty: any).
pub(super) fn optional_identifier(
    field: &str,
    raw: Option<String>,
    violations: &mut Vec<FieldViolation>,
) -> Option<Identifier> {
    let raw = raw.filter(|r| !r.is_empty())?;
    Identifier::parse_owned(raw)
        .map_err(|problem| violations.push(FieldViolation::new(field, problem.to_string())))
        .ok()
}

//! `fulfil.v1.EntitlementService`: what in-app purchases grant app users.

use fulfil_proto::Identifier;
use fulfil_proto::v1 as pb;
use pb::entitlement_service_server::EntitlementService;
use tonic::{Request, Response, Status};

use super::convert::timestamp;
use super::status::invalid_argument;
use crate::auth;
use crate::order::{FieldViolation, OrderError, UnixMicros};
use crate::storage::Database;

/// Serves `EntitlementService` from a [`Database`].
#[derive(Debug, Clone)]
pub struct EntitlementApi {
    db: Database,
}

impl EntitlementApi {
    /// A service over `db`.
    pub fn new(db: Database) -> Self {
        EntitlementApi { db }
    }
}

#[tonic::async_trait]
impl EntitlementService for EntitlementApi {
    #[tracing::instrument(skip_all, fields(customer_id = %request.get_ref().customer_id))]
    async fn list_entitlements(
        &self,
        request: Request<pb::ListEntitlementsRequest>,
    ) -> Result<Response<pb::ListEntitlementsResponse>, Status> {
        // App clients get their own (an empty customer_id means theirs).
        let customer_id =
            auth::caller(&request)?.customer_filter(&request.get_ref().customer_id)?;
        let request = request.into_inner();
        let Some(customer_id) = customer_id else {
            return Err(invalid_argument(&[FieldViolation::new(
                "customer_id",
                "is required",
            )]));
        };
        let customer_id = Identifier::parse_owned(customer_id).map_err(|problem| {
            invalid_argument(&[FieldViolation::new("customer_id", problem.to_string())])
        })?;
        let now = UnixMicros::now();
        let entitlements = self
            .db
            .list_entitlements(customer_id.as_str())
            .await
            .map_err(OrderError::from)?
            .into_iter()
            .map(|e| pb::CustomerEntitlement {
                active: e.active_at(now),
                expire_time: e.expire_time().map(timestamp),
                update_time: Some(timestamp(e.update_time)),
                customer_id: e.customer_id,
                entitlement_id: e.entitlement_id,
                product_id: e.product_id,
            })
            .filter(|e| e.active || !request.active_only)
            .collect();
        Ok(Response::new(pb::ListEntitlementsResponse { entitlements }))
    }
}

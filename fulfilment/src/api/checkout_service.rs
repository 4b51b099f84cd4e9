//! `fulfil.v1.CheckoutService`: starting a provider payment for an order.

use fulfil_proto::v1 as pb;
use pb::checkout_service_server::CheckoutService;
use tonic::{Request, Response, Status};

use super::convert::order_to_proto;
use crate::auth;
use crate::checkout::{CheckoutError, CheckoutRequest, Checkouts, Flow, RequestedItem};
use crate::order::{FieldViolation, OrderError, OrderId};
use crate::storage::CreateOrder;

/// Serves `CheckoutService`.
#[derive(Debug, Clone)]
pub struct CheckoutApi {
    checkouts: Checkouts,
}

impl CheckoutApi {
    /// A service over `checkouts`.
    pub fn new(checkouts: Checkouts) -> Self {
        CheckoutApi { checkouts }
    }
}

/// The proto flow as the domain's; None for UNSPECIFIED and unknown values.
pub fn flow_from_proto(value: i32) -> Option<Flow> {
    match pb::CheckoutFlow::try_from(value).ok()? {
        pb::CheckoutFlow::Unspecified => None,
        pb::CheckoutFlow::StripePaymentSheet => Some(Flow::StripePaymentSheet),
        pb::CheckoutFlow::StripeCheckoutSession => Some(Flow::StripeCheckoutSession),
        pb::CheckoutFlow::PaypalOrder => Some(Flow::PaypalOrder),
    }
}

fn flow_to_proto(flow: Flow) -> pb::CheckoutFlow {
    match flow {
        Flow::StripePaymentSheet => pb::CheckoutFlow::StripePaymentSheet,
        Flow::StripeCheckoutSession => pb::CheckoutFlow::StripeCheckoutSession,
        Flow::PaypalOrder => pb::CheckoutFlow::PaypalOrder,
    }
}

/// Validates the fields every checkout has.
fn checkout_request(
    checkouts: &Checkouts,
    request: &pb::CreateCheckoutRequest,
    violations: &mut Vec<FieldViolation>,
) -> Option<CheckoutRequest> {
    let Some(flow) = flow_from_proto(request.flow) else {
        violations.push(FieldViolation::new("flow", "is required"));
        return None;
    };
    if flow == Flow::StripeCheckoutSession {
        for (field, url) in [
            ("success_url", &request.success_url),
            ("cancel_url", &request.cancel_url),
        ] {
            if let Err(why) = checkouts.return_urls().check(url) {
                violations.push(FieldViolation::new(field, why));
            }
        }
    }
    let version = &request.stripe_api_version;
    let plain = version
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    if version.len() > 40 || !plain {
        violations.push(FieldViolation::new(
            "stripe_api_version",
            "must look like 2024-06-20",
        ));
    }
    Some(CheckoutRequest {
        flow,
        success_url: request.success_url.clone(),
        cancel_url: request.cancel_url.clone(),
        stripe_api_version: Some(version.clone()).filter(|v| !v.is_empty()),
    })
}

#[tonic::async_trait]
impl CheckoutService for CheckoutApi {
    #[tracing::instrument(skip_all, fields(order_id, flow = request.get_ref().flow))]
    async fn create_checkout(
        &self,
        request: Request<pb::CreateCheckoutRequest>,
    ) -> Result<Response<pb::Checkout>, Status> {
        use pb::create_checkout_request::Target;
        let caller = auth::caller(&request)?.clone();
        let request = request.into_inner();
        let mut violations = Vec::new();
        let wanted = checkout_request(&self.checkouts, &request, &mut violations);
        if let Some(wanted) = &wanted {
            // A flow that cannot run here says so before anything else.
            self.checkouts.check_available(wanted.flow)?;
        }
        let order_id = match &request.target {
            None => {
                violations.push(FieldViolation::new(
                    "target",
                    "name an order_id or catalogue items",
                ));
                None
            }
            Some(Target::OrderId(raw)) => match OrderId::parse(raw) {
                Ok(id) => Some(id.as_str().to_owned()),
                Err(why) => {
                    violations.push(FieldViolation::new("order_id", why));
                    None
                }
            },
            Some(Target::Catalogue(_)) => None,
        };
        let (Some(wanted), true) = (wanted, violations.is_empty()) else {
            return Err(OrderError::InvalidArgument(violations).into());
        };
        let order_id = match (order_id, request.target) {
            (Some(order_id), _) => {
                let order = self
                    .checkouts
                    .db()
                    .get_order(&order_id)
                    .await
                    .map_err(OrderError::from)?;
                caller.may_check_out_order(order.as_ref().map(|o| o.customer_id.as_str()))?;
                order_id
            }
            (None, Some(Target::Catalogue(catalogue_order))) => {
                let customer_id = caller.checkout_customer(&catalogue_order.customer_id)?;
                let catalogue = self.checkouts.catalogue()?;
                let items: Vec<RequestedItem> = catalogue_order
                    .items
                    .iter()
                    .map(|i| RequestedItem {
                        product_id: i.product_id.clone(),
                        quantity: i.quantity,
                    })
                    .collect();
                let mut draft = catalogue
                    .price(&customer_id, &items)
                    .map_err(OrderError::InvalidArgument)?;
                draft.order_id = catalogue_order.order_id.clone();
                draft.request_id = request.request_id.clone();
                let new = draft.validate().map_err(OrderError::InvalidArgument)?;
                let order = self
                    .checkouts
                    .db()
                    .writer()
                    .submit(CreateOrder(new))
                    .await
                    .map_err(CheckoutError::from)?;
                tracing::info!(order_id = %order.order_id, "order created from the catalogue");
                order.order_id.as_str().to_owned()
            }
            (None, _) => {
                return Err(OrderError::InvalidArgument(vec![FieldViolation::new(
                    "target",
                    "name an order_id or catalogue items",
                )])
                .into());
            }
        };
        tracing::Span::current().record("order_id", order_id.as_str());
        let (order, result) = self.checkouts.checkout(&order_id, &wanted).await?;
        tracing::info!(
            attempt = result.attempt,
            payment = %result.provider_payment_id,
            "checkout ready"
        );
        Ok(Response::new(pb::Checkout {
            order: Some(order_to_proto(order)),
            flow: flow_to_proto(wanted.flow).into(),
            attempt: result.attempt,
            provider_payment_id: result.provider_payment_id,
            client_secret: result.client_secret,
            publishable_key: result.publishable_key,
            provider_customer_id: result.provider_customer_id,
            ephemeral_key_secret: result.ephemeral_key_secret,
            url: result.url,
        }))
    }
}

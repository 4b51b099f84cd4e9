//! `fulfil.v1.PaymentEventService`: the adapter's entry point, plus audit
//! listing and the operator's re-apply call.

use fulfil_proto::Identifier;
use fulfil_proto::v1 as pb;
use pb::payment_event_service_server::PaymentEventService;
use pb::record_payment_event_response::Outcome as PbOutcome;
use tonic::{Request, Response, Status};

use super::convert::{event_from_proto, event_to_proto, order_to_proto, timestamp};
use super::page_token::Paging;
use super::{fields, status::invalid_argument};
use crate::auth::{self, Scope};
use crate::metrics::Metrics;
use crate::order::{FieldViolation, OrderError, OrderId};
use crate::payment_event::Outcome;
use crate::storage::{Database, EventFilter};

/// Serves `PaymentEventService` from a [`Database`].
#[derive(Debug, Clone)]
pub struct PaymentEventApi {
    db: Database,
    metrics: Metrics,
}

impl PaymentEventApi {
    /// A service over `db`, counting recorded events in `metrics`.
    pub fn new(db: Database, metrics: Metrics) -> Self {
        PaymentEventApi { db, metrics }
    }
}

fn outcome_to_proto(outcome: Outcome) -> PbOutcome {
    match outcome {
        Outcome::Applied => PbOutcome::Applied,
        Outcome::Unmatched => PbOutcome::Unmatched,
        Outcome::Ignored => PbOutcome::Ignored,
        Outcome::Mismatch => PbOutcome::Mismatch,
    }
}

fn outcome_from_proto(value: i32) -> Result<Option<Outcome>, FieldViolation> {
    match PbOutcome::try_from(value) {
        Ok(PbOutcome::Unspecified) => Ok(None),
        Ok(PbOutcome::Applied) => Ok(Some(Outcome::Applied)),
        Ok(PbOutcome::Unmatched) => Ok(Some(Outcome::Unmatched)),
        Ok(PbOutcome::Ignored) => Ok(Some(Outcome::Ignored)),
        Ok(PbOutcome::Mismatch) => Ok(Some(Outcome::Mismatch)),
        Ok(PbOutcome::Duplicate) | Err(_) => {
            Err(FieldViolation::new("outcome", "is not a stored outcome"))
        }
    }
}

#[tonic::async_trait]
impl PaymentEventService for PaymentEventApi {
    #[tracing::instrument(skip_all, fields(source, event_id, kind, outcome))]
    async fn record_payment_event(
        &self,
        request: Request<pb::RecordPaymentEventRequest>,
    ) -> Result<Response<pb::RecordPaymentEventResponse>, Status> {
        // Only the adapter's identity records events; no other scope does.
        auth::caller(&request)?.require(Scope::PaymentEventsWrite)?;
        let Some(event) = request.into_inner().event else {
            return Err(invalid_argument(&[FieldViolation::new(
                "event",
                "is required",
            )]));
        };
        let event = event_from_proto(event).map_err(OrderError::InvalidArgument)?;
        event.validate().map_err(OrderError::InvalidArgument)?;
        let span = tracing::Span::current();
        span.record("source", event.source.as_str());
        span.record("event_id", event.event_id.as_str());
        span.record("kind", event.kind.as_str());
        let provider = event.provider.clone();

        let recorded = self.db.writer().record(event).await?;
        span.record("outcome", recorded.outcome.as_str());
        self.metrics.payment_event_recorded(
            &provider,
            if recorded.duplicate {
                "DUPLICATE"
            } else {
                recorded.outcome.as_str()
            },
        );
        tracing::info!(duplicate = recorded.duplicate, "payment event recorded");
        let first = outcome_to_proto(recorded.outcome);
        Ok(Response::new(pb::RecordPaymentEventResponse {
            outcome: if recorded.duplicate {
                PbOutcome::Duplicate
            } else {
                first
            }
            .into(),
            first_outcome: first.into(),
            order: recorded.order.map(order_to_proto),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn list_payment_events(
        &self,
        request: Request<pb::ListPaymentEventsRequest>,
    ) -> Result<Response<pb::ListPaymentEventsResponse>, Status> {
        auth::caller(&request)?.require(Scope::OrdersAdmin)?;
        let request = request.into_inner();
        let mut violations = Vec::new();
        let outcome = outcome_from_proto(request.outcome).unwrap_or_else(|v| {
            violations.push(v);
            None
        });
        let filter = EventFilter {
            order_id: fields::optional_order_id("order_id", &request.order_id, &mut violations),
            source: fields::optional_identifier("source", Some(request.source), &mut violations),
            outcome,
        };
        let scope = format!(
            "events|{}|{}|{}",
            filter.order_id.as_ref().map_or("", OrderId::as_str),
            filter.source.as_ref().map_or("", Identifier::as_str),
            filter.outcome.map_or("", Outcome::as_str)
        );
        let paging = Paging::parse(
            request.page_size,
            &request.page_token,
            scope,
            &mut violations,
        );
        if !violations.is_empty() {
            return Err(invalid_argument(&violations));
        }
        let page = self
            .db
            .list_payment_events(&filter, paging.after, paging.size, request.include_payload)
            .await
            .map_err(OrderError::from)?;
        Ok(Response::new(pb::ListPaymentEventsResponse {
            next_page_token: paging.next_token(page.next_after),
            events: page
                .items
                .into_iter()
                .map(|recorded| pb::RecordedPaymentEvent {
                    outcome: outcome_to_proto(recorded.outcome).into(),
                    order_id: recorded.order_id.unwrap_or_default(),
                    record_time: Some(timestamp(recorded.record_time)),
                    note: recorded.note.unwrap_or_default(),
                    event: Some(event_to_proto(recorded.event)),
                })
                .collect(),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn reapply_unmatched_events(
        &self,
        request: Request<pb::ReapplyUnmatchedEventsRequest>,
    ) -> Result<Response<pb::ReapplyUnmatchedEventsResponse>, Status> {
        auth::caller(&request)?.require(Scope::OrdersAdmin)?;
        let counts = self.db.reapply_unmatched().await?;
        tracing::info!(
            applied = counts.applied,
            still_unmatched = counts.still_unmatched,
            "unmatched events re-applied"
        );
        Ok(Response::new(pb::ReapplyUnmatchedEventsResponse {
            applied: i32::try_from(counts.applied).unwrap_or(i32::MAX),
            still_unmatched: i32::try_from(counts.still_unmatched).unwrap_or(i32::MAX),
        }))
    }
}

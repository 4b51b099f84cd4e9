//! `fulfil.v1.OrderService`: the gRPC face of the order domain.

use fulfil_proto::Identifier;
use fulfil_proto::v1 as pb;
use pb::order_service_server::OrderService;
use tonic::{Request, Response, Status};

use super::convert::{draft_from_proto, order_to_proto, state_from_proto};
use super::page_token::Paging;
use super::{fields, status::invalid_argument};
use crate::auth::{self, Scope, expiry::until_expiry};
use crate::checkout::Checkouts;
use crate::order::{FieldViolation, OrderError, OrderId};
use crate::storage::{ChangeState, Command, CreateOrder, Database, ListFilter};
use crate::stream::watch::{Event, Selector};
use crate::stream::{Hub, cursor};

const MAX_CANCEL_REASON_LEN: usize = 500;

/// Serves `OrderService` from a [`Database`], streams from a [`Hub`].
#[derive(Debug, Clone)]
pub struct OrderApi {
    db: Database,
    hub: Hub,
    checkouts: Option<Checkouts>,
}

impl OrderApi {
    /// A service over `hub`'s database.
    pub fn new(hub: Hub) -> Self {
        OrderApi {
            db: hub.db().clone(),
            hub,
            checkouts: None,
        }
    }

    /// CancelOrder also cancels the order's open payment at its provider.
    pub fn with_checkouts(mut self, checkouts: Checkouts) -> Self {
        self.checkouts = Some(checkouts);
        self
    }
}

/// The response stream of a watch: the stream task's outbox, unboxed.
pub type OutboxStream<M> =
    std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Result<M, Status>> + Send>>;

fn outbox_stream<M: Send + 'static>(
    rx: tokio::sync::mpsc::Receiver<Result<Box<M>, Box<Status>>>,
) -> OutboxStream<M> {
    use tokio_stream::StreamExt;
    Box::pin(
        tokio_stream::wrappers::ReceiverStream::new(rx)
            .map(|item| item.map(|m| *m).map_err(|s| *s)),
    )
}

/// Messages queued per stream before the stream's task waits for the client.
const STREAM_QUEUE: usize = 16;

fn change(entry: &crate::storage::FeedEntry) -> pb::OrderChange {
    pb::OrderChange {
        order: Some(order_to_proto(entry.order.clone())),
        cursor: cursor::encode(entry.seq),
        commit_time: Some(super::convert::timestamp(entry.commit_time)),
    }
}

/// Checks the `order_id` of a request that names an existing order.
fn order_id_field(raw: &str) -> Result<String, Status> {
    OrderId::parse(raw)
        .map(|id| id.as_str().to_owned())
        .map_err(|why| invalid_argument(&[FieldViolation::new("order_id", why)]))
}

/// The `states` filter of a request; unknown values are violations.
fn states_field(
    values: &[i32],
    violations: &mut Vec<FieldViolation>,
) -> Vec<crate::order::OrderState> {
    let mut states = Vec::with_capacity(values.len());
    for (i, value) in values.iter().enumerate() {
        match state_from_proto(*value) {
            Some(state) => states.push(state),
            None => violations.push(FieldViolation::new(
                format!("states[{i}]"),
                "is not a known order state",
            )),
        }
    }
    states
}

fn expected_version(raw: i64) -> Result<Option<i64>, Status> {
    match raw {
        0 => Ok(None),
        v if v > 0 => Ok(Some(v)),
        _ => Err(invalid_argument(&[FieldViolation::new(
            "expected_version",
            "must not be negative",
        )])),
    }
}

impl OrderApi {
    /// Cancels the order's open payment at the provider when the cancel is
    /// going to take effect. Provider first: if it cannot be reached the
    /// cancel fails UNAVAILABLE and nothing changes, so an order never says
    /// CANCELLED while its customer can still pay it.
    async fn cancel_payment_first(
        &self,
        checkouts: &Checkouts,
        order_id: &str,
        expected_version: Option<i64>,
    ) -> Result<(), Status> {
        let Some(order) = self
            .db
            .get_order(order_id)
            .await
            .map_err(OrderError::from)?
        else {
            return Ok(());
        };
        let takes_effect = matches!(order.state.cancel(), Ok(crate::order::Transition::To(_)))
            && expected_version.is_none_or(|v| v == order.version);
        if takes_effect {
            checkouts.cancel_open_payment(order_id).await?;
        }
        Ok(())
    }
}

#[tonic::async_trait]
impl OrderService for OrderApi {
    type WatchOrderStream = OutboxStream<pb::WatchOrderResponse>;
    type WatchOrdersStream = OutboxStream<pb::WatchOrdersResponse>;

    #[tracing::instrument(skip_all, fields(order_id = %request.get_ref().order_id))]
    async fn watch_order(
        &self,
        request: Request<pb::WatchOrderRequest>,
    ) -> Result<Response<Self::WatchOrderStream>, Status> {
        use pb::watch_order_response::Event as Out;
        let caller = auth::caller(&request)?;
        let expires_at = caller.expires_at;
        let order_id = order_id_field(&request.get_ref().order_id)?;
        // Position first, then the order: every change after the position
        // is at least as new as the order sent first, and older versions
        // are skipped below.
        let head = self.db.feed_head().await.map_err(OrderError::from)?;
        let order = self
            .db
            .get_order(&order_id)
            .await
            .map_err(OrderError::from)?;
        caller.may_read_order(order.as_ref().map(|o| o.customer_id.as_str()))?;
        let order = order.ok_or_else(|| OrderError::NotFound(order_id.clone()))?;
        let (tx, rx) = tokio::sync::mpsc::channel(STREAM_QUEUE);
        let first = pb::WatchOrderResponse {
            event: Some(Out::Change(pb::OrderChange {
                order: Some(order_to_proto(order.clone())),
                cursor: cursor::encode(head),
                commit_time: Some(super::convert::timestamp(order.update_time)),
            })),
        };
        tx.send(Ok(Box::new(first)))
            .await
            .map_err(|_| Status::cancelled("client went away"))?;
        let selector = Selector {
            order_id: Some(order_id),
            ..Selector::default()
        };
        let mut sent_version = order.version;
        tokio::spawn(crate::stream::watch::run(
            self.hub.clone(),
            selector,
            head,
            tx,
            move |event| {
                pb::WatchOrderResponse {
                    event: Some(match event {
                        Event::Change(entry) if entry.order.version > sent_version => {
                            sent_version = entry.order.version;
                            Out::Change(change(&entry))
                        }
                        // A version already sent (it was current when the
                        // stream began): report progress instead.
                        Event::Change(entry) => Out::Progress(pb::Progress {
                            cursor: cursor::encode(entry.seq),
                        }),
                        Event::Progress(seq) => Out::Progress(pb::Progress {
                            cursor: cursor::encode(seq),
                        }),
                    }),
                }
            },
        ));
        Ok(Response::new(until_expiry(outbox_stream(rx), expires_at)))
    }

    #[tracing::instrument(skip_all)]
    async fn watch_orders(
        &self,
        request: Request<pb::WatchOrdersRequest>,
    ) -> Result<Response<Self::WatchOrdersStream>, Status> {
        use pb::watch_orders_request::Start;
        use pb::watch_orders_response::Event as Out;
        let caller = auth::caller(&request)?;
        // App clients watch their own orders only, whatever they ask for.
        let customer_id = caller.customer_filter(&request.get_ref().customer_id)?;
        let expires_at = caller.expires_at;
        let request = request.into_inner();
        let mut violations = Vec::new();
        let customer_id = fields::optional_identifier("customer_id", customer_id, &mut violations);
        let states = states_field(&request.states, &mut violations);
        let start = match request.start {
            None | Some(Start::FromNow(_)) => {
                self.db.feed_head().await.map_err(OrderError::from)?
            }
            Some(Start::FromBeginning(_)) => {
                self.db.feed_horizon().await.map_err(OrderError::from)?
            }
            Some(Start::AfterCursor(text)) => match cursor::decode(&text) {
                Some(seq) => {
                    if seq < self.db.feed_horizon().await.map_err(OrderError::from)? {
                        return Err(crate::stream::watch::StreamError::CursorExpired.into());
                    }
                    seq
                }
                None => {
                    violations.push(FieldViolation::new(
                        "after_cursor",
                        "is not a cursor this service issued",
                    ));
                    0
                }
            },
        };
        if !violations.is_empty() {
            return Err(invalid_argument(&violations));
        }
        let selector = Selector {
            order_id: None,
            customer_id: customer_id.map(Identifier::into_string),
            states,
        };
        let (tx, rx) = tokio::sync::mpsc::channel(STREAM_QUEUE);
        tokio::spawn(crate::stream::watch::run(
            self.hub.clone(),
            selector,
            start,
            tx,
            |event| pb::WatchOrdersResponse {
                event: Some(match event {
                    Event::Change(entry) => Out::Change(change(&entry)),
                    Event::Progress(seq) => Out::Progress(pb::Progress {
                        cursor: cursor::encode(seq),
                    }),
                }),
            },
        ));
        Ok(Response::new(until_expiry(outbox_stream(rx), expires_at)))
    }

    #[tracing::instrument(skip_all, fields(order_id, customer_id = %request.get_ref().customer_id))]
    async fn create_order(
        &self,
        request: Request<pb::CreateOrderRequest>,
    ) -> Result<Response<pb::Order>, Status> {
        auth::caller(&request)?.require(Scope::OrdersWrite)?;
        let new = draft_from_proto(request.into_inner())
            .validate()
            .map_err(OrderError::InvalidArgument)?;
        let order = self.db.writer().submit(CreateOrder(new)).await?;
        tracing::Span::current().record("order_id", order.order_id.as_str());
        tracing::info!(version = order.version, "order created");
        Ok(Response::new(order_to_proto(order)))
    }

    #[tracing::instrument(skip_all, fields(order_id = %request.get_ref().order_id))]
    async fn get_order(
        &self,
        request: Request<pb::GetOrderRequest>,
    ) -> Result<Response<pb::Order>, Status> {
        let caller = auth::caller(&request)?;
        let order_id = order_id_field(&request.get_ref().order_id)?;
        let order = self
            .db
            .get_order(&order_id)
            .await
            .map_err(OrderError::from)?;
        caller.may_read_order(order.as_ref().map(|o| o.customer_id.as_str()))?;
        let order = order.ok_or(OrderError::NotFound(order_id))?;
        Ok(Response::new(order_to_proto(order)))
    }

    #[tracing::instrument(skip_all)]
    async fn list_orders(
        &self,
        request: Request<pb::ListOrdersRequest>,
    ) -> Result<Response<pb::ListOrdersResponse>, Status> {
        // App clients list their own orders only.
        let customer_id =
            auth::caller(&request)?.customer_filter(&request.get_ref().customer_id)?;
        let request = request.into_inner();
        let mut violations = Vec::new();
        let customer_id = fields::optional_identifier("customer_id", customer_id, &mut violations);
        let states = states_field(&request.states, &mut violations);
        let filter = ListFilter {
            customer_id,
            states,
        };
        let scope = {
            let mut names: Vec<&str> = filter.states.iter().map(|s| s.as_str()).collect();
            names.sort_unstable();
            names.dedup();
            format!(
                "orders|{}|{}",
                filter.customer_id.as_ref().map_or("", Identifier::as_str),
                names.join(",")
            )
        };
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
            .list_orders(&filter, paging.after, paging.size)
            .await
            .map_err(OrderError::from)?;
        Ok(Response::new(pb::ListOrdersResponse {
            next_page_token: paging.next_token(page.next_after),
            orders: page.items.into_iter().map(order_to_proto).collect(),
        }))
    }

    #[tracing::instrument(skip_all, fields(order_id = %request.get_ref().order_id))]
    async fn cancel_order(
        &self,
        request: Request<pb::CancelOrderRequest>,
    ) -> Result<Response<pb::Order>, Status> {
        auth::caller(&request)?.require(Scope::OrdersWrite)?;
        let request = request.into_inner();
        let order_id = order_id_field(&request.order_id)?;
        if request.reason.chars().count() > MAX_CANCEL_REASON_LEN {
            return Err(invalid_argument(&[FieldViolation::new(
                "reason",
                format!("must be at most {MAX_CANCEL_REASON_LEN} characters"),
            )]));
        }
        // One line for UIs and logs; PostgreSQL could not store U+0000 anyway.
        if request.reason.chars().any(char::is_control) {
            return Err(invalid_argument(&[FieldViolation::new(
                "reason",
                "must not contain control characters",
            )]));
        }
        let expected_version = expected_version(request.expected_version)?;
        if let Some(checkouts) = &self.checkouts {
            self.cancel_payment_first(checkouts, &order_id, expected_version)
                .await?;
        }
        let change = ChangeState {
            order_id,
            expected_version,
            command: Command::Cancel {
                reason: Some(request.reason).filter(|r| !r.is_empty()),
            },
        };
        let order = self.db.writer().submit(change).await?;
        tracing::info!(version = order.version, state = %order.state, "cancel applied");
        Ok(Response::new(order_to_proto(order)))
    }

    #[tracing::instrument(skip_all, fields(order_id = %request.get_ref().order_id))]
    async fn fulfil_order(
        &self,
        request: Request<pb::FulfilOrderRequest>,
    ) -> Result<Response<pb::Order>, Status> {
        auth::caller(&request)?.require(Scope::OrdersWrite)?;
        let request = request.into_inner();
        let change = ChangeState {
            order_id: order_id_field(&request.order_id)?,
            expected_version: expected_version(request.expected_version)?,
            command: Command::Fulfil,
        };
        let order = self.db.writer().submit(change).await?;
        tracing::info!(version = order.version, state = %order.state, "fulfil applied");
        Ok(Response::new(order_to_proto(order)))
    }
}

//! `fulfil watch`: print order changes as they are committed.

use clap::Args;
use fulfil_proto::v1::order_service_client::OrderServiceClient;
use fulfil_proto::v1::watch_orders_request::Start;
use fulfil_proto::v1::{
    Order, OrderChange, WatchOrderRequest, WatchOrdersRequest, order, watch_order_response,
    watch_orders_response,
};

/// Options of `watch`.
#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Watch one order (its current state first).
    #[arg(long, conflicts_with_all = ["customer_id", "after"])]
    pub order_id: Option<String>,
    /// Only this customer's orders.
    #[arg(long)]
    pub customer_id: Option<String>,
    /// Resume after this cursor (printed with every change).
    #[arg(long)]
    pub after: Option<String>,
    /// Print the retained history first.
    #[arg(long, conflicts_with = "after")]
    pub from_beginning: bool,
    /// The fulfilment service.
    #[arg(
        long,
        env = "FULFIL_GRPC_URL",
        default_value = "http://127.0.0.1:50051"
    )]
    pub grpc_url: String,
}

fn line(change: &OrderChange) -> String {
    let Some(order): Option<&Order> = change.order.as_ref() else {
        return format!("cursor {}", change.cursor);
    };
    let state = order::State::try_from(order.state).map_or("?", |s| s.as_str_name());
    format!(
        "{:<40} v{:<3} {:<18} paid {:>8} refunded {:>8} {}  cursor {}",
        order.order_id,
        order.version,
        state,
        order.amount_paid,
        order.amount_refunded,
        order.currency,
        change.cursor
    )
}

/// Streams until Ctrl-C or the server ends the stream.
pub async fn run(args: WatchArgs) -> anyhow::Result<()> {
    let mut client = OrderServiceClient::connect(args.grpc_url.clone()).await?;
    if let Some(order_id) = args.order_id {
        let mut stream = client
            .watch_order(WatchOrderRequest { order_id })
            .await?
            .into_inner();
        while let Some(message) = stream.message().await? {
            if let Some(watch_order_response::Event::Change(change)) = message.event {
                println!("{}", line(&change));
            }
        }
        return Ok(());
    }
    let start = match (args.after, args.from_beginning) {
        (Some(cursor), _) => Start::AfterCursor(cursor),
        (None, true) => Start::FromBeginning(true),
        (None, false) => Start::FromNow(true),
    };
    let request = WatchOrdersRequest {
        customer_id: args.customer_id.unwrap_or_default(),
        states: Vec::new(),
        start: Some(start),
    };
    let mut stream = client.watch_orders(request).await?.into_inner();
    while let Some(message) = stream.message().await? {
        if let Some(watch_orders_response::Event::Change(change)) = message.event {
            println!("{}", line(&change));
        }
    }
    Ok(())
}

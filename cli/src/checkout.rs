//! `fulfil checkout`: start (or fetch the open) checkout of an order, or of
//! catalogue items, and print what the app needs: the PaymentSheet's client
//! secret, customer and ephemeral key, or the hosted page's URL.

use clap::{Args, ValueEnum};
use fulfil_proto::v1::checkout_service_client::CheckoutServiceClient;
use fulfil_proto::v1::create_checkout_request::Target;
use fulfil_proto::v1::{CatalogueOrder, CheckoutFlow, CheckoutItem, CreateCheckoutRequest};

/// How the customer pays.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Flow {
    /// Stripe's mobile PaymentSheet.
    PaymentSheet,
    /// A Stripe-hosted Checkout page.
    Hosted,
}

/// Options of `checkout`.
#[derive(Debug, Args)]
pub struct CheckoutArgs {
    /// An existing order.
    #[arg(long, required_unless_present = "item", conflicts_with = "item")]
    pub order_id: Option<String>,
    /// Catalogue items as PRODUCT=QUANTITY (repeatable); an order is created
    /// at the catalogue's prices.
    #[arg(long, value_parser = parse_item)]
    pub item: Vec<(String, i64)>,
    /// The customer of a catalogue order (empty: the token's own).
    #[arg(long, default_value = "")]
    pub customer_id: String,
    /// How the customer pays.
    #[arg(long, value_enum, default_value_t = Flow::PaymentSheet)]
    pub flow: Flow,
    /// Hosted page: where to go after paying.
    #[arg(long, default_value = "")]
    pub success_url: String,
    /// Hosted page: where to go after giving up.
    #[arg(long, default_value = "")]
    pub cancel_url: String,
    /// Idempotency key of the created order (retries return the same one).
    #[arg(long, default_value = "")]
    pub request_id: String,
    /// A bearer token (see `fulfil token`).
    #[arg(long, env = "FULFIL_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// The fulfilment service.
    #[arg(
        long,
        env = "FULFIL_GRPC_URL",
        default_value = "http://127.0.0.1:50051"
    )]
    pub grpc_url: String,
}

fn parse_item(text: &str) -> Result<(String, i64), String> {
    let (product, quantity) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?}: expected PRODUCT=QUANTITY"))?;
    let quantity = quantity
        .parse::<i64>()
        .map_err(|_| format!("{text:?}: the quantity is not a number"))?;
    Ok((product.to_owned(), quantity))
}

pub async fn run(args: CheckoutArgs) -> anyhow::Result<()> {
    let target = match &args.order_id {
        Some(order_id) => Target::OrderId(order_id.clone()),
        None => Target::Catalogue(CatalogueOrder {
            customer_id: args.customer_id.clone(),
            items: args
                .item
                .iter()
                .map(|(product_id, quantity)| CheckoutItem {
                    product_id: product_id.clone(),
                    quantity: *quantity,
                })
                .collect(),
            order_id: String::new(),
        }),
    };
    let flow = match args.flow {
        Flow::PaymentSheet => CheckoutFlow::StripePaymentSheet,
        Flow::Hosted => CheckoutFlow::StripeCheckoutSession,
    };
    let mut request = tonic::Request::new(CreateCheckoutRequest {
        target: Some(target),
        flow: flow.into(),
        success_url: args.success_url,
        cancel_url: args.cancel_url,
        request_id: args.request_id,
        ..Default::default()
    });
    if let Some(token) = &args.token {
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse()?);
    }
    let channel = tonic::transport::Endpoint::from_shared(args.grpc_url.clone())?
        .connect_timeout(std::time::Duration::from_secs(5))
        .timeout(std::time::Duration::from_secs(60))
        .connect()
        .await?;
    let checkout = CheckoutServiceClient::new(channel)
        .create_checkout(request)
        .await
        .map_err(|status| anyhow::anyhow!("{}: {}", status.code(), status.message()))?
        .into_inner();
    let order = checkout.order.unwrap_or_default();
    println!("order_id              {}", order.order_id);
    println!(
        "amount                {} {}",
        order.amount_total, order.currency
    );
    println!("attempt               {}", checkout.attempt);
    println!("payment               {}", checkout.provider_payment_id);
    println!("customer              {}", checkout.provider_customer_id);
    if checkout.url.is_empty() {
        println!("client_secret         {}", checkout.client_secret);
        println!("ephemeral_key_secret  {}", checkout.ephemeral_key_secret);
        println!("publishable_key       {}", checkout.publishable_key);
    } else {
        println!("url                   {}", checkout.url);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_are_product_equals_quantity() {
        assert_eq!(parse_item("tee=2"), Ok(("tee".to_owned(), 2)));
        assert!(parse_item("tee").is_err());
        assert!(parse_item("tee=two").is_err());
    }
}

//! The product catalogue: what app clients may buy and at which price.
//!
//! A TOML file, parsed once into typed values; an app client names products
//! and quantities only, and the prices come from here, never from the
//! client. [`CatalogueHandle`] holds the current catalogue and swaps in a
//! new one on reload; a file that does not parse keeps the old one.
//!
//! ```toml
//! [products.tee-black-m]
//! name = "T-shirt, black, M"
//! unit_amount = 1950          # minor units
//! currency = "eur"
//! stripe_price = "price_123"  # optional: a Stripe Price for hosted pages
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use crate::order::{Currency, FieldViolation, LineItemDraft, OrderDraft};

/// One product, as sold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Product {
    /// The id clients name (the order's `sku`).
    pub product_id: String,
    /// Shown on hosted pages.
    pub name: String,
    /// Price of one unit, minor units.
    pub unit_amount: i64,
    /// Currency of the price.
    pub currency: Currency,
    /// The Stripe Price with the same amount, when there is one.
    pub stripe_price: Option<String>,
}

/// Every product, by id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Catalogue {
    products: BTreeMap<String, Product>,
}

/// Why a catalogue file was refused.
#[derive(Debug, thiserror::Error)]
pub enum CatalogueError {
    /// The file could not be read.
    #[error("catalogue {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The TOML is malformed or has unknown fields.
    #[error("catalogue: {0}")]
    Syntax(String),
    /// A product is invalid.
    #[error("catalogue: product {product:?}: {problem}")]
    Product {
        /// Its id.
        product: String,
        /// What is wrong.
        problem: String,
    },
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    products: BTreeMap<String, ProductEntry>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ProductEntry {
    name: String,
    unit_amount: i64,
    currency: String,
    #[serde(default)]
    stripe_price: Option<String>,
}

/// One item a client asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestedItem {
    /// A product id.
    pub product_id: String,
    /// How many.
    pub quantity: i64,
}

impl Catalogue {
    /// Parses a catalogue document.
    pub fn parse(text: &str) -> Result<Self, CatalogueError> {
        let file: File = toml::from_str(text).map_err(|e| CatalogueError::Syntax(e.to_string()))?;
        let mut products = BTreeMap::new();
        for (product_id, entry) in file.products {
            let problem = |problem: &str| CatalogueError::Product {
                product: product_id.clone(),
                problem: problem.to_owned(),
            };
            if fulfil_proto::Identifier::parse(&product_id).is_err() {
                return Err(problem(
                    "the id is not an identifier (1-256 bytes, no control characters)",
                ));
            }
            if entry.unit_amount < 0 {
                return Err(problem("unit_amount must not be negative"));
            }
            let currency = Currency::parse(&entry.currency)
                .ok_or_else(|| problem("currency is not an ISO 4217 code"))?;
            if entry.name.trim().is_empty() {
                return Err(problem("name must not be empty"));
            }
            if entry
                .stripe_price
                .as_deref()
                .is_some_and(|p| !p.starts_with("price_"))
            {
                return Err(problem(
                    "stripe_price must be a Stripe Price id (price_...)",
                ));
            }
            products.insert(
                product_id.clone(),
                Product {
                    product_id,
                    name: entry.name,
                    unit_amount: entry.unit_amount,
                    currency,
                    stripe_price: entry.stripe_price,
                },
            );
        }
        Ok(Catalogue { products })
    }

    /// Reads and parses a catalogue file.
    pub fn load(path: &Path) -> Result<Self, CatalogueError> {
        let text = std::fs::read_to_string(path).map_err(|source| CatalogueError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text)
    }

    /// The product with this id.
    pub fn product(&self, product_id: &str) -> Option<&Product> {
        self.products.get(product_id)
    }

    /// How many products there are.
    pub fn len(&self) -> usize {
        self.products.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.products.is_empty()
    }

    /// An order draft for `items` at the catalogue's prices, or the
    /// violations (unknown products, mixed currencies). Quantities and the
    /// rest are validated with every other order.
    pub fn price(
        &self,
        customer_id: &str,
        items: &[RequestedItem],
    ) -> Result<OrderDraft, Vec<FieldViolation>> {
        let mut violations = Vec::new();
        let mut currency: Option<Currency> = None;
        let mut line_items = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let Some(product) = self.product(&item.product_id) else {
                violations.push(FieldViolation::new(
                    format!("catalogue.items[{i}].product_id"),
                    "is not a product of the catalogue",
                ));
                continue;
            };
            match currency {
                Some(c) if c != product.currency => violations.push(FieldViolation::new(
                    format!("catalogue.items[{i}].product_id"),
                    format!(
                        "is priced in {}, the other items in {}",
                        product.currency.as_str(),
                        c.as_str()
                    ),
                )),
                _ => currency = Some(product.currency),
            }
            line_items.push(LineItemDraft {
                sku: product.product_id.clone(),
                quantity: item.quantity,
                unit_amount: product.unit_amount,
            });
        }
        if items.is_empty() {
            violations.push(FieldViolation::new(
                "catalogue.items",
                "at least one item is required",
            ));
        }
        if !violations.is_empty() {
            return Err(violations);
        }
        Ok(OrderDraft {
            customer_id: customer_id.to_owned(),
            line_items,
            currency: currency.map(|c| c.as_str().to_owned()).unwrap_or_default(),
            ..OrderDraft::default()
        })
    }
}

/// The current catalogue, shared by the request handlers, replaced whole on
/// reload.
#[derive(Debug, Clone)]
pub struct CatalogueHandle {
    path: Option<PathBuf>,
    current: Arc<RwLock<Arc<Catalogue>>>,
}

impl CatalogueHandle {
    /// A fixed catalogue (tests, or none configured).
    pub fn fixed(catalogue: Catalogue) -> Self {
        CatalogueHandle {
            path: None,
            current: Arc::new(RwLock::new(Arc::new(catalogue))),
        }
    }

    /// The catalogue in `path`; fails when it cannot be loaded at start.
    pub fn open(path: &Path) -> Result<Self, CatalogueError> {
        let catalogue = Catalogue::load(path)?;
        Ok(CatalogueHandle {
            path: Some(path.to_owned()),
            current: Arc::new(RwLock::new(Arc::new(catalogue))),
        })
    }

    /// The catalogue now.
    pub fn get(&self) -> Arc<Catalogue> {
        // A poisoned lock still holds a whole catalogue (the swap is one
        // assignment), so it is safe to keep serving it.
        match self.current.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Reads the file again; a file that does not load keeps the current
    /// catalogue and says why.
    pub fn reload(&self) -> Result<usize, CatalogueError> {
        let Some(path) = &self.path else {
            return Ok(self.get().len());
        };
        let catalogue = Arc::new(Catalogue::load(path)?);
        let count = catalogue.len();
        match self.current.write() {
            Ok(mut guard) => *guard = catalogue,
            Err(poisoned) => *poisoned.into_inner() = catalogue,
        }
        Ok(count)
    }

    /// Reloads on every SIGHUP until the process ends, logging the outcome.
    pub fn reload_on_sighup(&self) {
        #[cfg(unix)]
        {
            let handle = self.clone();
            tokio::spawn(async move {
                use tokio::signal::unix::{SignalKind, signal};
                let Ok(mut hangups) = signal(SignalKind::hangup()) else {
                    tracing::warn!("catalogue: cannot listen for SIGHUP; reload needs a restart");
                    return;
                };
                while hangups.recv().await.is_some() {
                    match handle.reload() {
                        Ok(products) => tracing::info!(products, "catalogue reloaded"),
                        Err(err) => tracing::error!(
                            error = %err,
                            "catalogue reload failed; keeping the previous catalogue"
                        ),
                    }
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = r#"
        [products.tee]
        name = "T-shirt"
        unit_amount = 1950
        currency = "eur"
        stripe_price = "price_tee"

        [products.mug]
        name = "Mug"
        unit_amount = 900
        currency = "EUR"

        [products.hat]
        name = "Hat"
        unit_amount = 1000
        currency = "usd"
    "#;

    fn item(product_id: &str, quantity: i64) -> RequestedItem {
        RequestedItem {
            product_id: product_id.into(),
            quantity,
        }
    }

    #[test]
    fn prices_come_from_the_catalogue() {
        let catalogue = Catalogue::parse(DOC).expect("parses");
        assert_eq!(catalogue.len(), 3);
        let tee = catalogue.product("tee").expect("tee");
        assert_eq!(tee.currency.as_str(), "EUR");
        assert_eq!(tee.stripe_price.as_deref(), Some("price_tee"));
        let draft = catalogue
            .price("user_42", &[item("tee", 2), item("mug", 1)])
            .expect("priced");
        assert_eq!(draft.currency, "EUR");
        assert_eq!(draft.customer_id, "user_42");
        let amounts: Vec<(String, i64, i64)> = draft
            .line_items
            .iter()
            .map(|l| (l.sku.clone(), l.quantity, l.unit_amount))
            .collect();
        assert_eq!(amounts, [("tee".into(), 2, 1950), ("mug".into(), 1, 900)]);
        let order = draft.validate().expect("valid order");
        assert_eq!(order.amount_total, 4800);
    }

    #[test]
    fn unknown_products_and_mixed_currencies_are_refused() {
        let catalogue = Catalogue::parse(DOC).expect("parses");
        let err = catalogue
            .price("u", &[item("tee", 1), item("nope", 1), item("hat", 1)])
            .expect_err("refused");
        let fields: Vec<&str> = err.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "catalogue.items[1].product_id",
                "catalogue.items[2].product_id"
            ]
        );
        assert!(catalogue.price("u", &[]).is_err());
    }

    #[test]
    fn bad_documents_are_refused_with_the_reason() {
        for (doc, needle) in [
            (
                "[products.a]\nname='A'\nunit_amount=-1\ncurrency='eur'",
                "negative",
            ),
            (
                "[products.a]\nname='A'\nunit_amount=1\ncurrency='euro'",
                "ISO 4217",
            ),
            (
                "[products.a]\nname='A'\nunit_amount=1\ncurrency='eur'\nprice=3",
                "price",
            ),
            (
                "[products.a]\nname='A'\nunit_amount=1\ncurrency='eur'\nstripe_price='x'",
                "price_",
            ),
            ("products = 3", "catalogue"),
        ] {
            let err = Catalogue::parse(doc).expect_err(doc).to_string();
            assert!(err.contains(needle), "{doc}: {err}");
        }
    }

    #[test]
    fn a_bad_reload_keeps_the_previous_catalogue() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("catalogue.toml");
        std::fs::write(&path, DOC).expect("write");
        let handle = CatalogueHandle::open(&path).expect("opens");
        std::fs::write(&path, "[products.x]\nname='X'").expect("write");
        assert!(handle.reload().is_err());
        assert_eq!(handle.get().len(), 3);
        std::fs::write(
            &path,
            "[products.x]\nname='X'\nunit_amount=5\ncurrency='gbp'",
        )
        .expect("write");
        assert_eq!(handle.reload().expect("reloads"), 1);
        assert!(handle.get().product("x").is_some());
    }
}

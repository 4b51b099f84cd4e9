//! Webhook signature verification, one module per scheme.

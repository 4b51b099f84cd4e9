//! Provider payloads to provider-neutral payment events, one module per provider.

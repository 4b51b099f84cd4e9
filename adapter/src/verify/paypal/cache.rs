//! A bounded, expiring in-memory cache of certificates by URL.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::PaypalCertificate;

/// How many certificate URLs are cached (PayPal uses a handful at a time).
pub const CACHE_CAPACITY: usize = 32;
/// How long a fetched certificate is reused before it is fetched again.
/// Validity dates and the chain are checked at every use regardless.
pub const CACHE_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// A bounded URL -> certificate cache; the oldest entry goes first.
pub(super) struct CertificateCache {
    capacity: usize,
    ttl: Duration,
    entries: HashMap<String, (Arc<PaypalCertificate>, Instant)>,
    /// Insertion order, oldest first.
    order: VecDeque<String>,
}

impl CertificateCache {
    pub(super) fn new(capacity: usize, ttl: Duration) -> Self {
        CertificateCache {
            capacity: capacity.max(1),
            ttl,
            entries: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    pub(super) fn get(&self, url: &str) -> Option<Arc<PaypalCertificate>> {
        self.entries
            .get(url)
            .filter(|(_, fetched)| fetched.elapsed() <= self.ttl)
            .map(|(certificate, _)| certificate.clone())
    }

    pub(super) fn insert(&mut self, url: &str, certificate: Arc<PaypalCertificate>) {
        if let Some(entry) = self.entries.get_mut(url) {
            *entry = (certificate, Instant::now());
            return;
        }
        while self.entries.len() >= self.capacity {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            self.entries.remove(&oldest);
        }
        self.order.push_back(url.to_owned());
        self.entries
            .insert(url.to_owned(), (certificate, Instant::now()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::paypal::test_support::vector;
    use crate::verify::test_vectors::text;

    #[test]
    fn cache_is_bounded_and_expires() {
        let vector = vector();
        let certificate = Arc::new(
            PaypalCertificate::from_pem(text(&vector, "certificate_pem").as_bytes()).expect("cert"),
        );
        let mut cache = CertificateCache::new(3, Duration::from_secs(3600));
        for i in 0..5 {
            cache.insert(&format!("https://api.paypal.com/{i}"), certificate.clone());
        }
        assert_eq!(cache.entries.len(), 3);
        assert!(cache.get("https://api.paypal.com/0").is_none());
        assert!(cache.get("https://api.paypal.com/1").is_none());
        assert!(cache.get("https://api.paypal.com/4").is_some());
        // Re-inserting a present URL does not grow the cache.
        cache.insert("https://api.paypal.com/4", certificate.clone());
        assert_eq!((cache.entries.len(), cache.order.len()), (3, 3));

        let mut expired = CertificateCache::new(3, Duration::ZERO);
        expired.insert("https://api.paypal.com/a", certificate);
        std::thread::sleep(Duration::from_millis(5));
        assert!(expired.get("https://api.paypal.com/a").is_none());
    }
}

//! Which certificate URLs may be fetched, and which hosts are PayPal's.

use crate::verify::VerifyError;

/// Checks that `url` may be fetched for a PayPal signing certificate:
/// `https`, default port, no userinfo, and a PayPal host (`api.paypal.com`,
/// `api.sandbox.paypal.com`, or any host ending in `.paypal.com`).
pub fn check_certificate_url(url: &str) -> Result<url::Url, VerifyError> {
    let untrusted = |reason| VerifyError::CertificateUntrusted { reason };
    let parsed = url::Url::parse(url).map_err(|_| untrusted("certificate URL does not parse"))?;
    if parsed.scheme() != "https" {
        return Err(untrusted("certificate URL is not https"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(untrusted("certificate URL has userinfo"));
    }
    // `url` drops an explicit `:443` for https, so any port here is another one.
    if parsed.port().is_some() {
        return Err(untrusted("certificate URL has a non-default port"));
    }
    // The parser has already lower-cased and IDNA-normalised the host; an IP
    // address is never a PayPal host.
    let trusted = match parsed.host() {
        Some(url::Host::Domain(host)) => is_paypal_host(host),
        _ => false,
    };
    if !trusted {
        return Err(untrusted("certificate URL is not on a PayPal host"));
    }
    Ok(parsed)
}

pub(super) fn is_paypal_host(host: &str) -> bool {
    host == "api.paypal.com" || host == "api.sandbox.paypal.com" || host.ends_with(".paypal.com")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_url_allow_list() {
        for url in [
            "https://api.paypal.com/v1/notifications/certs/CERT-360caa42",
            "https://api.sandbox.paypal.com/v1/notifications/certs/CERT-360caa42",
            "https://api-m.paypal.com/v1/notifications/certs/CERT-1",
            "https://API.PAYPAL.COM/cert",
            "https://api.paypal.com:443/cert",
        ] {
            assert!(check_certificate_url(url).is_ok(), "{url}");
        }
    }
}

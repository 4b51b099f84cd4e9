//! Money in minor units: ISO 4217 exponents and exact conversions.
//!
//! Providers disagree on how they write money: Stripe and Paddle send
//! integers in minor units, PayPal decimal strings in major units
//! (`"10.99"`), RevenueCat and Glassfy floats in major units (`4.99`).
//! Everything here ends in an `i64` of minor units, by string arithmetic:
//! no float multiplication, so `1.005` never becomes `100.49999…`.

/// ISO 4217 currencies with no minor unit.
const EXPONENT_0: &[&str] = &[
    "BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "UYI", "VND",
    "VUV", "XAF", "XOF", "XPF",
];

/// ISO 4217 currencies with thousandths.
const EXPONENT_3: &[&str] = &["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"];

/// ISO 4217 units of account with ten-thousandths.
const EXPONENT_4: &[&str] = &["CLF", "UYW"];

/// The number of decimal places of `currency`'s minor unit (any case);
/// 2 for every code not listed as different, which is most of them.
pub fn exponent(currency: &str) -> u32 {
    let upper = currency.to_ascii_uppercase();
    let code = upper.as_str();
    if EXPONENT_0.contains(&code) {
        0
    } else if EXPONENT_3.contains(&code) {
        3
    } else if EXPONENT_4.contains(&code) {
        4
    } else {
        2
    }
}

/// Why an amount could not be converted. Messages never repeat the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    /// Not a plain decimal number (`"10.99"`, `"1000"`, `".5"`).
    #[error("not a decimal number")]
    Syntax,
    /// A negative amount where only amounts of money moved are expected.
    #[error("must not be negative")]
    Negative,
    /// More significant decimal places than the currency has.
    #[error("more decimal places than the currency's {exponent}")]
    TooPrecise {
        /// The currency's exponent.
        exponent: u32,
    },
    /// Does not fit in an `i64` of minor units.
    #[error("too large")]
    Overflow,
    /// NaN or infinite.
    #[error("not a finite number")]
    NotFinite,
}

/// Converts a decimal string in major units (`"10.99"` USD) to minor units
/// (1099), exactly: a value with more significant decimals than the
/// currency allows (`"10.999"` USD) is an error, not rounded. Trailing zeros
/// past the exponent (`"10.990"`) change nothing and are accepted.
/// Negative values are refused.
pub fn decimal_to_minor(value: &str, currency: &str) -> Result<i64, AmountError> {
    let (negative, int, frac) = split_decimal(value)?;
    if negative {
        return Err(AmountError::Negative);
    }
    scale(int, frac, exponent(currency), Rounding::Exact)
}

/// Converts a float in major units (`4.99` USD, as RevenueCat sends prices)
/// to minor units, rounding half away from zero at the currency's exponent.
///
/// The float is first written as its shortest round-trip decimal (`4.99`,
/// not `4.990000000000000213…`), which is the number the provider wrote in
/// its JSON; rounding that decimal avoids the classic `1.005 * 100 =
/// 100.4999…` error. Negative values keep their sign.
pub fn float_to_minor(value: f64, currency: &str) -> Result<i64, AmountError> {
    if !value.is_finite() {
        return Err(AmountError::NotFinite);
    }
    // Rust's `Display` for f64 is the shortest round-trip form and never uses
    // exponent notation, so it always splits as a plain decimal.
    let text = format!("{}", value.abs());
    let (_, int, frac) = split_decimal(&text)?;
    let magnitude = scale(int, frac, exponent(currency), Rounding::HalfAwayFromZero)?;
    Ok(if value < 0.0 { -magnitude } else { magnitude })
}

/// Parses an integer string that is already in minor units (`"1050"`, as
/// Paddle sends totals). Negative values are refused.
pub fn minor_units(value: &str) -> Result<i64, AmountError> {
    let (negative, int, frac) = split_decimal(value)?;
    if negative {
        return Err(AmountError::Negative);
    }
    if !frac.is_empty() || int.is_empty() {
        return Err(AmountError::Syntax);
    }
    scale(int, "", 0, Rounding::Exact)
}

#[derive(Clone, Copy)]
enum Rounding {
    Exact,
    HalfAwayFromZero,
}

/// Splits `-?digits(.digits)?` (or `-?.digits`) into sign, integer and
/// fraction digits.
fn split_decimal(value: &str) -> Result<(bool, &str, &str), AmountError> {
    let (negative, unsigned) = match value.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, value),
    };
    let (int, frac) = match unsigned.split_once('.') {
        Some((int, frac)) if !frac.is_empty() => (int, frac),
        Some(_) => return Err(AmountError::Syntax),
        None if !unsigned.is_empty() => (unsigned, ""),
        None => return Err(AmountError::Syntax),
    };
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if digits(int) && digits(frac) {
        Ok((negative, int, frac))
    } else {
        Err(AmountError::Syntax)
    }
}

/// `int.frac` times 10^exponent, from ASCII digits, with overflow checks.
fn scale(int: &str, frac: &str, exponent: u32, rounding: Rounding) -> Result<i64, AmountError> {
    fn push(acc: i64, digit: u8) -> Result<i64, AmountError> {
        acc.checked_mul(10)
            .and_then(|a| a.checked_add(i64::from(digit - b'0')))
            .ok_or(AmountError::Overflow)
    }

    let mut acc = 0i64;
    for digit in int.bytes() {
        acc = push(acc, digit)?;
    }
    let frac = frac.as_bytes();
    let places = exponent as usize;
    for i in 0..places {
        acc = push(acc, frac.get(i).copied().unwrap_or(b'0'))?;
    }
    let rest = frac.get(places..).unwrap_or_default();
    match rounding {
        Rounding::Exact if rest.iter().any(|&d| d != b'0') => {
            Err(AmountError::TooPrecise { exponent })
        }
        Rounding::Exact => Ok(acc),
        Rounding::HalfAwayFromZero if rest.first().is_some_and(|&d| d >= b'5') => {
            acc.checked_add(1).ok_or(AmountError::Overflow)
        }
        Rounding::HalfAwayFromZero => Ok(acc),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exponents_follow_iso_4217() {
        assert_eq!(exponent("USD"), 2);
        assert_eq!(exponent("eur"), 2);
        assert_eq!(exponent("JPY"), 0);
        assert_eq!(exponent("krw"), 0);
        assert_eq!(exponent("KWD"), 3);
        assert_eq!(exponent("BHD"), 3);
        assert_eq!(exponent("TND"), 3);
        assert_eq!(exponent("CLF"), 4);
        assert_eq!(exponent("ZZZ"), 2);
    }

    #[test]
    fn decimal_strings_convert_exactly() {
        assert_eq!(decimal_to_minor("10.99", "USD"), Ok(1099));
        assert_eq!(decimal_to_minor("10", "USD"), Ok(1000));
        assert_eq!(decimal_to_minor("10.9", "USD"), Ok(1090));
        assert_eq!(decimal_to_minor("0.01", "USD"), Ok(1));
        assert_eq!(decimal_to_minor(".5", "USD"), Ok(50));
        assert_eq!(decimal_to_minor("1000", "JPY"), Ok(1000));
        assert_eq!(decimal_to_minor("1.234", "KWD"), Ok(1234));
        assert_eq!(decimal_to_minor("1.2", "BHD"), Ok(1200));
        assert_eq!(decimal_to_minor("0", "USD"), Ok(0));
        assert_eq!(decimal_to_minor("007.50", "USD"), Ok(750));
        // Zeros past the exponent lose nothing.
        assert_eq!(decimal_to_minor("10.990", "USD"), Ok(1099));
        assert_eq!(decimal_to_minor("1000.0", "JPY"), Ok(1000));
    }

    #[test]
    fn decimal_strings_that_would_lose_precision_are_refused() {
        assert_eq!(
            decimal_to_minor("10.999", "USD"),
            Err(AmountError::TooPrecise { exponent: 2 })
        );
        assert_eq!(
            decimal_to_minor("1000.5", "JPY"),
            Err(AmountError::TooPrecise { exponent: 0 })
        );
        assert_eq!(
            decimal_to_minor("1.2345", "KWD"),
            Err(AmountError::TooPrecise { exponent: 3 })
        );
    }

    #[test]
    fn malformed_negative_and_huge_decimals_are_refused() {
        for bad in [
            "", "-", ".", "10.", "1,000.00", "1e3", " 10", "10 ", "+10", "0x10", "--1", "1.2.3",
            "١٠", "NaN",
        ] {
            assert_eq!(
                decimal_to_minor(bad, "USD"),
                Err(AmountError::Syntax),
                "{bad:?}"
            );
        }
        assert_eq!(
            decimal_to_minor("-10.99", "USD"),
            Err(AmountError::Negative)
        );
        assert_eq!(
            decimal_to_minor("92233720368547758.07", "USD"),
            Ok(i64::MAX)
        );
        assert_eq!(
            decimal_to_minor("92233720368547758.08", "USD"),
            Err(AmountError::Overflow)
        );
        assert_eq!(
            decimal_to_minor(&"9".repeat(400), "USD"),
            Err(AmountError::Overflow)
        );
        // Many leading zeros are still a small number.
        assert_eq!(
            decimal_to_minor(&format!("{}1", "0".repeat(400)), "USD"),
            Ok(100)
        );
    }

    #[test]
    fn floats_round_half_away_from_zero_on_their_decimal_form() {
        assert_eq!(float_to_minor(4.99, "USD"), Ok(499));
        assert_eq!(float_to_minor(0.1 + 0.2, "USD"), Ok(30));
        // 1.005 is 1.00499999999999989… in binary; its decimal form rounds up.
        assert_eq!(float_to_minor(1.005, "USD"), Ok(101));
        assert_eq!(float_to_minor(1.004, "USD"), Ok(100));
        assert_eq!(float_to_minor(1.5, "JPY"), Ok(2));
        assert_eq!(float_to_minor(1.4, "JPY"), Ok(1));
        assert_eq!(float_to_minor(1.2345, "KWD"), Ok(1235));
        assert_eq!(float_to_minor(-4.995, "USD"), Ok(-500));
        assert_eq!(float_to_minor(-0.0, "USD"), Ok(0));
        assert_eq!(float_to_minor(0.0, "USD"), Ok(0));
        assert_eq!(float_to_minor(1e-7, "USD"), Ok(0));
        assert_eq!(float_to_minor(150000.0, "KRW"), Ok(150_000));
    }

    #[test]
    fn non_finite_and_huge_floats_are_refused() {
        assert_eq!(float_to_minor(f64::NAN, "USD"), Err(AmountError::NotFinite));
        assert_eq!(
            float_to_minor(f64::INFINITY, "USD"),
            Err(AmountError::NotFinite)
        );
        assert_eq!(float_to_minor(1e300, "USD"), Err(AmountError::Overflow));
        assert_eq!(float_to_minor(f64::MAX, "USD"), Err(AmountError::Overflow));
    }

    #[test]
    fn minor_unit_strings_are_integers() {
        assert_eq!(minor_units("1050"), Ok(1050));
        assert_eq!(minor_units("0"), Ok(0));
        assert_eq!(minor_units("10.50"), Err(AmountError::Syntax));
        assert_eq!(minor_units(""), Err(AmountError::Syntax));
        assert_eq!(minor_units("-5"), Err(AmountError::Negative));
        assert_eq!(
            minor_units("99999999999999999999"),
            Err(AmountError::Overflow)
        );
    }
}

//! Backup codes: 10 one-time codes of 80 random bits each, written as four groups of four
//! lower-case Base32 characters; only keyed hashes are stored.

use rand::RngCore;

use crate::keys::hmac256;

/// Codes per set.
pub const COUNT: usize = 10;
const CODE_CHARS: usize = 16;

/// What a submitted code looks like once normalized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeInput {
    /// Six digits: a TOTP code.
    Totp(String),
    /// Sixteen Base32 characters: a backup code.
    Backup(String),
    /// Neither.
    Malformed,
}

/// Drops spaces and hyphens, lower-cases, and tells a TOTP code from a backup code.
pub fn classify(raw: &str) -> CodeInput {
    let s: String = raw
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .flat_map(char::to_lowercase)
        .collect();
    if s.len() == 6 && s.bytes().all(|b| b.is_ascii_digit()) {
        CodeInput::Totp(s)
    } else if s.len() == CODE_CHARS && s.bytes().all(|b| matches!(b, b'a'..=b'z' | b'2'..=b'7')) {
        CodeInput::Backup(s)
    } else {
        CodeInput::Malformed
    }
}

/// A fresh set: the codes to show once, and their hashes to store.
pub fn generate(key: &[u8; 32], user_id: i64) -> (Vec<String>, Vec<Vec<u8>>) {
    let mut rng = rand::rngs::OsRng;
    let mut shown = Vec::with_capacity(COUNT);
    let mut hashes = Vec::with_capacity(COUNT);
    while shown.len() < COUNT {
        let mut bytes = [0u8; 10];
        rng.fill_bytes(&mut bytes);
        let plain =
            base32::encode(base32::Alphabet::Rfc4648 { padding: false }, &bytes).to_lowercase();
        let h = hash(key, user_id, &plain);
        if hashes.contains(&h) {
            continue;
        }
        let grouped = plain
            .as_bytes()
            .chunks(4)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect::<Vec<_>>()
            .join("-");
        shown.push(grouped);
        hashes.push(h);
    }
    (shown, hashes)
}

/// The stored hash of a normalized code, bound to its user.
pub fn hash(key: &[u8; 32], user_id: i64, normalized: &str) -> Vec<u8> {
    let mut data = user_id.to_be_bytes().to_vec();
    data.extend_from_slice(normalized.as_bytes());
    hmac256(key, &data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_codes_parse_back_and_hash_alike() {
        let key = [1u8; 32];
        let (codes, hashes) = generate(&key, 3);
        assert_eq!(codes.len(), COUNT);
        for (c, h) in codes.iter().zip(&hashes) {
            assert_eq!(c.len(), 19, "{c}");
            let CodeInput::Backup(n) = classify(&c.to_uppercase()) else {
                panic!("{c}")
            };
            assert_eq!(&hash(&key, 3, &n), h);
            assert_ne!(&hash(&key, 4, &n), h);
        }
    }

    #[test]
    fn classify_inputs() {
        assert_eq!(classify("123 456"), CodeInput::Totp("123456".into()));
        assert_eq!(classify("123-456"), CodeInput::Totp("123456".into()));
        assert_eq!(
            classify("ABCD EFGH-2345 6777"),
            CodeInput::Backup("abcdefgh23456777".into())
        );
        assert_eq!(classify("12345"), CodeInput::Malformed);
        assert_eq!(classify("abcdefgh23456781"), CodeInput::Malformed);
        assert_eq!(classify(""), CodeInput::Malformed);
    }
}

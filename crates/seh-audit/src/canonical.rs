//! The one canonical byte encoding of an entry, and the strict line decoder.
//!
//! A line is a compact JSON object with the fields in this fixed order:
//!
//! ```text
//! {"seq":0,"ts":"…","actor":"…","kind":"request","details":{…},"prev":"<64 hex>","hash":"<64 hex>","sig":"<128 hex>"}
//! ```
//!
//! `details` keys are sorted (byte order) at every depth, no insignificant whitespace, strings
//! escaped the way `serde_json` escapes them, numbers as `serde_json` prints them, hex lower-case.
//! The entry hash covers the body: the same object up to and including `prev`, closed with `}`.
//!
//! [`decode_line`] accepts a line only if re-encoding the decoded entry gives back exactly the
//! same bytes. So two different files can never decode to the same entries, and every byte of the
//! file is covered by the hash or is structural (changing it breaks the decode).

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::entry::{Actor, Entry, EntryKind, FieldError, Hash32, Timestamp};

/// Longest accepted line, in bytes, without the newline.
pub const MAX_LINE_BYTES: usize = 1 << 20;

/// Why a line could not be decoded. Carries positions and categories, never field contents.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The line is longer than [`MAX_LINE_BYTES`].
    #[error("line is {len} bytes, longer than the {MAX_LINE_BYTES}-byte limit")]
    TooLong {
        /// Length of the line.
        len: usize,
    },
    /// The line is not a JSON object of the entry shape (syntax, missing/unknown/duplicate field,
    /// wrong type).
    #[error("not a valid entry object at column {column}: {category}")]
    Json {
        /// 1-based byte column reported by the JSON parser.
        column: usize,
        /// What kind of JSON problem it was.
        category: &'static str,
    },
    /// A field has the right JSON type but an invalid value.
    #[error("field `{field}` is invalid: {source}")]
    Field {
        /// The field name.
        field: &'static str,
        /// The reason.
        source: FieldError,
    },
    /// A hex field has the wrong length or non-lower-case-hex characters.
    #[error("field `{field}` must be {expected_len} lower-case hex digits")]
    Hex {
        /// The field name.
        field: &'static str,
        /// Expected number of hex digits.
        expected_len: usize,
    },
    /// The line decodes but is not in canonical form (key order, spacing, escapes, number
    /// spelling); the first differing byte is at `column` (1-based).
    #[error("entry is not in canonical form (first difference at column {column})")]
    NonCanonical {
        /// 1-based byte column of the first difference.
        column: usize,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    seq: u64,
    ts: String,
    actor: String,
    kind: String,
    details: Map<String, Value>,
    prev: String,
    hash: String,
    sig: String,
}

/// Decodes one line (without its trailing newline) into an [`Entry`], strictly.
///
/// Checks shape and field syntax and that the line is the canonical encoding of what it holds.
/// Does not check the hash, the signature or the chain (see [`Entry::check_integrity`] and
/// [`crate::verify`]). Total on arbitrary input: never panics.
pub fn decode_line(line: &[u8]) -> Result<Entry, DecodeError> {
    if line.len() > MAX_LINE_BYTES {
        return Err(DecodeError::TooLong { len: line.len() });
    }
    let raw: RawEntry = serde_json::from_slice(line).map_err(|e| DecodeError::Json {
        column: e.column(),
        category: match e.classify() {
            serde_json::error::Category::Io => "i/o",
            serde_json::error::Category::Syntax => "syntax error",
            serde_json::error::Category::Data => "wrong field name, type or count",
            serde_json::error::Category::Eof => "unexpected end of line",
        },
    })?;
    let field = |field: &'static str| move |source: FieldError| DecodeError::Field { field, source };
    let entry = Entry {
        seq: raw.seq,
        ts: Timestamp::parse(&raw.ts).map_err(field("ts"))?,
        actor: Actor::parse(&raw.actor).map_err(field("actor"))?,
        kind: EntryKind::parse(&raw.kind).map_err(field("kind"))?,
        details: raw.details,
        prev: Hash32(hex_decode::<32>(&raw.prev, "prev")?),
        hash: Hash32(hex_decode::<32>(&raw.hash, "hash")?),
        sig: hex_decode::<64>(&raw.sig, "sig")?,
    };
    let again = encode_line(&entry);
    if again != line {
        let column = again.iter().zip(line).position(|(a, b)| a != b).unwrap_or(again.len().min(line.len())) + 1;
        return Err(DecodeError::NonCanonical { column });
    }
    Ok(entry)
}

/// The canonical line for `entry`, without the trailing newline.
pub fn encode_line(entry: &Entry) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    encode_body_open(&mut out, entry.seq, &entry.ts, &entry.actor, entry.kind, &entry.details, &entry.prev);
    out.extend_from_slice(b",\"hash\":\"");
    out.extend_from_slice(hex_encode(&entry.hash.0).as_bytes());
    out.extend_from_slice(b"\",\"sig\":\"");
    out.extend_from_slice(hex_encode(&entry.sig).as_bytes());
    out.extend_from_slice(b"\"}");
    out
}

/// Appends the canonical body (the hashed part) to `out`.
pub(crate) fn encode_body(
    out: &mut Vec<u8>,
    seq: u64,
    ts: &Timestamp,
    actor: &Actor,
    kind: EntryKind,
    details: &Map<String, Value>,
    prev: &Hash32,
) {
    encode_body_open(out, seq, ts, actor, kind, details, prev);
    out.push(b'}');
}

fn encode_body_open(
    out: &mut Vec<u8>,
    seq: u64,
    ts: &Timestamp,
    actor: &Actor,
    kind: EntryKind,
    details: &Map<String, Value>,
    prev: &Hash32,
) {
    out.extend_from_slice(b"{\"seq\":");
    out.extend_from_slice(seq.to_string().as_bytes());
    out.extend_from_slice(b",\"ts\":");
    write_str(out, ts.as_str());
    out.extend_from_slice(b",\"actor\":");
    write_str(out, actor.as_str());
    out.extend_from_slice(b",\"kind\":");
    write_str(out, kind.as_str());
    out.extend_from_slice(b",\"details\":");
    write_object(out, details);
    out.extend_from_slice(b",\"prev\":\"");
    out.extend_from_slice(hex_encode(&prev.0).as_bytes());
    out.push(b'"');
}

fn write_str(out: &mut Vec<u8>, s: &str) {
    // serde_json's escaping is deterministic; writing into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

fn write_object(out: &mut Vec<u8>, map: &Map<String, Value>) {
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort();
    out.push(b'{');
    for (i, key) in keys.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_str(out, key);
        out.push(b':');
        if let Some(v) = map.get(key) {
            write_value(out, v);
        }
    }
    out.push(b'}');
}

fn write_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => out.extend_from_slice(n.to_string().as_bytes()),
        Value::String(s) => write_str(out, s),
        Value::Array(items) => {
            out.push(b'[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(out, v);
            }
            out.push(b']');
        }
        Value::Object(map) => write_object(out, map),
    }
}

/// Lower-case hex of `bytes`.
pub(crate) fn hex_encode(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    s
}

/// Decodes exactly `N` bytes from `2N` lower-case hex digits.
pub(crate) fn hex_decode<const N: usize>(text: &str, field: &'static str) -> Result<[u8; N], DecodeError> {
    let err = DecodeError::Hex { field, expected_len: 2 * N };
    let bytes = text.as_bytes();
    if bytes.len() != 2 * N {
        return Err(err);
    }
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let mut out = [0u8; N];
    for (o, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
        let (hi, lo) = match pair {
            [h, l] => (nibble(*h), nibble(*l)),
            _ => (None, None),
        };
        *o = (hi.ok_or(err.clone())? << 4) | lo.ok_or(err.clone())?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Entry {
        let mut details = Map::new();
        details.insert("z".into(), Value::from(1.5));
        details.insert("a".into(), serde_json::json!({"y": [1, "two", null], "b": true}));
        Entry {
            seq: 7,
            ts: Timestamp::parse("2025-03-01T10:00:00Z").unwrap(),
            actor: Actor::parse("site-a").unwrap(),
            kind: EntryKind::Release,
            details,
            prev: Hash32([0xab; 32]),
            hash: Hash32([0x01; 32]),
            sig: [0x5a; 64],
        }
    }

    #[test]
    fn encode_decode_round_trip_and_key_order() {
        let e = sample();
        let line = encode_line(&e);
        let text = String::from_utf8(line.clone()).unwrap();
        assert!(text.starts_with(r#"{"seq":7,"ts":"2025-03-01T10:00:00Z","actor":"site-a","kind":"release","details":{"a":{"b":true,"y":[1,"two",null]},"z":1.5},"prev":"abab"#));
        assert_eq!(decode_line(&line).unwrap(), e);
    }

    #[test]
    fn non_canonical_spellings_refused() {
        let line = String::from_utf8(encode_line(&sample())).unwrap();
        for (from, to) in [("1.5", "15e-1"), ("\"site-a\"", "\"site\\u002da\""), (",\"ts\"", ", \"ts\"")] {
            let bad = line.replacen(from, to, 1);
            assert!(matches!(decode_line(bad.as_bytes()), Err(DecodeError::NonCanonical { .. })), "{to}");
        }
        let reordered = line.replacen(
            r#"{"a":{"b":true,"y":[1,"two",null]},"z":1.5}"#,
            r#"{"z":1.5,"a":{"b":true,"y":[1,"two",null]}}"#,
            1,
        );
        assert!(matches!(decode_line(reordered.as_bytes()), Err(DecodeError::NonCanonical { .. })));
    }

    #[test]
    fn shape_errors_are_categorised() {
        assert!(matches!(decode_line(b""), Err(DecodeError::Json { .. })));
        assert!(matches!(decode_line(b"{\"seq\":1}"), Err(DecodeError::Json { .. })));
        let line = String::from_utf8(encode_line(&sample())).unwrap();
        let upper = line.replacen("\"prev\":\"abab", "\"prev\":\"ABAB", 1);
        assert!(matches!(decode_line(upper.as_bytes()), Err(DecodeError::Hex { field: "prev", .. })));
        let extra = line.replacen("{\"seq\"", "{\"x\":1,\"seq\"", 1);
        assert!(matches!(decode_line(extra.as_bytes()), Err(DecodeError::Json { .. })));
        let kind = line.replacen("\"release\"", "\"deploy\"", 1);
        assert!(matches!(decode_line(kind.as_bytes()), Err(DecodeError::Field { field: "kind", .. })));
        assert!(matches!(decode_line(&vec![b' '; MAX_LINE_BYTES + 1]), Err(DecodeError::TooLong { .. })));
    }
}

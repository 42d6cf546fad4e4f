//! The `traceparent` parser accepts exactly the W3C grammar: checked against an independent model written
//! with `split`, on valid headers, on mutations of them and on random strings.
#![allow(clippy::unwrap_used)] // helpers outside #[test] functions unwrap too

use proptest::prelude::*;
use tower_requestid::{TraceFlags, TraceParent};

fn is_lower_hex(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// W3C Trace Context Level 1, 3.2 and "Versioning of traceparent", restated.
fn model(s: &str) -> bool {
    model_bytes(s.as_bytes())
}

fn model_bytes(s: &[u8]) -> bool {
    if s.len() < 55 || !s[..55].is_ascii() {
        return false;
    }
    // Past the first 55 bytes of a higher version nothing is interpreted (it may even be obs-text).
    let (head, rest) = s.split_at(55);
    let head = std::str::from_utf8(head).unwrap();
    let parts: Vec<&str> = head.split('-').collect();
    let [version, trace, parent, flags] = parts[..] else {
        return false;
    };
    let shape = version.len() == 2
        && trace.len() == 32
        && parent.len() == 16
        && flags.len() == 2
        && [version, trace, parent, flags]
            .iter()
            .all(|p| is_lower_hex(p));
    if !shape
        || version == "ff"
        || trace.bytes().all(|b| b == b'0')
        || parent.bytes().all(|b| b == b'0')
    {
        return false;
    }
    if version == "00" {
        rest.is_empty()
    } else {
        rest.is_empty() || rest[0] == b'-'
    }
}

fn hex(len: usize) -> impl Strategy<Value = String> {
    proptest::collection::vec(proptest::sample::select(b"0123456789abcdef".to_vec()), len)
        .prop_map(|v| String::from_utf8(v).unwrap())
}

prop_compose! {
    // Version 00 (exactly 55 characters, the one senders write today) in three of four cases; any other
    // version, with or without a suffix, in the rest.
    fn valid()(version in prop_oneof![3 => Just("00".to_owned()), 1 => hex(2)], trace in hex(32), parent in hex(16), flags in hex(2),
               suffix in proptest::option::of("-[a-z0-9-]{0,20}")) -> String {
        let version = if version == "ff" { "00".to_owned() } else { version };
        let suffix = if version == "00" { String::new() } else { suffix.unwrap_or_default() };
        format!("{version}-{trace}-{parent}-{flags}{suffix}")
    }
}

fn mutate(s: String, pos: usize, byte: u8, op: u8) -> String {
    let mut bytes = s.into_bytes();
    let pos = pos % (bytes.len() + 1);
    match op % 3 {
        0 if pos < bytes.len() => bytes[pos] = byte,
        1 => bytes.insert(pos, byte),
        _ if pos < bytes.len() => {
            bytes.remove(pos);
        }
        _ => bytes.push(byte),
    }
    String::from_utf8(bytes).unwrap()
}

proptest! {
    #[test]
    fn valid_headers_round_trip(s in valid()) {
        prop_assume!(model(&s));
        let parsed = TraceParent::parse(s.as_bytes()).unwrap();
        let flags = u8::from_str_radix(&s[53..55], 16).unwrap();
        let expected = format!("00-{}-{:02x}", &s[3..52], TraceFlags::new(flags).bits());
        prop_assert_eq!(parsed.to_string(), expected.clone());
        // What we write is itself valid and reads back the same.
        prop_assert_eq!(TraceParent::parse(expected.as_bytes()).unwrap(), parsed);
    }

    #[test]
    fn mutations_are_accepted_exactly_when_the_grammar_allows(
        s in valid(),
        pos in 0usize..80,
        byte in proptest::sample::select(b"0123456789abcdefABCDEFxz-._ f0".to_vec()),
        op in 0u8..3,
    ) {
        let m = mutate(s, pos, byte, op);
        prop_assert_eq!(TraceParent::parse(m.as_bytes()).is_ok(), model(&m), "{:?}", m);
    }

    #[test]
    fn random_strings_are_accepted_exactly_when_the_grammar_allows(s in "[0-9a-fA-F-]{50,60}") {
        prop_assert_eq!(TraceParent::parse(s.as_bytes()).is_ok(), model(&s), "{:?}", s);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
        prop_assert_eq!(TraceParent::parse(&bytes).is_ok(), model_bytes(&bytes));
    }
}

#[test]
fn all_zero_ids_and_uppercase_are_refused() {
    assert!(!model(
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01"
    ));
    assert!(
        TraceParent::parse(b"00-00000000000000000000000000000000-00f067aa0ba902b7-01").is_err()
    );
    assert!(
        TraceParent::parse(b"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01").is_err()
    );
    assert!(
        TraceParent::parse(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01").is_err()
    );
}

#[test]
fn higher_version_does_not_interpret_bytes_after_the_first_55() {
    let mut header = b"cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-".to_vec();
    header.extend_from_slice("é\u{1}".as_bytes());
    assert!(model_bytes(&header));
    assert!(TraceParent::parse(&header).is_ok());
}

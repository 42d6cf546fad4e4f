//! Double-entry checks, one behaviour per test.
// Helpers outside #[test] functions read test data; a panic there is a failed test.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;

use fin_invariants::journal::{
    Account, AccountId, Balance, BalanceLimit, EntryId, JournalEntry, JournalLine, Ledger,
    OrganizationId, Posted, check_entry,
};
use fin_invariants::{Currency, Money, Validate, codes};

const ORG: OrganizationId = OrganizationId(1);
const OTHER_ORG: OrganizationId = OrganizationId(2);
const CASH: AccountId = AccountId(10);
const SALES: AccountId = AccountId(20);
const GST_PAYABLE: AccountId = AccountId(30);
const EUR_BANK: AccountId = AccountId(40);
const FOREIGN: AccountId = AccountId(50);

fn aud(s: &str) -> Money {
    Money::parse(s, Currency::AUD).unwrap()
}

fn accounts() -> HashMap<AccountId, Account> {
    [
        Account {
            id: CASH,
            organization: ORG,
            currency: Currency::AUD,
            limit: BalanceLimit::CreditsMustNotExceedDebits,
        },
        Account {
            id: SALES,
            organization: ORG,
            currency: Currency::AUD,
            limit: BalanceLimit::None,
        },
        Account {
            id: GST_PAYABLE,
            organization: ORG,
            currency: Currency::AUD,
            limit: BalanceLimit::DebitsMustNotExceedCredits,
        },
        Account {
            id: EUR_BANK,
            organization: ORG,
            currency: Currency::EUR,
            limit: BalanceLimit::None,
        },
        Account {
            id: FOREIGN,
            organization: OTHER_ORG,
            currency: Currency::AUD,
            limit: BalanceLimit::None,
        },
    ]
    .into_iter()
    .map(|a| (a.id, a))
    .collect()
}

fn sale(id: u128) -> JournalEntry {
    JournalEntry {
        id: EntryId(id),
        organization: ORG,
        lines: vec![
            JournalLine::debit(CASH, aud("110.00")),
            JournalLine::credit(SALES, aud("100.00")),
            JournalLine::credit(GST_PAYABLE, aud("10.00")),
        ],
    }
}

fn codes_of(entry: &JournalEntry) -> Vec<String> {
    check_entry(entry, &accounts())
        .codes()
        .map(str::to_owned)
        .collect()
}

#[test]
fn a_balanced_sale_passes_and_posts() {
    let entry = sale(1);
    assert!(codes_of(&entry).is_empty());
    let mut ledger = Ledger::new();
    assert_eq!(ledger.post(&entry, &accounts()), Ok(Posted::Applied));
    assert_eq!(ledger.balance(CASH).unwrap().net().unwrap(), aud("110.00"));
    assert_eq!(
        ledger.balance(GST_PAYABLE).unwrap().net().unwrap(),
        aud("-10.00")
    );
    assert!(ledger.assert_balance(SALES, aud("-100.00")).is_ok());
    assert_eq!(
        ledger
            .assert_balance(SALES, aud("-99.99"))
            .unwrap_err()
            .code,
        codes::BALANCE_ASSERTION
    );
}

#[test]
fn every_violation_of_an_entry_is_reported_not_just_the_first() {
    let entry = JournalEntry {
        id: EntryId(2),
        organization: ORG,
        lines: vec![
            JournalLine::debit(CASH, aud("10.00")),
            JournalLine::credit(AccountId(999), aud("0.00")),
            JournalLine::credit(FOREIGN, aud("5.00")),
            JournalLine::debit(EUR_BANK, aud("1.00")),
        ],
    };
    assert_eq!(
        codes_of(&entry),
        [
            "NON-POSITIVE-AMOUNT",
            "UNBALANCED",
            "UNKNOWN-ACCOUNT",
            "FOREIGN-ACCOUNT",
            "CURRENCY-MISMATCH"
        ]
    );
    let unbalanced = check_entry(&entry, &accounts())
        .iter()
        .find(|v| v.code == codes::UNBALANCED)
        .cloned()
        .unwrap();
    assert_eq!(unbalanced.expected.as_deref(), Some("11.00"));
    assert_eq!(unbalanced.actual.as_deref(), Some("5.00"));
}

#[test]
fn an_entry_needs_two_lines() {
    let entry = JournalEntry {
        id: EntryId(3),
        organization: ORG,
        lines: vec![JournalLine::debit(CASH, aud("1"))],
    };
    assert_eq!(codes_of(&entry), ["TOO-FEW-LINES", "UNBALANCED"]);
    let empty = JournalEntry {
        id: EntryId(3),
        organization: ORG,
        lines: vec![],
    };
    assert_eq!(
        empty.violations().codes().collect::<Vec<_>>(),
        ["TOO-FEW-LINES"]
    );
}

#[test]
fn balance_is_per_currency() {
    let eur = |s| Money::parse(s, Currency::EUR).unwrap();
    let mut accounts = accounts();
    accounts.insert(
        AccountId(41),
        Account {
            id: AccountId(41),
            organization: ORG,
            currency: Currency::EUR,
            limit: BalanceLimit::None,
        },
    );
    // AUD 10 against EUR 10 does not balance, even though the numbers are equal.
    let mixed = JournalEntry {
        id: EntryId(4),
        organization: ORG,
        lines: vec![
            JournalLine::debit(SALES, aud("10")),
            JournalLine::credit(EUR_BANK, eur("10")),
        ],
    };
    assert_eq!(
        check_entry(&mixed, &accounts).codes().collect::<Vec<_>>(),
        ["UNBALANCED", "UNBALANCED"]
    );
    let both = JournalEntry {
        id: EntryId(5),
        organization: ORG,
        lines: vec![
            JournalLine::debit(SALES, aud("10")),
            JournalLine::credit(CASH, aud("10")),
            JournalLine::debit(EUR_BANK, eur("3")),
            JournalLine::credit(AccountId(41), eur("3")),
        ],
    };
    assert!(check_entry(&both, &accounts).is_empty());
}

#[test]
fn an_account_that_must_not_go_negative_refuses_the_entry_and_nothing_is_applied() {
    let mut ledger = Ledger::new();
    // Paying out cash that was never received: cash credits would exceed its debits.
    let refund = JournalEntry {
        id: EntryId(6),
        organization: ORG,
        lines: vec![
            JournalLine::debit(SALES, aud("50")),
            JournalLine::credit(CASH, aud("50")),
        ],
    };
    let err = ledger.post(&refund, &accounts()).unwrap_err();
    assert_eq!(err.codes().collect::<Vec<_>>(), ["EXCEEDS-DEBITS"]);
    assert!(ledger.is_empty());
    ledger.post(&sale(7), &accounts()).unwrap();
    assert_eq!(ledger.post(&refund, &accounts()), Ok(Posted::Applied));
    assert_eq!(ledger.balance(CASH).unwrap().net().unwrap(), aud("60.00"));
    // Paying more GST than was collected.
    let overpay = JournalEntry {
        id: EntryId(8),
        organization: ORG,
        lines: vec![
            JournalLine::debit(GST_PAYABLE, aud("10.01")),
            JournalLine::credit(CASH, aud("10.01")),
        ],
    };
    assert_eq!(
        ledger
            .post(&overpay, &accounts())
            .unwrap_err()
            .codes()
            .collect::<Vec<_>>(),
        ["EXCEEDS-CREDITS"]
    );
}

#[test]
fn the_same_id_is_idempotent_and_another_entry_under_it_is_refused() {
    let mut ledger = Ledger::new();
    assert_eq!(ledger.post(&sale(9), &accounts()), Ok(Posted::Applied));
    assert_eq!(
        ledger.post(&sale(9), &accounts()),
        Ok(Posted::AlreadyApplied)
    );
    assert_eq!(ledger.balance(CASH).unwrap().debits, aud("110.00"));
    let mut other = sale(9);
    other.lines[0].amount = aud("111.00");
    other.lines[1].amount = aud("101.00");
    assert_eq!(
        ledger
            .post(&other, &accounts())
            .unwrap_err()
            .codes()
            .collect::<Vec<_>>(),
        ["ID-REUSED"]
    );
}

#[test]
fn balances_rebuilt_from_lines_find_a_drifted_stored_balance() {
    let mut ledger = Ledger::new().track_ids(false);
    for id in 0..3 {
        ledger.apply_unchecked(&sale(id)).unwrap();
    }
    let right = Balance {
        debits: aud("330.00"),
        credits: aud("0"),
    };
    assert!(ledger.compare(CASH, right).is_ok());
    let drifted = Balance {
        debits: aud("330.01"),
        credits: aud("0"),
    };
    let v = ledger.compare(CASH, drifted).unwrap_err();
    assert_eq!(v.code, codes::BALANCE_DRIFT);
    assert_eq!(v.path, "/accounts/10");
}

#[cfg(feature = "serde")]
#[test]
fn journal_entries_serialize_with_decimal_string_amounts() {
    let json = serde_json::to_value(sale(1)).unwrap();
    assert_eq!(json["lines"][0]["side"], "debit");
    assert_eq!(json["lines"][0]["amount"]["amount"], "110.00");
    let back: JournalEntry = serde_json::from_value(json).unwrap();
    assert_eq!(back, sale(1));
}

#[cfg(feature = "serde")]
#[test]
fn ids_of_128_bits_serialize_as_decimal_strings_and_read_back() {
    // A UUID's 128 bits: more than a JSON number holds in JavaScript or in serde_json::Value.
    let id = EntryId(u128::MAX);
    let json = serde_json::to_value(id).unwrap();
    assert_eq!(json, serde_json::json!(u128::MAX.to_string()));
    assert_eq!(serde_json::from_value::<EntryId>(json).unwrap(), id);
    let entry = JournalEntry {
        id,
        organization: OrganizationId(u128::MAX),
        ..sale(1)
    };
    let json = serde_json::to_value(&entry).unwrap();
    assert_eq!(json["organization"], u128::MAX.to_string());
    assert_eq!(json["lines"][0]["account"], CASH.to_string());
    assert_eq!(serde_json::from_value::<JournalEntry>(json).unwrap(), entry);
    // Integers are still read; anything but digits is refused.
    assert_eq!(
        serde_json::from_str::<AccountId>("42").unwrap(),
        AccountId(42)
    );
    for bad in [
        r#""""#, r#""+1""#, r#""-1""#, r#"" 1""#, r#""1e3""#, "-1", "1.5", "null",
    ] {
        assert!(serde_json::from_str::<AccountId>(bad).is_err(), "{bad}");
    }
    let too_big = format!("\"{}0\"", u128::MAX);
    assert!(serde_json::from_str::<AccountId>(&too_big).is_err());
}

#[test]
fn public_types_are_send_sync_and_clone() {
    fn check<T: Send + Sync + Clone>() {}
    check::<Money>();
    check::<JournalEntry>();
    check::<Ledger>();
    check::<fin_invariants::Violations>();
    check::<fin_invariants::invoice::Invoice>();
    check::<fin_invariants::invoice::Totals>();
    check::<fin_invariants::audit::AuditRunner>();
}

#[test]
fn a_balance_that_would_overflow_is_refused_and_nothing_is_applied() {
    let big = Money::from_minor(i64::MAX, Currency::AUD);
    let entry = |id| JournalEntry {
        id: EntryId(id),
        organization: ORG,
        lines: vec![
            JournalLine::debit(SALES, big),
            JournalLine::credit(EUR_BANK_AUD, big),
        ],
    };
    let mut accounts = accounts();
    accounts.insert(
        EUR_BANK_AUD,
        Account {
            id: EUR_BANK_AUD,
            organization: ORG,
            currency: Currency::AUD,
            limit: BalanceLimit::None,
        },
    );
    let mut ledger = Ledger::new();
    assert_eq!(ledger.post(&entry(1), &accounts), Ok(Posted::Applied));
    let err = ledger.post(&entry(2), &accounts).unwrap_err();
    assert_eq!(err.codes().collect::<Vec<_>>(), ["OVERFLOW", "OVERFLOW"]);
    assert_eq!(ledger.balance(SALES).unwrap().debits, big);
}

const EUR_BANK_AUD: AccountId = AccountId(60);

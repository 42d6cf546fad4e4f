//! Double-entry journals: entries that balance per currency, balances rebuilt from lines, and accounts
//! that must not go negative (TigerBeetle's `debits_must_not_exceed_credits`).

use std::collections::HashMap;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

#[cfg(feature = "serde")]
use serde::{Deserialize, Serialize};

use crate::money::{Currency, Money, MoneyError};
use crate::violation::{Validate, Violation, Violations, codes};

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub u128);

        /// A decimal string: 128-bit ids do not fit a JSON number that JavaScript or
        /// `serde_json::Value` can hold.
        #[cfg(feature = "serde")]
        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(&self.0)
            }
        }

        /// A decimal string of ASCII digits, or a non-negative integer.
        #[cfg(feature = "serde")]
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                deserializer.deserialize_any(IdVisitor).map(Self)
            }
        }

        impl From<u128> for $name {
            fn from(id: u128) -> Self {
                Self(id)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                std::fmt::Display::fmt(&self.0, f)
            }
        }
    };
}

/// Reads an id written as a decimal string (what ids serialize to) or as an integer.
#[cfg(feature = "serde")]
struct IdVisitor;

#[cfg(feature = "serde")]
impl serde::de::Visitor<'_> for IdVisitor {
    type Value = u128;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an id as a decimal string or a non-negative integer")
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<u128, E> {
        let invalid = || E::invalid_value(serde::de::Unexpected::Str(v), &self);
        // u128::from_str would also take a leading '+'.
        if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid());
        }
        v.parse().map_err(|_| invalid())
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<u128, E> {
        Ok(u128::from(v))
    }

    fn visit_u128<E: serde::de::Error>(self, v: u128) -> Result<u128, E> {
        Ok(v)
    }
}

id_type!(
    /// An account id (a UUID's 128 bits, or any integer id). Ids serialize as decimal strings (a 128-bit
    /// integer does not survive a JSON number in JavaScript) and read from a string or an integer; a server
    /// with UUID ids converts with `Uuid::as_u128` and keeps its own string form on the wire.
    AccountId
);
id_type!(
    /// An organization (tenant) id.
    OrganizationId
);
id_type!(
    /// A journal entry id; posting the same id twice is idempotent.
    EntryId
);

/// The side of a journal line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum Side {
    /// Debit.
    Debit,
    /// Credit.
    Credit,
}

/// One line of a journal entry: one account, one side, a positive amount.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
pub struct JournalLine {
    /// The account.
    pub account: AccountId,
    /// Debit or credit.
    pub side: Side,
    /// The amount, above zero.
    pub amount: Money,
}

impl JournalLine {
    /// A debit of `amount` to `account`.
    #[must_use]
    pub const fn debit(account: AccountId, amount: Money) -> Self {
        Self {
            account,
            side: Side::Debit,
            amount,
        }
    }

    /// A credit of `amount` to `account`.
    #[must_use]
    pub const fn credit(account: AccountId, amount: Money) -> Self {
        Self {
            account,
            side: Side::Credit,
            amount,
        }
    }
}

/// A journal entry: lines posted together or not at all (TigerBeetle's linked transfers).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
pub struct JournalEntry {
    /// The entry id.
    pub id: EntryId,
    /// The organization the entry belongs to; every account must belong to it too.
    pub organization: OrganizationId,
    /// The lines.
    pub lines: Vec<JournalLine>,
}

/// What an account allows its balance to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum BalanceLimit {
    /// No limit.
    #[default]
    None,
    /// Debits may never exceed credits (a liability or income account that must not go negative).
    DebitsMustNotExceedCredits,
    /// Credits may never exceed debits (a cash or asset account that must not go negative).
    CreditsMustNotExceedDebits,
}

/// An account as the checks need it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
pub struct Account {
    /// The id.
    pub id: AccountId,
    /// The organization it belongs to.
    pub organization: OrganizationId,
    /// The one currency its lines are in.
    pub currency: Currency,
    /// Whether its balance may go negative.
    #[cfg_attr(feature = "serde", serde(default))]
    pub limit: BalanceLimit,
}

/// Where the checks look accounts up.
pub trait Accounts {
    /// The account with this id, if it exists.
    fn account(&self, id: AccountId) -> Option<&Account>;
}

impl<S: std::hash::BuildHasher> Accounts for HashMap<AccountId, Account, S> {
    fn account(&self, id: AccountId) -> Option<&Account> {
        self.get(&id)
    }
}

impl Accounts for std::collections::BTreeMap<AccountId, Account> {
    fn account(&self, id: AccountId) -> Option<&Account> {
        self.get(&id)
    }
}

impl Accounts for [Account] {
    fn account(&self, id: AccountId) -> Option<&Account> {
        self.iter().find(|a| a.id == id)
    }
}

impl<A: Accounts + ?Sized> Accounts for &A {
    fn account(&self, id: AccountId) -> Option<&Account> {
        (**self).account(id)
    }
}

/// Structural checks (no account look-ups): at least two lines, positive amounts, balanced per currency.
fn structural(entry: &JournalEntry, v: &mut Violations) {
    if entry.lines.len() < 2 {
        v.push(
            Violation::new(
                codes::TOO_FEW_LINES,
                "/lines",
                "a journal entry needs at least two lines",
            )
            .with_values(">= 2", entry.lines.len()),
        );
    }
    // (currency, debits, credits) in minor units; i128 so that no sum of i64 amounts overflows.
    let mut sums: Vec<(Currency, i128, i128)> = Vec::with_capacity(1);
    for (i, line) in entry.lines.iter().enumerate() {
        if !line.amount.is_positive() {
            v.push(
                Violation::new(
                    codes::NON_POSITIVE_AMOUNT,
                    format!("/lines/{i}/amount"),
                    "a journal line amount must be above zero",
                )
                .with_values("> 0", line.amount),
            );
        }
        let currency = line.amount.currency();
        let index = sums
            .iter()
            .position(|s| s.0 == currency)
            .unwrap_or_else(|| {
                sums.push((currency, 0, 0));
                sums.len().saturating_sub(1)
            });
        if let Some(sum) = sums.get_mut(index) {
            let slot = match line.side {
                Side::Debit => &mut sum.1,
                Side::Credit => &mut sum.2,
            };
            // At most 2^64 lines of at most 2^63 each: the sum stays below 2^127.
            *slot = slot.saturating_add(i128::from(line.amount.minor()));
        }
    }
    for (currency, debits, credits) in sums {
        if debits != credits {
            let show = |minor: i128| {
                i64::try_from(minor).map_or_else(
                    |_| minor.to_string(),
                    |m| Money::from_minor(m, currency).to_string(),
                )
            };
            v.push(
                Violation::new(
                    codes::UNBALANCED,
                    "/lines",
                    format!("debits and credits in {currency} differ"),
                )
                .with_values(show(debits), show(credits)),
            );
        }
    }
}

impl Validate for JournalEntry {
    /// The checks that need no accounts: two lines or more, amounts above zero, debits = credits per
    /// currency. [`check_entry`] adds the account checks.
    fn violations(&self) -> Violations {
        let mut v = Violations::new();
        structural(self, &mut v);
        v
    }
}

/// Checks a journal entry: at least two lines, each on one side with an amount above zero, on a known
/// account of the entry's organization and in that account's currency, and debits equal to credits in
/// every currency. Returns every violation.
#[must_use]
pub fn check_entry<A: Accounts + ?Sized>(entry: &JournalEntry, accounts: &A) -> Violations {
    let mut v = Violations::new();
    structural(entry, &mut v);
    for (i, line) in entry.lines.iter().enumerate() {
        match accounts.account(line.account) {
            None => v.push(
                Violation::new(
                    codes::UNKNOWN_ACCOUNT,
                    format!("/lines/{i}/account"),
                    "no such account",
                )
                .with_values("a known account", line.account),
            ),
            Some(account) => {
                if account.organization != entry.organization {
                    v.push(
                        Violation::new(
                            codes::FOREIGN_ACCOUNT,
                            format!("/lines/{i}/account"),
                            "the account belongs to another organization",
                        )
                        .with_values(entry.organization, account.organization),
                    );
                }
                if account.currency != line.amount.currency() {
                    v.push(
                        Violation::new(
                            codes::CURRENCY_MISMATCH,
                            format!("/lines/{i}/amount/currency"),
                            "the line is not in the account's currency",
                        )
                        .with_values(account.currency, line.amount.currency()),
                    );
                }
            }
        }
    }
    v
}

/// An account's posted totals, as TigerBeetle keeps them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
pub struct Balance {
    /// The sum of its debits.
    pub debits: Money,
    /// The sum of its credits.
    pub credits: Money,
}

impl Balance {
    /// Nothing posted, in `currency`.
    #[must_use]
    pub const fn zero(currency: Currency) -> Self {
        Self {
            debits: Money::zero(currency),
            credits: Money::zero(currency),
        }
    }

    /// Debits - credits (positive for a debit balance).
    ///
    /// # Errors
    ///
    /// [`MoneyError::Overflow`].
    pub fn net(self) -> Result<Money, MoneyError> {
        self.debits.checked_sub(self.credits)
    }

    fn add(self, line: &JournalLine) -> Result<Self, MoneyError> {
        Ok(match line.side {
            Side::Debit => Self {
                debits: self.debits.checked_add(line.amount)?,
                ..self
            },
            Side::Credit => Self {
                credits: self.credits.checked_add(line.amount)?,
                ..self
            },
        })
    }
}

/// What [`Ledger::post`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Posted {
    /// The entry was applied.
    Applied,
    /// An identical entry with this id was applied before; nothing changed (idempotent retry).
    AlreadyApplied,
}

/// Account balances built from journal lines, with the limits enforced at each posting.
///
/// Memory: one [`Balance`] per account touched, plus (while id tracking is on, the default) one 8-byte
/// fingerprint per entry id for idempotent retries. Turn tracking off with [`Ledger::track_ids`] to
/// rebuild balances over any number of entries in memory bounded by the number of accounts.
#[derive(Debug, Clone, Default)]
pub struct Ledger {
    balances: HashMap<AccountId, Balance>,
    posted: Option<HashMap<EntryId, u64>>,
}

fn fingerprint(entry: &JournalEntry) -> u64 {
    let mut hasher = DefaultHasher::new();
    entry.hash(&mut hasher);
    hasher.finish()
}

impl Ledger {
    /// An empty ledger that remembers entry ids.
    #[must_use]
    pub fn new() -> Self {
        Self {
            balances: HashMap::new(),
            posted: Some(HashMap::new()),
        }
    }

    /// Remembers entry ids (idempotent retries, [`codes::ID_REUSED`]) or not.
    #[must_use]
    pub fn track_ids(mut self, track: bool) -> Self {
        self.posted = if track {
            Some(self.posted.unwrap_or_default())
        } else {
            None
        };
        self
    }

    /// Checks and applies an entry, all lines or none.
    ///
    /// # Errors
    ///
    /// Every violation of [`check_entry`], [`codes::EXCEEDS_CREDITS`] / [`codes::EXCEEDS_DEBITS`] when an
    /// account's limit would be broken, [`codes::ID_REUSED`] for a known id with other lines, and
    /// [`codes::OVERFLOW`]. Nothing is applied then.
    pub fn post<A: Accounts + ?Sized>(
        &mut self,
        entry: &JournalEntry,
        accounts: &A,
    ) -> Result<Posted, Violations> {
        let print = self.posted.as_ref().map(|_| fingerprint(entry));
        if let (Some(posted), Some(print)) = (&self.posted, print) {
            match posted.get(&entry.id) {
                Some(&known) if known == print => return Ok(Posted::AlreadyApplied),
                Some(_) => {
                    return Err(Violation::new(
                        codes::ID_REUSED,
                        "/id",
                        "this entry id was posted with other lines",
                    )
                    .with_values("a new id", entry.id)
                    .into());
                }
                None => {}
            }
        }
        check_entry(entry, accounts).into_result()?;
        let mut staged: Vec<(AccountId, Balance, usize)> = Vec::with_capacity(entry.lines.len());
        let mut v = Violations::new();
        for (i, line) in entry.lines.iter().enumerate() {
            let current = match staged.iter().position(|s| s.0 == line.account) {
                Some(k) => k,
                None => {
                    let balance = self
                        .balances
                        .get(&line.account)
                        .copied()
                        .unwrap_or(Balance::zero(line.amount.currency()));
                    staged.push((line.account, balance, i));
                    staged.len().saturating_sub(1)
                }
            };
            if let Some(slot) = staged.get_mut(current) {
                match slot.1.add(line) {
                    Ok(next) => slot.1 = next,
                    Err(_) => v.push(Violation::new(
                        codes::OVERFLOW,
                        format!("/lines/{i}/amount"),
                        "account balance out of range",
                    )),
                }
            }
        }
        for &(account_id, balance, first_line) in &staged {
            let limit = accounts
                .account(account_id)
                .map_or(BalanceLimit::None, |a| a.limit);
            let path = || format!("/lines/{first_line}/account");
            match limit {
                BalanceLimit::DebitsMustNotExceedCredits
                    if balance.debits.minor() > balance.credits.minor() =>
                {
                    v.push(
                        Violation::new(
                            codes::EXCEEDS_CREDITS,
                            path(),
                            "the account's debits would exceed its credits",
                        )
                        .with_values(format!("debits <= {}", balance.credits), balance.debits),
                    )
                }
                BalanceLimit::CreditsMustNotExceedDebits
                    if balance.credits.minor() > balance.debits.minor() =>
                {
                    v.push(
                        Violation::new(
                            codes::EXCEEDS_DEBITS,
                            path(),
                            "the account's credits would exceed its debits",
                        )
                        .with_values(format!("credits <= {}", balance.debits), balance.credits),
                    )
                }
                _ => {}
            }
        }
        v.into_result()?;
        for (account_id, balance, _) in staged {
            self.balances.insert(account_id, balance);
        }
        if let (Some(posted), Some(print)) = (&mut self.posted, print) {
            posted.insert(entry.id, print);
        }
        Ok(Posted::Applied)
    }

    /// Applies an entry's lines as they are, without checks: for rebuilding balances from stored lines,
    /// where the audit reports what [`check_entry`] finds separately.
    ///
    /// # Errors
    ///
    /// A [`codes::OVERFLOW`] violation (or a currency mismatch with the account's earlier lines, reported
    /// as [`codes::CURRENCY_MISMATCH`]); the lines before the failing one stay applied.
    pub fn apply_unchecked(&mut self, entry: &JournalEntry) -> Result<(), Violation> {
        for (i, line) in entry.lines.iter().enumerate() {
            let balance = self
                .balances
                .entry(line.account)
                .or_insert_with(|| Balance::zero(line.amount.currency()));
            match balance.add(line) {
                Ok(next) => *balance = next,
                Err(MoneyError::CurrencyMismatch { left, right }) => {
                    return Err(Violation::new(
                        codes::CURRENCY_MISMATCH,
                        format!("/lines/{i}/amount/currency"),
                        "the account already has lines in another currency",
                    )
                    .with_values(left, right));
                }
                Err(_) => {
                    return Err(Violation::new(
                        codes::OVERFLOW,
                        format!("/lines/{i}/amount"),
                        "account balance out of range",
                    ));
                }
            }
        }
        Ok(())
    }

    /// The balance of an account (`None` when nothing was posted to it).
    #[must_use]
    pub fn balance(&self, account: AccountId) -> Option<Balance> {
        self.balances.get(&account).copied()
    }

    /// Every account's balance, in no particular order.
    pub fn balances(&self) -> impl Iterator<Item = (AccountId, Balance)> + '_ {
        self.balances.iter().map(|(&id, &b)| (id, b))
    }

    /// How many accounts have a balance.
    #[must_use]
    pub fn len(&self) -> usize {
        self.balances.len()
    }

    /// Whether no account has a balance.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.balances.is_empty()
    }

    /// Beancount's `balance` assertion: the account's net balance (debits - credits) is `expected`.
    ///
    /// # Errors
    ///
    /// A [`codes::BALANCE_ASSERTION`] violation when it is not (an account with nothing posted has a net
    /// balance of zero).
    pub fn assert_balance(&self, account: AccountId, expected: Money) -> Result<(), Violation> {
        let net = self
            .balance(account)
            .unwrap_or(Balance::zero(expected.currency()))
            .net();
        match net {
            Ok(net) if net == expected => Ok(()),
            Ok(net) => Err(Violation::new(
                codes::BALANCE_ASSERTION,
                format!("/accounts/{account}"),
                "balance assertion failed",
            )
            .with_values(format!("{expected:?}"), format!("{net:?}"))),
            Err(_) => Err(Violation::new(
                codes::OVERFLOW,
                format!("/accounts/{account}"),
                "balance out of range",
            )),
        }
    }

    /// Compares a stored balance with the one rebuilt here.
    ///
    /// # Errors
    ///
    /// A [`codes::BALANCE_DRIFT`] violation when they differ.
    pub fn compare(&self, account: AccountId, stored: Balance) -> Result<(), Violation> {
        let rebuilt = self
            .balance(account)
            .unwrap_or(Balance::zero(stored.debits.currency()));
        if rebuilt == stored {
            Ok(())
        } else {
            Err(Violation::new(
                codes::BALANCE_DRIFT,
                format!("/accounts/{account}"),
                "stored balance differs from the journal lines",
            )
            .with_values(
                format!("debits {:?}, credits {:?}", rebuilt.debits, rebuilt.credits),
                format!("debits {:?}, credits {:?}", stored.debits, stored.credits),
            ))
        }
    }
}

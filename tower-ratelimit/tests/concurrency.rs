//! Decisions from several threads on the same keys: no overshoot, and all-or-none holds.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tower_ratelimit::{Check, Key, Limit, ManualClock, Quota, RateLimiter};

#[test]
fn threads_racing_on_one_key_never_overshoot_and_charge_sets_together() {
    let clock = ManualClock::starting_at(1);
    let limiter = RateLimiter::builder().clock(clock).build();
    let tight = Limit::new("tight", Quota::new(50, Duration::from_secs(3600)).unwrap()).unwrap();
    let roomy = Limit::new(
        "roomy",
        Quota::new(1000, Duration::from_secs(3600)).unwrap(),
    )
    .unwrap();
    let admitted = AtomicU64::new(0);
    let refused = AtomicU64::new(0);
    let roomy_alone = AtomicU64::new(0);
    std::thread::scope(|s| {
        for t in 0..4 {
            let (limiter, tight, roomy, admitted, refused, roomy_alone) =
                (&limiter, &tight, &roomy, &admitted, &refused, &roomy_alone);
            s.spawn(move || {
                for i in 0..500u64 {
                    if (i + t) % 5 == 0 {
                        // Now and then the roomy limit alone, racing with the sets that refund it.
                        if limiter.check_now(Key::Id(1), roomy, 1).is_allowed() {
                            roomy_alone.fetch_add(1, Ordering::Relaxed);
                        }
                        continue;
                    }
                    let checks = [
                        Check::charge(roomy, Key::Id(1)),
                        Check::charge(tight, Key::Id(1)),
                    ];
                    if limiter
                        .decide(&checks, 1)
                        .into_ready()
                        .unwrap()
                        .is_allowed()
                    {
                        admitted.fetch_add(1, Ordering::Relaxed);
                    } else {
                        refused.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
    });
    let admitted = admitted.load(Ordering::Relaxed);
    assert_eq!(admitted, 50, "exactly the tight quota, no overshoot");
    let peek = |limit: &Limit| {
        limiter
            .decide(&[Check::peek(limit, Key::Id(1))], 1)
            .into_ready()
            .unwrap()
            .outcomes()[0]
            .remaining()
    };
    assert_eq!(peek(&tight), 0);
    // The roomy limit was charged once per admitted set and once per lone check: none of those is lost. A
    // refused set undoes its charge of it only when no other charge has landed since (else undoing could erase
    // part of that charge), so racing refused sets may leave a unit each, never more.
    let roomy_charged = 1000 - peek(&roomy);
    let exact = admitted + roomy_alone.load(Ordering::Relaxed);
    let refused = refused.load(Ordering::Relaxed);
    assert!(
        roomy_charged >= exact,
        "{roomy_charged} charged, {exact} admitted: a lost charge"
    );
    assert!(
        roomy_charged <= exact + refused,
        "{roomy_charged} charged, {exact} admitted, {refused} refused sets"
    );
    eprintln!("roomy: {exact} admitted, {roomy_charged} charged ({refused} refused sets)");
}

# tower-ratelimit: 10 M distinct keys against the in-memory store's cap, and 1 M idle keys' memory, in release.
cargo test -p tower-ratelimit --release --test flood

//! A loopback TCP proxy that a fault test can cut, stall and restore.

use std::net::SocketAddr;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What the proxy does with connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyMode {
    /// Relay bytes both ways.
    Pass,
    /// Close open connections and reset every new one at once, as a stopped service would.
    Refuse,
    /// Accept connections and hold them without relaying a byte, as a hung service would.
    Stall,
}

/// A TCP proxy on `127.0.0.1` in front of one service.
///
/// Point the client at [`FaultProxy::addr`]; then [`cut`](FaultProxy::cut), [`stall`](FaultProxy::stall) and
/// [`restore`](FaultProxy::restore) it. Changing the mode ends every connection opened before, so clients
/// see their pooled connections fail and must reconnect. The proxy stops when dropped.
#[derive(Debug)]
pub struct FaultProxy {
    addr: SocketAddr,
    mode: watch::Sender<ProxyMode>,
    accept_task: JoinHandle<()>,
}

impl FaultProxy {
    /// Starts a proxy on a free loopback port that relays to `target`.
    ///
    /// # Errors
    ///
    /// When no loopback port can be bound.
    pub async fn start(target: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (mode, mode_rx) = watch::channel(ProxyMode::Pass);
        let accept_task = tokio::spawn(accept_loop(listener, target, mode_rx));
        Ok(Self {
            addr,
            mode,
            accept_task,
        })
    }

    /// Starts a proxy in front of the service named by a URL such as `postgres://user@127.0.0.1:5432/db` and
    /// returns it with the same URL pointed at the proxy.
    ///
    /// # Errors
    ///
    /// When the URL has no `host:port` that resolves, or no loopback port can be bound.
    pub async fn in_front_of(url: &str) -> std::io::Result<(Self, String)> {
        let invalid =
            || std::io::Error::new(std::io::ErrorKind::InvalidInput, "URL without host:port");
        let after_scheme = url.find("://").map(|i| i + 3).ok_or_else(invalid)?;
        let rest = &url[after_scheme..];
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let authority = &rest[..authority_end];
        let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
        let target = tokio::net::lookup_host(host_port)
            .await?
            .next()
            .ok_or_else(invalid)?;
        let proxy = Self::start(target).await?;
        let user = authority
            .rsplit_once('@')
            .map(|(user, _)| format!("{user}@"))
            .unwrap_or_default();
        let proxied = format!(
            "{}{user}{}{}",
            &url[..after_scheme],
            proxy.addr,
            &rest[authority_end..]
        );
        Ok((proxy, proxied))
    }

    /// The address clients should connect to.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The current mode.
    #[must_use]
    pub fn mode(&self) -> ProxyMode {
        *self.mode.borrow()
    }

    /// Drops open connections and refuses new ones.
    pub fn cut(&self) {
        self.mode.send_replace(ProxyMode::Refuse);
    }

    /// Holds open and new connections without relaying anything.
    pub fn stall(&self) {
        self.mode.send_replace(ProxyMode::Stall);
    }

    /// Relays again; connections held or refused before stay closed.
    pub fn restore(&self) {
        self.mode.send_replace(ProxyMode::Pass);
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.mode.send_replace(ProxyMode::Refuse);
        self.accept_task.abort();
    }
}

async fn accept_loop(listener: TcpListener, target: SocketAddr, mode: watch::Receiver<ProxyMode>) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        let current = *mode.borrow();
        match current {
            ProxyMode::Refuse => {
                // Closing with SO_LINGER 0 sends a reset: the client fails at once instead of waiting.
                let _ = client.set_zero_linger();
                drop(client);
            }
            ProxyMode::Stall => {
                tokio::spawn(hold(client, mode.clone()));
            }
            ProxyMode::Pass => {
                tokio::spawn(relay(client, target, mode.clone()));
            }
        }
    }
}

/// Keeps a connection open, silent, until the mode changes.
async fn hold(client: TcpStream, mut mode: watch::Receiver<ProxyMode>) {
    mode.mark_unchanged();
    let _ = mode.changed().await;
    let _ = client.set_zero_linger();
    drop(client);
}

async fn relay(mut client: TcpStream, target: SocketAddr, mut mode: watch::Receiver<ProxyMode>) {
    mode.mark_unchanged();
    let Ok(mut upstream) = TcpStream::connect(target).await else {
        let _ = client.set_zero_linger();
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {
            let _ = client.shutdown().await;
        }
        _ = mode.changed() => {
            if *mode.borrow() == ProxyMode::Stall {
                // A hung service: the connection stays open and silent until the mode changes again.
                let _ = mode.changed().await;
            }
            let _ = client.set_zero_linger();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    async fn echo_server() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (mut socket, _) = listener.accept().await.unwrap();
                tokio::spawn(async move {
                    let mut buf = [0u8; 64];
                    while let Ok(n) = socket.read(&mut buf).await {
                        if n == 0 || socket.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        addr
    }

    async fn round_trip(addr: SocketAddr) -> std::io::Result<Vec<u8>> {
        let mut conn = TcpStream::connect(addr).await?;
        conn.write_all(b"ping").await?;
        let mut buf = vec![0u8; 4];
        tokio::time::timeout(
            std::time::Duration::from_millis(500),
            conn.read_exact(&mut buf),
        )
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "stalled"))??;
        Ok(buf)
    }

    #[tokio::test]
    async fn relays_then_refuses_then_stalls_then_relays_again() {
        let proxy = FaultProxy::start(echo_server().await).await.unwrap();
        assert_eq!(round_trip(proxy.addr()).await.unwrap(), b"ping");

        proxy.cut();
        assert!(round_trip(proxy.addr()).await.is_err());

        proxy.stall();
        let err = round_trip(proxy.addr()).await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);

        proxy.restore();
        assert_eq!(round_trip(proxy.addr()).await.unwrap(), b"ping");
    }

    #[tokio::test]
    async fn cut_ends_connections_opened_before() {
        let proxy = FaultProxy::start(echo_server().await).await.unwrap();
        let mut conn = TcpStream::connect(proxy.addr()).await.unwrap();
        conn.write_all(b"a").await.unwrap();
        let mut one = [0u8; 1];
        conn.read_exact(&mut one).await.unwrap();

        proxy.cut();
        let mut buf = [0u8; 1];
        let read = tokio::time::timeout(std::time::Duration::from_secs(2), conn.read(&mut buf))
            .await
            .unwrap();
        assert!(
            matches!(read, Ok(0) | Err(_)),
            "the open connection should be closed, got {read:?}"
        );
    }

    #[tokio::test]
    async fn in_front_of_rewrites_the_url_keeping_user_and_path() {
        let target = echo_server().await;
        let url = format!("postgres://postgres@{target}/somedb?sslmode=disable");
        let (proxy, proxied) = FaultProxy::in_front_of(&url).await.unwrap();
        assert_eq!(
            proxied,
            format!(
                "postgres://postgres@{}/somedb?sslmode=disable",
                proxy.addr()
            )
        );
    }
}

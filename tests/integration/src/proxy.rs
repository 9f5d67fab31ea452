//! A TCP proxy between a service and the broker that can cut the traffic
//! the way a dead network does: it stops forwarding, and sends neither a
//! FIN nor a RST. Only heartbeats can tell such a connection is dead.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bus_core::BrokerUrl;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

/// A running proxy; its tasks, and every socket they hold, end when it
/// drops.
#[derive(Debug)]
pub struct BlackHoleProxy {
    url: String,
    cut: Arc<AtomicBool>,
    accepted: Arc<AtomicUsize>,
    tasks: Arc<Mutex<JoinSet<()>>>,
}

impl BlackHoleProxy {
    /// Listens on a free local port and forwards to the broker of `url`.
    pub async fn start(url: &str) -> BlackHoleProxy {
        let parsed: BrokerUrl = url.parse().expect("broker URL");
        let upstream = parsed.address();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let local: SocketAddr = listener.local_addr().expect("proxy address");
        assert!(
            url.contains(&upstream),
            "the broker URL must name its host and port explicitly"
        );
        let proxied = url.replacen(&upstream, &local.to_string(), 1);
        let cut = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(AtomicUsize::new(0));
        let tasks = Arc::new(Mutex::new(JoinSet::new()));
        let accept = accept_loop(
            listener,
            upstream,
            Arc::clone(&cut),
            Arc::clone(&accepted),
            Arc::clone(&tasks),
        );
        tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .spawn(accept);
        BlackHoleProxy {
            url: proxied,
            cut,
            accepted,
            tasks,
        }
    }

    /// The broker URL that goes through the proxy.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// How many connections the proxy accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// From now on nothing is forwarded, in either direction, on any
    /// connection, old or new; every socket stays open.
    pub fn black_hole(&self) {
        self.cut.store(true, Ordering::SeqCst);
    }
}

impl Drop for BlackHoleProxy {
    fn drop(&mut self) {
        self.tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .abort_all();
    }
}

async fn accept_loop(
    listener: TcpListener,
    upstream: String,
    cut: Arc<AtomicBool>,
    accepted: Arc<AtomicUsize>,
    tasks: Arc<Mutex<JoinSet<()>>>,
) {
    while let Ok((client, _)) = listener.accept().await {
        accepted.fetch_add(1, Ordering::SeqCst);
        let (upstream, cut) = (upstream.clone(), Arc::clone(&cut));
        tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .spawn(async move {
                if cut.load(Ordering::SeqCst) {
                    // Accepted, never answered: a connection into the void.
                    let _held = client;
                    return std::future::pending().await;
                }
                let Ok(server) = TcpStream::connect(&upstream).await else {
                    return;
                };
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = server.into_split();
                tokio::join!(
                    pump(client_read, server_write, Arc::clone(&cut)),
                    pump(server_read, client_write, cut),
                );
            });
    }
}

/// Copies bytes until the cut, then holds both halves open forever.
async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, cut: Arc<AtomicBool>) {
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        if cut.load(Ordering::SeqCst) {
            break;
        }
        let n = match from.read(&mut buffer).await {
            // The broker hanging up after the cut must not reach the
            // service either: its own heartbeats have to find out.
            _ if cut.load(Ordering::SeqCst) => break,
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if to.write_all(&buffer[..n]).await.is_err() {
            return;
        }
    }
    let _held = (from, to);
    std::future::pending::<()>().await;
}

//! How a failed connection is reported, checked against the real broker
//! and against servers that are not brokers.

use std::time::Duration;

use bus_core::BrokerUrl;
use bus_service::{Client, ConnectError, RunError, ServiceBuilder};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

const TIMEOUT: Duration = Duration::from_secs(10);

/// The broker URL with other credentials, vhost or address.
fn variant(edit: impl FnOnce(&mut BrokerUrl)) -> String {
    let mut url: BrokerUrl = bus_test_support::amqp_url().parse().unwrap();
    edit(&mut url);
    let encode = |s: &str| {
        percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
    };
    format!(
        "amqp://{}:{}@{}:{}/{}",
        encode(&url.user),
        encode(&url.password),
        url.host,
        url.port,
        encode(&url.vhost)
    )
}

async fn connect_error(url: &str) -> ConnectError {
    let builder = ServiceBuilder::new("connect-errors").url(url);
    match tokio::time::timeout(TIMEOUT * 2, Client::connect(builder, TIMEOUT)).await {
        Ok(Err(RunError::Connect(error))) => error,
        Ok(Err(other)) => panic!("unexpected error for {url}: {other}"),
        Ok(Ok(_)) => panic!("{url} connected"),
        Err(_) => panic!("{url}: no answer within {:?}", TIMEOUT * 2),
    }
}

#[tokio::test]
async fn wrong_password_is_access_refused() {
    let url = variant(|u| u.password = "not-the-password".into());
    let error = connect_error(&url).await;
    assert!(
        matches!(error, ConnectError::AccessRefused { .. }),
        "{error:?}"
    );
    assert!(!error.to_string().contains("not-the-password"));
}

#[tokio::test]
async fn unknown_user_is_access_refused() {
    let url = variant(|u| u.user = bus_test_support::unique("nobody"));
    let error = connect_error(&url).await;
    assert!(
        matches!(error, ConnectError::AccessRefused { .. }),
        "{error:?}"
    );
}

#[tokio::test]
async fn unknown_vhost_is_access_refused() {
    let url = variant(|u| u.vhost = bus_test_support::unique("no-vhost"));
    let error = connect_error(&url).await;
    assert!(
        matches!(error, ConnectError::AccessRefused { .. }),
        "{error:?}"
    );
}

#[tokio::test]
async fn closed_port_is_unreachable() {
    // Bind then drop a listener: the port is free and nothing listens.
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap().port()
    };
    let url = variant(|u| {
        u.host = "127.0.0.1".into();
        u.port = port;
    });
    let error = connect_error(&url).await;
    match &error {
        ConnectError::Unreachable { address, .. } => {
            assert_eq!(address, &format!("127.0.0.1:{port}"))
        }
        other => panic!("{other:?}"),
    }
    assert!(
        error
            .to_string()
            .starts_with(&format!("no broker at 127.0.0.1:{port}")),
        "{error}"
    );
}

#[tokio::test]
async fn unknown_host_is_unreachable() {
    // `.invalid` never resolves (RFC 6761).
    let url = variant(|u| u.host = "no-such-host.invalid".into());
    let error = connect_error(&url).await;
    assert!(
        matches!(error, ConnectError::Unreachable { .. }),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_server_that_hangs_up_is_not_a_broker() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            drop(socket);
        }
    });
    let url = format!("amqp://guest:guest@127.0.0.1:{port}/%2f");
    let error = connect_error(&url).await;
    assert!(matches!(error, ConnectError::Protocol { .. }), "{error:?}");
}

#[tokio::test]
async fn a_server_that_speaks_http_is_not_a_broker() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let _ = socket.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
        }
    });
    let url = format!("amqp://guest:guest@127.0.0.1:{port}/%2f");
    let error = connect_error(&url).await;
    assert!(matches!(error, ConnectError::Protocol { .. }), "{error:?}");
}

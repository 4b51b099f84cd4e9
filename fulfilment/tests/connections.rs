//! Slow and silent clients on the gRPC listener, over plain TCP: a client
//! that sends nothing, or stops halfway through a gRPC-Web (HTTP/1.1)
//! request, is disconnected after the idle timeout, while a gRPC-Web
//! stream that is quiet on the client's side but gets heartbeats lives on.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use fulfil_proto::v1::WatchOrdersRequest;
use fulfil_proto::v1::watch_orders_request::Start;
use fulfilment::server::{self, ConnectionLimits, Listeners, ServeOptions};
use fulfilment::stream::StreamConfig;
use prost::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const IDLE: Duration = Duration::from_millis(400);

async fn start() -> (SocketAddr, tempfile::TempDir) {
    let (db, dir) = common::sqlite_database().await;
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let options = ServeOptions {
        streams: StreamConfig {
            heartbeat: IDLE / 4,
            ..StreamConfig::default()
        },
        connections: ConnectionLimits {
            idle_timeout: IDLE,
            ..ConnectionLimits::default()
        },
        ..ServeOptions::default()
    };
    tokio::spawn(server::serve(
        Listeners::api_only(listener),
        db,
        options,
        std::future::pending(),
    ));
    (addr, dir)
}

/// Reads until the server closes the connection (a reset counts), within
/// a deadline far beyond the idle timeout.
async fn until_closed(stream: &mut TcpStream) {
    let mut buf = [0u8; 4096];
    let closed = tokio::time::timeout(Duration::from_secs(20), async {
        while let Ok(n) = stream.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the server kept the connection open");
}

fn grpc_web_head(path: &str, length: usize) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nHost: fulfilment\r\nContent-Type: application/grpc-web+proto\r\nX-Grpc-Web: 1\r\nContent-Length: {length}\r\n\r\n"
    )
    .into_bytes()
}

#[tokio::test]
async fn a_connection_that_sends_nothing_is_closed() {
    let (addr, _dir) = start().await;
    let mut silent = TcpStream::connect(addr).await.expect("connect");
    until_closed(&mut silent).await;
}

#[tokio::test]
async fn a_grpc_web_request_stalled_in_its_body_is_closed() {
    let (addr, _dir) = start().await;
    let mut stalled = TcpStream::connect(addr).await.expect("connect");
    let mut request = grpc_web_head("/fulfil.v1.OrderService/GetOrder", 100);
    request.extend_from_slice(&[0, 0, 0, 0, 95]);
    stalled.write_all(&request).await.expect("write");
    until_closed(&mut stalled).await;
}

#[tokio::test]
async fn a_grpc_web_stream_with_heartbeats_outlives_the_idle_timeout() {
    let (addr, _dir) = start().await;
    let message = WatchOrdersRequest {
        customer_id: "cus_quiet".into(),
        start: Some(Start::FromNow(true)),
        ..Default::default()
    }
    .encode_to_vec();
    let mut frame = vec![0];
    frame.extend_from_slice(&u32::try_from(message.len()).expect("small").to_be_bytes());
    frame.extend_from_slice(&message);
    let mut request = grpc_web_head("/fulfil.v1.OrderService/WatchOrders", frame.len());
    request.extend_from_slice(&frame);

    let mut watching = TcpStream::connect(addr).await.expect("connect");
    watching.write_all(&request).await.expect("write");
    // Twenty heartbeats span five idle timeouts; the client sends nothing.
    let mut buf = [0u8; 4096];
    let mut pieces = 0;
    let lived = tokio::time::timeout(Duration::from_secs(30), async {
        while pieces < 20 {
            match watching.read(&mut buf).await {
                Ok(0) | Err(_) => return false,
                Ok(_) => pieces += 1,
            }
        }
        true
    })
    .await;
    assert_eq!(lived, Ok(true), "the stream ended after {pieces} pieces");
}

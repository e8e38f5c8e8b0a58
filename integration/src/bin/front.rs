//! The local stack's front door: `front <port> <upstream port>` on
//! 127.0.0.1, in front of `cargo lambda watch`, which tells every function
//! that its client is 127.0.0.1 whatever the client's address. Like API
//! Gateway, it passes the client's address on: appended to
//! `X-Forwarded-For`, whose first address the functions take for a loopback
//! source only (`shared::http::origin`). So a client bound to 127.0.0.2 is
//! another address to the per-address throttle than one on 127.0.0.3, and a
//! test that names its address in `X-Forwarded-For` keeps it.
//!
//! One request per connection: it goes upstream with `Connection: close`,
//! so the answer says `connection: close` too, and both ways are copied as
//! they come until the upstream closes.

use tokio::io::{AsyncReadExt, AsyncWriteExt, copy_bidirectional};
use tokio::net::{TcpListener, TcpStream};

/// The longest request head taken (a larger one is `431`).
const MAX_HEAD: usize = 64 * 1024;

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(port), Some(upstream)) = (args.next(), args.next()) else {
        eprintln!("usage: front <port> <upstream port>");
        std::process::exit(2);
    };
    let upstream = format!("127.0.0.1:{upstream}");
    let listener = TcpListener::bind(format!("127.0.0.1:{port}"))
        .await
        .unwrap_or_else(|e| panic!("cannot listen on 127.0.0.1:{port}: {e}"));
    loop {
        let Ok((client, peer)) = listener.accept().await else {
            continue;
        };
        let upstream = upstream.clone();
        tokio::spawn(async move {
            if let Err(e) = serve(client, peer.ip(), &upstream).await {
                eprintln!("front: {peer}: {e}");
            }
        });
    }
}

async fn serve(mut client: TcpStream, peer: std::net::IpAddr, upstream: &str) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(4096);
    let end = loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
        if buf.len() > MAX_HEAD {
            return client
                .write_all(
                    b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                )
                .await;
        }
        let mut chunk = [0u8; 4096];
        let n = client.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = rewrite_head(&buf[..end], peer);
    let Ok(mut up) = TcpStream::connect(upstream).await else {
        // cargo lambda watch not listening yet (or stopped).
        return client
            .write_all(b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
            .await;
    };
    up.write_all(&head).await?;
    up.write_all(&buf[end + 4..]).await?;
    copy_bidirectional(&mut client, &mut up).await?;
    Ok(())
}

/// The request head (its lines without the blank line that ends it) with
/// `peer` appended to `X-Forwarded-For` and `Connection: close`, the client's
/// own connection headers dropped; with the ending blank line.
fn rewrite_head(head: &[u8], peer: std::net::IpAddr) -> Vec<u8> {
    let mut lines = head.split(|&b| b == b'\n').map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let mut out = Vec::with_capacity(head.len() + 64);
    out.extend_from_slice(lines.next().unwrap_or_default());
    out.extend_from_slice(b"\r\n");
    let mut forwarded: Vec<String> = Vec::new();
    for line in lines {
        let colon = line.iter().position(|&b| b == b':').unwrap_or(line.len());
        let name = String::from_utf8_lossy(&line[..colon]).trim().to_ascii_lowercase();
        match name.as_str() {
            "connection" | "keep-alive" | "proxy-connection" => {}
            "x-forwarded-for" => {
                let value = String::from_utf8_lossy(line.get(colon + 1..).unwrap_or_default());
                forwarded.extend(
                    value
                        .split(',')
                        .map(str::trim)
                        .filter(|a| !a.is_empty())
                        .map(String::from),
                );
            }
            _ => {
                out.extend_from_slice(line);
                out.extend_from_slice(b"\r\n");
            }
        }
    }
    forwarded.push(peer.to_string());
    let forwarded = forwarded.join(", ");
    out.extend_from_slice(format!("x-forwarded-for: {forwarded}\r\nconnection: close\r\n\r\n").as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::rewrite_head;

    fn rewritten(head: &str) -> String {
        String::from_utf8(rewrite_head(head.as_bytes(), "127.0.0.2".parse().unwrap())).unwrap()
    }

    #[test]
    fn the_peer_is_the_forwarded_address_and_the_connection_closes() {
        assert_eq!(
            rewritten("POST /login HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\nContent-Length: 2"),
            "POST /login HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nx-forwarded-for: 127.0.0.2\r\nconnection: close\r\n\r\n"
        );
    }

    #[test]
    fn a_forwarded_address_the_client_names_stays_first() {
        assert_eq!(
            rewritten("GET / HTTP/1.1\r\nX-Forwarded-For: 127.4.5.6\r\nx-forwarded-for: 10.0.0.1, "),
            "GET / HTTP/1.1\r\nx-forwarded-for: 127.4.5.6, 10.0.0.1, 127.0.0.2\r\nconnection: close\r\n\r\n"
        );
    }
}

//! The WebSocket upgrade on a hyper HTTP/1.1 connection: the handshake answer (101) and
//! the future that yields the upgraded socket once hyper hands it over.

use bytes::Bytes;
use fastwebsockets::upgrade::UpgradeFut;
use fastwebsockets::WebSocket;
use http_body_util::Empty;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

/// Why a request cannot be upgraded; the caller answers 400 (or 426).
#[derive(Debug, thiserror::Error)]
pub enum UpgradeError {
    /// Not a WebSocket upgrade request (no `Connection: upgrade` / `Upgrade: websocket`).
    #[error("this route speaks WebSocket: send an upgrade request")]
    NotUpgrade,
    /// The handshake headers are missing or wrong.
    #[error("bad WebSocket handshake: {0}")]
    Handshake(String),
}

/// A WebSocket on an upgraded hyper connection.
pub type Socket = WebSocket<TokioIo<hyper::upgrade::Upgraded>>;

/// Checks the handshake of `req` and returns the 101 answer and the socket to come.
pub fn accept<B>(
    req: &mut Request<B>,
) -> Result<(Response<Empty<Bytes>>, UpgradeFut), UpgradeError> {
    if !fastwebsockets::upgrade::is_upgrade_request(req) {
        return Err(UpgradeError::NotUpgrade);
    }
    fastwebsockets::upgrade::upgrade(req).map_err(|e| UpgradeError::Handshake(e.to_string()))
}

/// The socket once the upgrade completes, as a server.
pub async fn socket(fut: UpgradeFut) -> Result<Socket, UpgradeError> {
    fut.await
        .map_err(|e| UpgradeError::Handshake(e.to_string()))
}

/// The read half of a split session: frames are read here, while the write half belongs
/// to the connection's [`crate::queue::SendQueue`] writer.
pub type ReadSide =
    crate::reader::FrameReader<tokio::io::ReadHalf<TokioIo<hyper::upgrade::Upgraded>>>;

/// The write half of a split session.
pub type WriteSide = tokio::io::WriteHalf<TokioIo<hyper::upgrade::Upgraded>>;

/// Splits a socket into its frame reader (payloads up to `max_frame` bytes) and its
/// raw writer (pre-encoded frames are written as they are).
pub fn split(socket: Socket, max_frame: usize) -> (ReadSide, WriteSide) {
    let (r, w) = tokio::io::split(socket.into_inner());
    (crate::reader::FrameReader::new(r, max_frame), w)
}

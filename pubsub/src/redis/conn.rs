//! The node's connections to Redis, one server or a Redis Cluster: the command
//! connection ([`Conn`], routed by key slot in a cluster) and the subscriber link's
//! ([`Subscriber`]).
//!
//! In a cluster the link uses sharded pub/sub: each channel is subscribed on the master
//! of its slot (where the room scripts `SPUBLISH` it, and where `SPUBLISH` counts every
//! node's subscription, which the announcements of changes wait for). Classic pub/sub
//! crosses the cluster bus to reach another master's subscribers, tens of milliseconds
//! late at p90, and costs every master CPU per message (perf/RESULTS.md).

use std::time::Duration;

use futures_util::StreamExt as _;
use redis::aio::{
    ConnectionLike, ConnectionManager, ConnectionManagerConfig, PubSubSink, PubSubStream,
};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::io::tcp::TcpSettings;
use redis::{
    Cmd, ConnectionInfo, IntoConnectionInfo, Pipeline, PushInfo, PushKind, RedisFuture,
    RedisResult, Value,
};

/// Where Redis is.
#[derive(Debug, Clone)]
pub struct Servers {
    /// The server, or the cluster's seed nodes.
    seeds: Vec<ConnectionInfo>,
    /// Whether it is a Redis Cluster.
    cluster: bool,
}

/// The command connection: it reconnects by itself (and, in a cluster, follows the
/// slots as they move).
#[derive(Clone)]
pub enum Conn {
    /// One server.
    Single(ConnectionManager),
    /// A Redis Cluster.
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

impl Servers {
    /// `urls`: one `redis://` URL, or (`cluster`) a comma-separated list of a Redis
    /// Cluster's seed nodes.
    pub fn parse(urls: &str, cluster: bool) -> RedisResult<Servers> {
        // Every call is a small write the node waits on: Nagle's algorithm (redis-rs
        // leaves it on) would hold one behind another's unacknowledged segment for a
        // delayed ACK, 40 ms (measured: ws-cluster p99 +35 ms on a Redis Cluster).
        let seeds = urls
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(|u| {
                u.into_connection_info()
                    .map(|info| info.set_tcp_settings(nodelay()))
            })
            .collect::<RedisResult<Vec<_>>>()?;
        if seeds.is_empty() || (!cluster && seeds.len() > 1) {
            return Err(redis::RedisError::from((
                redis::ErrorKind::InvalidClientConfig,
                "one Redis URL (several only for a Redis Cluster's seed nodes)",
            )));
        }
        Ok(Servers { seeds, cluster })
    }

    /// The command connection, made lazily (it connects on first use and again after
    /// a loss), whose calls give up after `timeout`. Made on a runtime, which runs its
    /// upkeep.
    pub fn commands(&self, timeout: Duration) -> RedisResult<Conn> {
        if self.cluster {
            // A call refused while its slot moves (`TRYAGAIN`, `ASK`, `MOVED`) or while a
            // master fails over is tried once more, 10-100 ms later: more retries kept
            // a join's hundreds of calls in the client's queue while a master came back,
            // and every call timed out for tens of seconds.
            let client = ClusterClient::builder(self.seeds.clone())
                .tcp_settings(nodelay())
                .connection_timeout(timeout)
                .response_timeout(timeout)
                .retries(1)
                .min_retry_wait(10)
                .max_retry_wait(100)
                .build()?;
            let config = redis::cluster::ClusterConfig::new()
                .set_connection_timeout(timeout)
                .set_response_timeout(timeout);
            Ok(Conn::Cluster(
                client.get_pending_async_connection_with_config(config),
            ))
        } else {
            let client = redis::Client::open(self.seeds[0].clone())?;
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(timeout))
                .set_response_timeout(Some(timeout))
                .set_number_of_retries(0)
                .set_max_delay(timeout);
            Ok(Conn::Single(ConnectionManager::new_lazy_with_config(
                client, config,
            )?))
        }
    }

    /// Whether rooms publish with `SPUBLISH` (a cluster: sharded pub/sub) or
    /// `PUBLISH` (one server).
    pub fn publish_command(&self) -> &'static str {
        if self.cluster {
            "SPUBLISH"
        } else {
            "PUBLISH"
        }
    }

    /// A subscriber connection (the `attempt`th since the link started: one server's
    /// seeds are tried in turn, a cluster's are all given to its client): where
    /// subscriptions go, and where messages come.
    pub async fn subscriber(&self, attempt: usize) -> RedisResult<(Subscriptions, Messages)> {
        if self.cluster {
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            let client = ClusterClient::builder(self.seeds.clone())
                .tcp_settings(nodelay())
                .use_protocol(redis::ProtocolVersion::RESP3)
                .push_sender(tx)
                .build()?;
            let conn = client.get_async_connection().await?;
            Ok((Subscriptions::Sharded(conn), Messages::Sharded(rx)))
        } else {
            let seed = self.seeds[attempt % self.seeds.len()].clone();
            let (sink, stream) = redis::Client::open(seed)?.get_async_pubsub().await?.split();
            Ok((Subscriptions::Classic(sink), Messages::Classic(stream)))
        }
    }
}

/// TCP settings of every connection to Redis: no Nagle delay.
fn nodelay() -> TcpSettings {
    TcpSettings::default().set_nodelay(true)
}

/// Where the link's subscriptions go: classic pub/sub on one server; sharded pub/sub
/// on a cluster (each channel subscribed on the master of its slot, through redis-rs'
/// cluster connection, whose messages come as RESP3 pushes).
pub enum Subscriptions {
    /// One server.
    Classic(PubSubSink),
    /// A Redis Cluster.
    Sharded(ClusterConnection),
}

/// Where the link's messages come.
pub enum Messages {
    /// One server.
    Classic(PubSubStream),
    /// A Redis Cluster: its pushes (messages, confirmations, disconnections).
    Sharded(tokio::sync::mpsc::UnboundedReceiver<PushInfo>),
}

/// What the subscriber connection received.
pub enum Received {
    /// A message on a channel.
    Message {
        /// The channel.
        channel: String,
        /// Its bytes.
        bytes: Vec<u8>,
    },
    /// The connection (or, in a cluster, one master's) was lost: what was published
    /// meanwhile did not come.
    Lost,
}

impl Subscriptions {
    /// Subscribes to `channels` (in a cluster, one command per channel: each is on the
    /// master of its own slot).
    pub async fn subscribe(&mut self, channels: &[String]) -> RedisResult<()> {
        match self {
            Subscriptions::Classic(sink) => sink.subscribe(channels).await,
            Subscriptions::Sharded(conn) => {
                for c in channels {
                    conn.ssubscribe(c).await?;
                }
                Ok(())
            }
        }
    }

    /// Unsubscribes from `channels`.
    pub async fn unsubscribe(&mut self, channels: &[String]) -> RedisResult<()> {
        match self {
            Subscriptions::Classic(sink) => sink.unsubscribe(channels).await,
            Subscriptions::Sharded(conn) => {
                for c in channels {
                    conn.sunsubscribe(c).await?;
                }
                Ok(())
            }
        }
    }

    /// Checks that Redis answers.
    pub async fn ping(&mut self) -> RedisResult<()> {
        match self {
            Subscriptions::Classic(sink) => sink.ping::<Value>().await.map(drop),
            Subscriptions::Sharded(conn) => redis::cmd("PING").exec_async(conn).await,
        }
    }
}

impl Messages {
    /// The next message, or word that the connection was lost.
    pub async fn next(&mut self) -> Received {
        match self {
            Messages::Classic(stream) => match stream.next().await {
                Some(m) => Received::Message {
                    channel: m.get_channel_name().to_owned(),
                    bytes: m.get_payload_bytes().to_vec(),
                },
                None => Received::Lost,
            },
            Messages::Sharded(pushes) => loop {
                let Some(push) = pushes.recv().await else {
                    return Received::Lost;
                };
                match push.kind {
                    PushKind::SMessage | PushKind::Message => {
                        let mut data = push.data.into_iter();
                        if let (Some(Value::BulkString(channel)), Some(Value::BulkString(bytes))) =
                            (data.next(), data.next())
                        {
                            if let Ok(channel) = String::from_utf8(channel) {
                                return Received::Message { channel, bytes };
                            }
                        }
                    }
                    PushKind::Disconnection => return Received::Lost,
                    // Confirmations (and redis-rs' own resubscriptions after a
                    // reconnection, which the link does not rely on).
                    _ => {}
                }
            },
        }
    }
}

//! The node's connections to Redis, one server or a Redis Cluster: the command
//! connection ([`Conn`], routed by key slot in a cluster) and the server the subscriber
//! link connects to ([`Servers::subscriber`]).
//!
//! In a cluster the link uses classic pub/sub, which reaches every subscriber on any
//! master, and connects to the master that owns [`ANCHOR`]'s slot: every node's link
//! is there, so a `PUBLISH` routed by that key counts every node's link (the
//! announcements of changes wait for that many answers). A message published on
//! another master reaches it through the cluster bus, tens of milliseconds late at p90
//! (perf/RESULTS.md): sharded pub/sub, a link per master, is the step to take.

use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig, PubSub};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::io::tcp::TcpSettings;
use redis::{
    Cmd, ConnectionAddr, ConnectionInfo, IntoConnectionInfo, Pipeline, RedisFuture, RedisResult,
    Value,
};

use super::slots;

/// The channel whose slot's master every node's link connects to in a cluster.
pub const ANCHOR: &str = "sh:changes";

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
            // master fails over is tried again, 10-100 ms apart: within the call's
            // timeout, which `RedisRooms` holds it to.
            let client = ClusterClient::builder(self.seeds.clone())
                .tcp_settings(nodelay())
                .connection_timeout(timeout)
                .response_timeout(timeout)
                .retries(8)
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

    /// A subscriber connection (the `attempt`th since the link started: a cluster's
    /// seeds are tried in turn): to the server, or to the master that owns
    /// [`ANCHOR`]'s slot.
    pub async fn subscriber(&self, attempt: usize) -> RedisResult<PubSub> {
        let seed = self.seeds[attempt % self.seeds.len()].clone();
        let info = if self.cluster {
            anchor_master(seed).await?
        } else {
            seed
        };
        redis::Client::open(info)?.get_async_pubsub().await
    }
}

/// TCP settings of every connection to Redis: no Nagle delay.
fn nodelay() -> TcpSettings {
    TcpSettings::default().set_nodelay(true)
}

/// The master that owns [`ANCHOR`]'s slot, as `seed` (a node of the cluster) says.
async fn anchor_master(seed: ConnectionInfo) -> RedisResult<ConnectionInfo> {
    let mut conn = redis::Client::open(seed.clone())?
        .get_multiplexed_async_connection()
        .await?;
    let ranges: Vec<Vec<Value>> = redis::cmd("CLUSTER")
        .arg("SLOTS")
        .query_async(&mut conn)
        .await?;
    let want = i64::from(slots::slot(ANCHOR));
    for range in ranges {
        let (Some(start), Some(end), Some(Value::Array(master))) =
            (range.first(), range.get(1), range.get(2))
        else {
            continue;
        };
        let (start, end): (i64, i64) = (
            redis::from_redis_value_ref(start)?,
            redis::from_redis_value_ref(end)?,
        );
        if !(start..=end).contains(&want) {
            continue;
        }
        let (Some(host), Some(port)) = (master.first(), master.get(1)) else {
            break;
        };
        // A master that does not know its own address says "" or "?" (or nothing):
        // it is then the seed's host.
        let host = redis::from_redis_value_ref::<Option<String>>(host)?
            .filter(|h| !h.is_empty() && h != "?")
            .or_else(|| match seed.addr() {
                ConnectionAddr::Tcp(host, _) | ConnectionAddr::TcpTls { host, .. } => {
                    Some(host.clone())
                }
                _ => None,
            })
            .unwrap_or_else(|| "127.0.0.1".to_owned());
        let port: u16 = redis::from_redis_value_ref(port)?;
        let addr = match seed.addr() {
            ConnectionAddr::TcpTls {
                insecure,
                tls_params,
                ..
            } => ConnectionAddr::TcpTls {
                host,
                port,
                insecure: *insecure,
                tls_params: tls_params.clone(),
            },
            _ => ConnectionAddr::Tcp(host, port),
        };
        return Ok(seed.set_addr(addr));
    }
    Err(redis::RedisError::from((
        redis::ErrorKind::Io,
        "no master owns the anchor's slot (the cluster is not ready)",
    )))
}

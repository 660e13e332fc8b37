//! Portico's data path: a call through a connection reaches the connector's backend with the
//! connection's credential applied.
//!
//! Per-connection work (decrypting, rendering templates, encoding headers and query strings)
//! happens once, in [`prepare`], and the result is cached ([`ConnectionCache`]) until the
//! connection or its connector changes. A proxied call then makes no store query, parses no
//! configuration and holds no lock across an await.

mod cache;
mod metrics;
mod prepare;
mod request;
mod upstream;

pub use cache::ConnectionCache;
pub use metrics::{ConnectorMetrics, Metrics, Outcome};
pub use prepare::{PrepareError, PreparedConnection, Target, TokenTimes, prepare};
pub use request::{OperationCall, RequestError, operation_request, proxy_request};
pub use upstream::{
    OutBody, Upstream, UpstreamError, UpstreamOptions, UpstreamSlot, read_certificates, strip_hop_by_hop,
};

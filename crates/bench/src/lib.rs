//! The proxy benchmark harness (issue 4): Portico's `/v1/connections/{id}/proxy/{path}`
//! measured against nginx as a reverse proxy and against the backend directly.
//!
//! - [`backend`]: a minimal hyper backend answering `ok`, for machines without nginx;
//! - [`load`]: a closed-loop load generator, for machines without wrk;
//! - [`wrk`]: reading wrk's output;
//! - [`report`]: medians, per-round ratios and the table;
//! - [`run`]: the whole benchmark.

pub mod backend;
pub mod http;
pub mod load;
pub mod nginx;
pub mod portico;
pub mod procs;
pub mod report;
pub mod run;
pub mod system;
pub mod wrk;

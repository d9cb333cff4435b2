//! Socket-level pieces shared by the server and the upstream client, below both: the tokio to
//! hyper IO adapter with the per-connection deadlines ([`io`]) and the request-stream scan it
//! feeds ([`scan`]), the transport limits and timeouts ([`limits`]), and address blocks
//! ([`Cidr`]). Depends on nothing in gatelet but [`crate::runtime`].

mod cidr;
pub mod io;
pub mod limits;
pub mod scan;

pub use cidr::Cidr;

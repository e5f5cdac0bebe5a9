//! Errors of the dist crate: every message is one line.

/// What can go wrong when joining a job or running a collective.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The launcher's environment is incomplete or inconsistent.
    #[error("distributed launch: {0}")]
    Env(String),
    /// Rendezvous failed (the store could not be served or reached, a rank never arrived).
    #[error("rank {rank} of {world}: joining the job at {addr}:{port} failed: {message}")]
    Join {
        /// This process's rank.
        rank: usize,
        /// The job's size.
        world: usize,
        /// Store host.
        addr: String,
        /// Store port.
        port: u16,
        /// c10d's message.
        message: String,
    },
    /// A collective failed: a peer died, stalled past the timeout, or the input was unusable.
    #[error("rank {rank} of {world}: {op} failed: {message}")]
    Collective {
        /// This process's rank.
        rank: usize,
        /// The job's size.
        world: usize,
        /// Which collective.
        op: &'static str,
        /// c10d's message.
        message: String,
    },
}

/// The crate's result type.
pub type Result<T> = std::result::Result<T, Error>;

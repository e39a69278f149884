//! Running async work from DataFusion's synchronous hooks.
//!
//! A table function's `call_with_args` and a scalar function's `invoke_with_args` are
//! synchronous, but asking needs the network and DataFusion queries. On a multi-thread
//! runtime (the server) the current worker hands its other tasks away while it waits;
//! elsewhere (a current-thread test runtime, or no runtime) the work runs on a scoped
//! thread with its own small runtime.

use std::future::Future;

use datafusion::common::{DataFusionError, Result};
use insightflow_catalog::access::Caller;
use tokio::runtime::{Builder, Handle, RuntimeFlavor};

use super::notice;

/// Runs `future` to completion from synchronous code.
pub(crate) fn run<F>(future: F) -> Result<F::Output>
where
    F: Future + Send,
    F::Output: Send,
{
    // The statement's caller travels with the work, whichever thread runs it, and
    // what the work notes comes back to the statement.
    let caller = Caller::current();
    let future = notice::collect_notes(async move {
        match caller {
            Some(caller) => caller.scope(future).await,
            None => future.await,
        }
    });
    let (output, notes) = run_to_end(future)?;
    notice::forward(notes);
    Ok(output)
}

fn run_to_end<F>(future: F) -> Result<F::Output>
where
    F: Future + Send,
    F::Output: Send,
{
    match Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == RuntimeFlavor::MultiThread => {
            Ok(tokio::task::block_in_place(|| handle.block_on(future)))
        }
        _ => std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let runtime = Builder::new_current_thread().enable_all().build()?;
                    Ok(runtime.block_on(future))
                })
                .join()
                .map_err(|_| DataFusionError::Internal("ask worker thread panicked".into()))?
                .map_err(|e: std::io::Error| DataFusionError::IoError(e))
        }),
    }
}
